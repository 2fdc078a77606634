#pragma once
// BootTimer: a port (0x440) the guest writes once it reaches a boot milestone (the test guest:
// its first ring-3 instruction). Each write records the wall time since `start` and the
// process CPU time, like Firecracker's boot-timer device, and reports it through a callback.
// Thread-safe (the callback must be).

#include <chrono>
#include <cstdint>
#include <functional>

#include "devices/bus.h"

namespace kumo::devices {

struct BootTime {
  uint8_t marker = 0;         // the byte the guest wrote
  uint64_t wall_us = 0;       // since `start`
  uint64_t process_cpu_us = 0;
};

class BootTimer final : public BusDevice {
 public:
  static constexpr uint16_t kPort = 0x440;
  static constexpr uint64_t kRangeBytes = 1;

  BootTimer(std::chrono::steady_clock::time_point start, std::function<void(const BootTime&)> log)
      : start_(start), log_(std::move(log)) {}
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::chrono::steady_clock::time_point start_;
  std::function<void(const BootTime&)> log_;
};

}  // namespace kumo::devices
