#pragma once
// Loading a bzImage through the Linux x86 boot protocol (Documentation/arch/x86/boot.rst,
// protocol 2.15), using the 64-bit entry point: the setup code is not run; kumo copies the
// protected-mode kernel into RAM, builds the zero page itself (zero_page.h) and enters at
// load address + 0x200 in long mode (boot.rst §"64-bit Boot Protocol").

#include <cstdint>
#include <span>

#include "arch/x86_64/loaded_kernel.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

// boot.rst §"The Real-Mode Kernel Header": file offsets.
inline constexpr size_t kSetupHeaderGpaOffset = 0x1f1;  // in the file and in boot_params
inline constexpr size_t kSetupHeaderMagicOffset = 0x202;
inline constexpr size_t kSetupHeaderEndMax = 0x290;  // boot_params: edd_mbr_sig_buffer
inline constexpr uint16_t kMinBootProtocol = 0x0206;
inline constexpr uint16_t kXloadflagsProtocol = 0x020c;
inline constexpr uint8_t kLoadflagsLoadedHigh = 1u << 0;
inline constexpr uint16_t kXlfKernel64 = 1u << 0;
inline constexpr uint64_t kEntry64Offset = 0x200;

// The setup-header fields kumo reads (protocol version in which each appeared).
struct SetupHeader {
  uint8_t setup_sects = 0;       // 0x1f1; 0 means 4
  uint32_t syssize = 0;          // 0x1f4, 16-byte paragraphs (2.04)
  uint16_t version = 0;          // 0x206
  uint8_t loadflags = 0;         // 0x211
  uint32_t initrd_addr_max = 0;  // 0x22c (2.03)
  uint32_t kernel_alignment = 0;  // 0x230 (2.05)
  uint8_t relocatable_kernel = 0;  // 0x234 (2.05)
  uint16_t xloadflags = 0;       // 0x236 (2.12)
  uint32_t cmdline_size = 0;     // 0x238 (2.06), excluding the NUL
  uint64_t pref_address = 0;     // 0x258 (2.10)
  uint32_t init_size = 0;        // 0x260 (2.10)

  // Bytes of the real-mode part (boot sector + setup) before the protected-mode kernel.
  [[nodiscard]] uint64_t setup_bytes() const {
    return (uint64_t{setup_sects == 0 ? uint8_t{4} : setup_sects} + 1) * 512;
  }
};

// True if `image` has the "HdrS" magic at 0x202.
[[nodiscard]] bool has_bzimage_magic(std::span<const uint8_t> image);

// Parses and validates the setup header. kInvalidInput, naming the problem, for: a file too
// short for the header or its setup code, a missing "HdrS" magic, protocol < 2.06, no
// LOADED_HIGH (a zImage), no 64-bit entry point (protocol < 2.12 or XLF_KERNEL_64 clear),
// syssize larger than the file, a relocatable kernel with a kernel_alignment that is not
// a power of two.
[[nodiscard]] Result<SetupHeader> parse_setup_header(std::span<const uint8_t> image);

// Validates `image` (parse_setup_header) and copies its protected-mode kernel to 1 MiB
// (relocatable kernels; they move themselves to their runtime address) or to pref_address
// (non-relocatable kernels). kInvalidInput if the kernel with its init_size does not fit in
// low RAM. Nothing is written unless every check passes. `mem` must follow ram_regions().
[[nodiscard]] Result<LoadedKernel> load_bzimage(memory::GuestMemory& mem,
                                                std::span<const uint8_t> image);

}  // namespace kumo::arch::x86_64
