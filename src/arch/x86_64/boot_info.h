#pragma once
// BootInfo: what the boot-parameter writers (zero page, hvm_start_info) tell the kernel.

#include <cstdint>
#include <optional>
#include <vector>

#include "arch/x86_64/e820.h"

namespace kumo::arch::x86_64 {

struct InitrdPlacement {
  uint64_t gpa = 0;
  uint64_t size_bytes = 0;
};

struct BootInfo {
  uint64_t cmdline_gpa = 0;
  uint64_t cmdline_bytes = 0;  // excluding the NUL
  std::optional<InitrdPlacement> initrd;
  uint64_t rsdp_gpa = 0;
  std::vector<E820Entry> e820;
};

}  // namespace kumo::arch::x86_64
