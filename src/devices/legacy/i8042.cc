#include "devices/legacy/i8042.h"

#include <algorithm>

namespace kumo::devices {
namespace {
constexpr uint64_t kCommandOffset = I8042::kCommandPort - I8042::kDataPort;
constexpr uint8_t kCommandPulseReset = 0xfe;
}  // namespace

void I8042::read(uint64_t /*offset*/, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
}

void I8042::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kCommandOffset && data.size() == 1 && data[0] == kCommandPulseReset) {
    on_reset_();
  }
}

}  // namespace kumo::devices
