#pragma once
// DebugExit: QEMU isa-debug-exit compatible port (0xf4, 4 bytes wide). A guest write of v
// asks the VMM to stop with exit status v (QEMU reports (v << 1) | 1 for the same write).
// Only the low byte is kept (exit statuses are 8 bits). Thread-safe.

#include <cstdint>
#include <functional>

#include "devices/bus.h"

namespace kumo::devices {

class DebugExit final : public BusDevice {
 public:
  static constexpr uint16_t kPort = 0xf4;
  static constexpr uint64_t kRangeBytes = 4;

  explicit DebugExit(std::function<void(uint8_t)> on_exit) : on_exit_(std::move(on_exit)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::function<void(uint8_t)> on_exit_;
};

}  // namespace kumo::devices
