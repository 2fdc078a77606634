#include "base/key_value_options.h"

#include <charconv>

namespace kumo {

Result<KeyValues> split_key_values(std::string_view text, std::string_view option) {
  KeyValues out;
  if (text.empty()) {
    return invalid_input("{}: empty option string", option);
  }
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    const size_t eq = item.find('=');
    if (item.empty()) {
      return invalid_input("{}: empty item in '{}'", option, text);
    }
    if (eq == std::string_view::npos || eq == 0) {
      return invalid_input("{}: '{}' is not key=value", option, item);
    }
    std::string key(item.substr(0, eq));
    std::string value(item.substr(eq + 1));
    if (value.empty()) {
      return invalid_input("{}: key '{}' has an empty value", option, key);
    }
    for (const auto& [k, v] : out) {
      if (k == key) {
        return invalid_input("{}: key '{}' given twice", option, key);
      }
    }
    out.emplace_back(std::move(key), std::move(value));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<bool> parse_on_off(std::string_view value, std::string_view option, std::string_view key) {
  if (value == "on" || value == "true" || value == "yes" || value == "1") return true;
  if (value == "off" || value == "false" || value == "no" || value == "0") return false;
  return invalid_input("{}: key '{}': '{}' is not on or off", option, key, value);
}

Result<uint64_t> parse_count(std::string_view value, std::string_view option,
                             std::string_view key) {
  uint64_t out = 0;
  const auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), out);
  if (ec != std::errc() || ptr != value.data() + value.size()) {
    return invalid_input("{}: key '{}': '{}' is not a non-negative integer", option, key, value);
  }
  return out;
}

Result<uint64_t> parse_poll_window(std::string_view value, std::string_view option,
                                   std::string_view key) {
  const uint64_t micros = KUMO_TRY(parse_count(value, option, key));
  if (micros > kMaxPollMicros) {
    return invalid_input("{}: key '{}': {} us is more than {} us", option, key, micros,
                         kMaxPollMicros);
  }
  return micros * 1000;
}

}  // namespace kumo
