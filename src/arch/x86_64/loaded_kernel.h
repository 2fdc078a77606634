#pragma once
// LoadedKernel: what a format-specific loader (pvh.h, bzimage.h) reports after copying a
// kernel into guest RAM, for kernel_loader.h to place the initrd and command line and write
// the boot parameters.

#include <cstdint>
#include <vector>

#include "memory/guest_address.h"

namespace kumo::arch::x86_64 {

enum class KernelFormat { kPvhElf, kBzImage };

struct LoadedKernel {
  KernelFormat format = KernelFormat::kPvhElf;
  memory::GuestAddress entry;
  // First byte above every range the kernel occupies or will use before it reads the memory
  // map (bzImage: the decompression buffer, setup_header.init_size). The initrd goes above.
  uint64_t end_gpa = 0;
  // Exclusive upper bound for the initrd's end (bzImage: initrd_addr_max + 1).
  uint64_t initrd_limit_gpa = 0;
  // Longest command line the kernel accepts, excluding the NUL.
  uint64_t cmdline_max_bytes = 0;
  // bzImage: the setup header bytes (file offset 0x1f1 onwards) to copy into the zero page.
  std::vector<uint8_t> setup_header;
};

}  // namespace kumo::arch::x86_64
