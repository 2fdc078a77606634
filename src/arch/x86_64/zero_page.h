#pragma once
// The Linux zero page (struct boot_params, arch/x86/include/uapi/asm/bootparam.h), built
// by kumo as a boot loader using the 64-bit entry point: Linux boot protocol 2.15
// §"The Zero Page" and §"64-bit Boot Protocol".

#include <array>
#include <cstdint>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/loaded_kernel.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

inline constexpr size_t kZeroPageBytes = 4096;
inline constexpr size_t kZeroPageE820MaxEntries = 128;  // E820_MAX_ENTRIES_ZEROPAGE

// boot_params offsets (bootparam.h; zero-page.rst).
inline constexpr size_t kBpAcpiRsdpAddr = 0x070;
inline constexpr size_t kBpExtRamdiskImage = 0x0c0;
inline constexpr size_t kBpExtRamdiskSize = 0x0c4;
inline constexpr size_t kBpExtCmdLinePtr = 0x0c8;
inline constexpr size_t kBpE820Entries = 0x1e8;
inline constexpr size_t kBpVidMode = 0x1fa;
inline constexpr size_t kBpTypeOfLoader = 0x210;
inline constexpr size_t kBpRamdiskImage = 0x218;
inline constexpr size_t kBpRamdiskSize = 0x21c;
inline constexpr size_t kBpCmdLinePtr = 0x228;
inline constexpr size_t kBpHardwareSubarch = 0x23c;
inline constexpr size_t kBpSetupData = 0x250;
inline constexpr size_t kBpE820Table = 0x2d0;  // 20-byte boot_e820_entry each

// Builds the zero page: the kernel's setup header (kernel.setup_header) at 0x1f1, then
// type_of_loader 0xff (undefined loader), vid_mode 0xffff ("normal"), cmd_line_ptr,
// ramdisk_image/size and their ext_ high halves, acpi_rsdp_addr, e820_table, with
// setup_data and hardware_subarch cleared. kInvalidInput if info.e820 has more than
// kZeroPageE820MaxEntries entries.
[[nodiscard]] Result<std::array<uint8_t, kZeroPageBytes>> build_zero_page(
    const LoadedKernel& kernel, const BootInfo& info);

// build_zero_page() written at kZeroPageGpa.
[[nodiscard]] Status write_zero_page(memory::GuestMemory& mem, const LoadedKernel& kernel,
                                     const BootInfo& info);

}  // namespace kumo::arch::x86_64
