#include "devices/legacy/debug_exit.h"

#include <algorithm>

namespace kumo::devices {

void DebugExit::read(uint64_t /*offset*/, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
}

void DebugExit::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == 0 && !data.empty()) {
    on_exit_(data[0]);
  }
}

}  // namespace kumo::devices
