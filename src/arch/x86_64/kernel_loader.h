#pragma once
// The front door for booting a kernel: reads the kernel (and initrd) files, recognises the
// format, loads it, and writes everything the kernel expects to find in guest RAM — command
// line, initrd, ACPI tables, MP table, e820 map, zero page or hvm_start_info, boot GDT and
// identity page tables — returning the boot vCPU's initial state.
//
//   ELF with a PVH note  → PVH boot ABI (pvh.h), 32-bit protected-mode entry
//   bzImage ("HdrS")     → Linux boot protocol 2.15 (bzimage.h), 64-bit entry
//
// Files and command line are user input: every rejection is kInvalidInput with one message
// naming the file or the problem. Host I/O failures while reading are kHost.
// `mem` must have been created from ram_regions() (layout.h).

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>

#include "arch/x86_64/boot_entry.h"
#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/loaded_kernel.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

struct BootOptions {
  std::string cmdline;
  uint32_t vcpu_count = 1;
  bool has_i8042 = false;     // see AcpiConfig
  bool has_cmos_rtc = false;  // see AcpiConfig
};

struct KernelSpec {
  std::filesystem::path kernel_path;
  std::optional<std::filesystem::path> initrd_path;
  BootOptions options;
};

// Loads spec.kernel_path (and spec.initrd_path) into `mem`. kInvalidInput for a missing,
// unreadable or non-regular file (naming the path), a kernel that is neither ELF nor
// bzImage ("not an ELF or bzImage kernel"), an ELF without the PVH note, and every
// rejection of the format loaders, the command line or the initrd placement.
[[nodiscard]] Result<BootEntry> load_kernel(memory::GuestMemory& mem, const KernelSpec& spec);

// True for a bzImage, or an ELF whose Xen GUEST_OS note (type 6) says "linux" (a PVH
// vmlinux); false for other kernels (e.g. kumo's test guest). Errors as load_kernel's for a
// missing, unreadable or non-regular file.
[[nodiscard]] Result<bool> is_linux_kernel(const std::filesystem::path& kernel_path);

// The same, from bytes already in host memory (tests and fuzzers).
[[nodiscard]] Result<BootEntry> load_kernel_image(
    memory::GuestMemory& mem, std::span<const uint8_t> kernel,
    std::optional<std::span<const uint8_t>> initrd, const BootOptions& options);

// Where an initrd of `size_bytes` goes: the highest kInitrdAlignBytes-aligned address whose
// end is at most kernel.initrd_limit_gpa, and not below kernel.end_gpa. kInvalidInput if
// it is empty or does not fit.
[[nodiscard]] Result<InitrdPlacement> place_initrd(const LoadedKernel& kernel,
                                                   uint64_t size_bytes);

}  // namespace kumo::arch::x86_64
