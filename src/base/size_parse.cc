#include "base/size_parse.h"

#include <charconv>

namespace kumo {

Result<uint64_t> parse_size_bytes(std::string_view text) {
  if (text.empty()) {
    return invalid_input("empty size");
  }
  uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return invalid_input("size '{}' is too large", text);
  }
  if (ec != std::errc() || end == text.data()) {
    return invalid_input("size '{}' must start with a decimal number", text);
  }
  std::string_view suffix(end, static_cast<size_t>(text.data() + text.size() - end));
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (suffix.front()) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      case 'b': case 'B': shift = 0; break;
      default:
        return invalid_input("size '{}' has unknown suffix '{}' (use K, M, G or T)", text, suffix);
    }
    std::string_view rest = suffix.substr(1);
    const bool unit_only = suffix.front() == 'b' || suffix.front() == 'B';
    if (!(rest.empty() || (!unit_only && (rest == "iB" || rest == "B")))) {
      return invalid_input("size '{}' has unknown suffix '{}' (use K, M, G or T)", text, suffix);
    }
  }
  if (shift != 0 && value > (UINT64_MAX >> shift)) {
    return invalid_input("size '{}' is too large", text);
  }
  return value << shift;
}

}  // namespace kumo
