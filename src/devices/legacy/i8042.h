#pragma once
// I8042: the part of the PS/2 controller a guest uses to reboot: command 0xFE ("pulse reset
// line") on port 0x64 calls the reset callback. Ports 0x60 (data) and 0x64 (status/command).
// There is no keyboard: reads return 0 (output buffer empty). Thread-safe (stateless).

#include <functional>

#include "devices/bus.h"

namespace kumo::devices {

class I8042 final : public BusDevice {
 public:
  static constexpr uint16_t kDataPort = 0x60;
  static constexpr uint16_t kCommandPort = 0x64;
  // Registered over [0x60, 0x65): offset 0 is data, offset 4 is status/command.
  static constexpr uint64_t kRangeBytes = 5;

  explicit I8042(std::function<void()> on_reset) : on_reset_(std::move(on_reset)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void()> on_reset_;
};

}  // namespace kumo::devices
