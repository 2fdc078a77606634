#pragma once
// Guest memory laid out by ram_regions(), for tests and fuzzers.

#include <cstdint>

#include "arch/x86_64/layout.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64::testing {

inline constexpr uint64_t kTestRamBytes = 64 * kMiB;

inline memory::GuestMemory make_guest_memory(uint64_t ram_bytes = kTestRamBytes) {
  return memory::GuestMemory::create(ram_regions(ram_bytes).value()).value();
}

}  // namespace kumo::arch::x86_64::testing
