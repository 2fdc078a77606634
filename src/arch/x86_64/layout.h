#pragma once
// The x86_64 guest-physical address map: where kumo puts RAM, boot structures, firmware
// tables, the kernel and the initrd, and which ranges are left for MMIO.
//
//   0x0000_0000 ─ 0x0009_fbff  low RAM (e820 RAM)
//       0x500   boot GDT                    0x6000  hvm_start_info, modlist, memmap (PVH)
//       0x7000  zero page (boot_params)     0x8ff0  initial stack top (grows down)
//       0x9000  PML4, 0xa000 PDPT, 0xb000 PD (identity map of the first 1 GiB)
//       0x20000 kernel command line (kCmdlineMaxBytes)
//   0x0009_fc00 ─ 0x000f_ffff  EBDA and BIOS area (e820 reserved)
//       0xe0000 ACPI tables (RSDP first)    0xf0000 Intel MP table
//   0x0010_0000 ─ low RAM end   kernel (loaded at 1 MiB), free RAM, initrd at the top
//   0xc000_0000 ─ 0xfebf_ffff  32-bit PCI MMIO window (BARs), not RAM
//   0xfec0_0000 IOAPIC, 0xfee0_0000 LAPIC
//   0x1_0000_0000 ─            RAM above 4 GiB (whatever does not fit below the hole)
//
// Every boot structure lives below 1 MiB; kernels (ELF segments, bzImage payloads) and the
// initrd are only ever placed at or above kKernelLoadGpa, so a kernel image cannot overwrite
// the structures kumo wrote for it. Linux boot protocol 2.15 §"Memory layout" and the PVH
// boot ABI (xen/include/public/arch-x86/hvm/start_info.h) leave the choice to the VMM.

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

inline constexpr uint64_t kPageSize = 0x1000;
inline constexpr uint64_t kMiB = 1ull << 20;
inline constexpr uint64_t kGiB = 1ull << 30;

// Boot structures (all below 1 MiB, inside low RAM).
inline constexpr uint64_t kBootGdtGpa = 0x500;
inline constexpr uint64_t kPvhStartInfoGpa = 0x6000;
inline constexpr uint64_t kPvhModlistGpa = 0x6040;  // one hvm_modlist_entry (the initrd)
inline constexpr uint64_t kPvhMemmapGpa = 0x6080;
inline constexpr uint64_t kPvhMemmapMaxEntries = 128;  // 128 * 24 bytes ends before 0x7000
inline constexpr uint64_t kZeroPageGpa = 0x7000;
inline constexpr uint64_t kBootStackTopGpa = 0x8ff0;
inline constexpr uint64_t kPml4Gpa = 0x9000;
inline constexpr uint64_t kPdptGpa = 0xa000;
inline constexpr uint64_t kPdGpa = 0xb000;
inline constexpr uint64_t kIdentityMapBytes = 1 * kGiB;  // 512 × 2 MiB pages
inline constexpr uint64_t kCmdlineGpa = 0x20000;
inline constexpr uint64_t kCmdlineMaxBytes = 4096;  // including the terminating NUL

// Reserved area below 1 MiB (e820 type 2): EBDA, VGA hole, option ROMs, BIOS.
inline constexpr uint64_t kEbdaGpa = 0x9fc00;
inline constexpr uint64_t kAcpiGpa = 0xe0000;  // RSDP here, other tables follow
inline constexpr uint64_t kAcpiMaxBytes = 0x10000;
inline constexpr uint64_t kMpTableGpa = 0xf0000;  // MP floating pointer, config table follows
inline constexpr uint64_t kMpTableMaxBytes = 0x10000;

// Kernel and initrd.
inline constexpr uint64_t kKernelLoadGpa = 1 * kMiB;  // also the start of "high memory"
inline constexpr uint64_t kInitrdAlignBytes = kPageSize;

// The 32-bit MMIO hole and what sits in it.
inline constexpr uint64_t kMmioHoleGpa = 0xc000'0000;
inline constexpr uint64_t kMmioHoleEndGpa = 0x1'0000'0000;  // exclusive; RAM resumes here
inline constexpr uint64_t kHighRamGpa = kMmioHoleEndGpa;
inline constexpr uint64_t kPciMmioGpa = 0xc000'0000;
inline constexpr uint64_t kPciMmioEndGpa = 0xfec0'0000;  // exclusive: window is ..0xfebf_ffff
inline constexpr uint64_t kIoapicGpa = 0xfec0'0000;
inline constexpr uint64_t kLapicGpa = 0xfee0'0000;

// RAM size limits. The minimum leaves room for the boot structures, a small kernel at
// 1 MiB and an initrd; Linux itself wants far more, the test guest does not.
inline constexpr uint64_t kMinRamBytes = 16 * kMiB;
inline constexpr uint64_t kMaxRamBytes = 1ull << 40;  // 1 TiB

// Guest RAM regions for `ram_bytes` of RAM: [0, min(ram, hole)) and, if RAM is larger than
// the space below the hole, [4 GiB, 4 GiB + rest). kInvalidInput if ram_bytes is below
// kMinRamBytes, above kMaxRamBytes or not a multiple of kPageSize.
[[nodiscard]] Result<std::vector<memory::RegionSpec>> ram_regions(uint64_t ram_bytes);

// End (exclusive) of the RAM region that starts at 0: min(ram_bytes, kMmioHoleGpa).
[[nodiscard]] constexpr uint64_t low_ram_end(uint64_t ram_bytes) {
  return ram_bytes < kMmioHoleGpa ? ram_bytes : kMmioHoleGpa;
}

// The RAM size `mem` was created for, checking that its regions are exactly
// ram_regions(total): kInvalidInput otherwise (the loaders rely on this layout).
[[nodiscard]] Result<uint64_t> layout_ram_bytes(const memory::GuestMemory& mem);

// Writes PML4 (kPml4Gpa) → PDPT (kPdptGpa) → PD (kPdGpa) identity-mapping the first
// kIdentityMapBytes with 2 MiB pages (present, writable, supervisor). CR3 = kPml4Gpa.
[[nodiscard]] Status write_identity_page_tables(memory::GuestMemory& mem);

}  // namespace kumo::arch::x86_64
