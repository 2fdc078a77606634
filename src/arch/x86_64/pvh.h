#pragma once
// Loading an ELF kernel through the PVH boot ABI (Xen's docs/misc/pvh.pandoc and
// xen/include/public/arch-x86/hvm/start_info.h; Linux arch/x86/platform/pvh): the kernel
// announces a 32-bit entry point in an ELF note "Xen" of type XEN_ELFNOTE_PHYS32_ENTRY (18),
// is entered in flat 32-bit protected mode with paging off, and finds everything else
// through the hvm_start_info whose address is in %ebx.

#include <cstdint>
#include <span>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/loaded_kernel.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

inline constexpr uint32_t kXenElfNotePhys32Entry = 18;

// Copies every PT_LOAD segment (p_filesz bytes from the file, then zeros up to p_memsz) to
// p_paddr. Every segment must lie in [kKernelLoadGpa, low RAM end): kernels never overlap
// the boot structures below 1 MiB, the MMIO hole or the high RAM region. `image` is user
// input; every failure is kInvalidInput with a message naming the problem (see
// ElfImage::parse, plus: no PVH note, a PVH note whose descriptor is not 4 or 8 bytes or
// whose entry is above 4 GiB or not inside a loaded segment, a segment outside that range
// or overflowing). Nothing is written to guest memory unless every check passes.
// `mem` must follow ram_regions() (layout_ram_bytes).
[[nodiscard]] Result<LoadedKernel> load_pvh_kernel(memory::GuestMemory& mem,
                                                   std::span<const uint8_t> image);

// Writes hvm_start_info at kPvhStartInfoGpa (magic, version 1, cmdline, rsdp, memmap from
// info.e820 at kPvhMemmapGpa, one module — the initrd — at kPvhModlistGpa). kInvalidInput
// if the e820 map has more than kPvhMemmapMaxEntries entries.
[[nodiscard]] Status write_pvh_start_info(memory::GuestMemory& mem, const BootInfo& info);

}  // namespace kumo::arch::x86_64
