#include "devices/legacy/boot_timer.h"

#include <time.h>

#include <algorithm>

namespace kumo::devices {

void BootTimer::read(uint64_t /*offset*/, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
}

void BootTimer::write(uint64_t /*offset*/, std::span<const uint8_t> data) {
  if (data.empty()) {
    return;
  }
  BootTime t;
  t.marker = data[0];
  t.wall_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - start_)
                                        .count());
  timespec cpu{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
  t.process_cpu_us = static_cast<uint64_t>(cpu.tv_sec) * 1'000'000u +
                     static_cast<uint64_t>(cpu.tv_nsec) / 1000u;
  log_(t);
}

}  // namespace kumo::devices
