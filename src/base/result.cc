#include "base/result.h"

#include <cstring>

namespace kumo {

std::string Error::to_string() const {
  if (errno_value != 0) {
    return fmt::format("{}: {}", message, std::strerror(errno_value));
  }
  return message;
}

}  // namespace kumo
