#pragma once
// The e820 memory map kumo reports to the guest, shared by the Linux zero page
// (boot_params.e820_table, Linux boot protocol 2.15 §"The Zero Page") and the PVH
// hvm_start_info memmap (PVH boot ABI, start_info.h version 1):
//
//   [0, kEbdaGpa)                      RAM
//   [kEbdaGpa, 1 MiB)                  reserved (EBDA, VGA, ROMs, ACPI + MP tables)
//   [1 MiB, min(ram, kMmioHoleGpa))    RAM
//   [4 GiB, 4 GiB + ram - 3 GiB)       RAM, only when ram > 3 GiB
//
// The MMIO hole is left out of the map (neither RAM nor reserved) so the guest may place PCI
// BARs there, as on real hardware.

#include <cstdint>
#include <vector>

#include "base/result.h"

namespace kumo::arch::x86_64 {

enum class E820Type : uint32_t { kRam = 1, kReserved = 2 };

struct E820Entry {
  uint64_t addr = 0;
  uint64_t size = 0;
  E820Type type = E820Type::kRam;
  bool operator==(const E820Entry&) const = default;
};

// Sorted, non-overlapping. kInvalidInput for the sizes ram_regions() rejects.
[[nodiscard]] Result<std::vector<E820Entry>> e820_map(uint64_t ram_bytes);

}  // namespace kumo::arch::x86_64
