#include "arch/x86_64/bzimage.h"

#include <algorithm>

#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/layout.h"

namespace kumo::arch::x86_64 {
namespace {

constexpr size_t kHeaderLengthByteOffset = 0x201;  // jump offset: header ends at 0x202 + it

// [start, start + len) as an exclusive end; nullopt on overflow.
std::optional<uint64_t> end_of(uint64_t start, uint64_t len) {
  uint64_t out = 0;
  if (__builtin_add_overflow(start, len, &out)) {
    return std::nullopt;
  }
  return out;
}

}  // namespace

bool has_bzimage_magic(std::span<const uint8_t> image) {
  return image.size() >= kSetupHeaderMagicOffset + 4 &&
         load_le<uint32_t>(image, kSetupHeaderMagicOffset) == 0x53726448;  // "HdrS"
}

Result<SetupHeader> parse_setup_header(std::span<const uint8_t> image) {
  if (image.size() < kSetupHeaderMagicOffset + 6) {
    return invalid_input("bzImage of {} bytes is too short for a setup header", image.size());
  }
  if (!has_bzimage_magic(image)) {
    return invalid_input("not a bzImage: no \"HdrS\" magic at offset 0x202");
  }
  SetupHeader h;
  h.version = load_le<uint16_t>(image, 0x206);
  if (h.version < kMinBootProtocol) {
    return invalid_input("bzImage boot protocol {}.{:02} is older than the required 2.06",
                         h.version >> 8, h.version & 0xff);
  }
  h.setup_sects = image[0x1f1];
  // setup_bytes() >= 5 * 512, past every header field read below.
  if (image.size() <= h.setup_bytes()) {
    return invalid_input("bzImage of {} bytes is truncated: its setup code alone is {} bytes",
                         image.size(), h.setup_bytes());
  }
  h.syssize = load_le<uint32_t>(image, 0x1f4);
  h.loadflags = image[0x211];
  h.initrd_addr_max = load_le<uint32_t>(image, 0x22c);
  h.kernel_alignment = load_le<uint32_t>(image, 0x230);
  h.relocatable_kernel = image[0x234];
  h.xloadflags = load_le<uint16_t>(image, 0x236);
  h.cmdline_size = load_le<uint32_t>(image, 0x238);
  h.pref_address = load_le<uint64_t>(image, 0x258);
  h.init_size = load_le<uint32_t>(image, 0x260);

  if ((h.loadflags & kLoadflagsLoadedHigh) == 0) {
    return invalid_input("kernel is a zImage (LOADED_HIGH clear); only bzImage is supported");
  }
  if (h.version < kXloadflagsProtocol || (h.xloadflags & kXlfKernel64) == 0) {
    return invalid_input(
        "bzImage has no 64-bit entry point (XLF_KERNEL_64 clear, boot protocol {}.{:02})",
        h.version >> 8, h.version & 0xff);
  }
  const uint64_t payload = image.size() - h.setup_bytes();
  if (uint64_t{h.syssize} * 16 > payload + 15) {
    return invalid_input("bzImage is truncated: syssize says {} bytes of kernel, the file has {}",
                         uint64_t{h.syssize} * 16, payload);
  }
  if (h.relocatable_kernel != 0 &&
      (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0)) {
    return invalid_input("bzImage kernel_alignment {:#x} is not a power of two",
                         h.kernel_alignment);
  }
  return h;
}

Result<LoadedKernel> load_bzimage(memory::GuestMemory& mem, std::span<const uint8_t> image) {
  const uint64_t ram_bytes = KUMO_TRY(layout_ram_bytes(mem));
  const uint64_t ram_end = low_ram_end(ram_bytes);
  const SetupHeader h = KUMO_TRY(parse_setup_header(image));
  const auto payload = image.subspan(static_cast<size_t>(h.setup_bytes()));

  // boot.rst §"Details of Header Fields", init_size: where the kernel runs from.
  uint64_t load_gpa = kKernelLoadGpa;
  uint64_t runtime_gpa = h.pref_address;
  if (h.relocatable_kernel != 0) {
    const uint64_t align = h.kernel_alignment;
    const auto bumped = end_of(std::max(load_gpa, h.pref_address), align - 1);
    runtime_gpa = bumped ? *bumped & ~(align - 1) : UINT64_MAX;
  } else {
    load_gpa = h.pref_address;
    if (load_gpa < kKernelLoadGpa) {
      return invalid_input("non-relocatable bzImage wants to load at {:#x}, below 1 MiB",
                           load_gpa);
    }
  }
  const auto load_end = end_of(load_gpa, payload.size());
  const auto runtime_end = end_of(runtime_gpa, h.init_size);
  if (!load_end || !runtime_end || *load_end > ram_end || *runtime_end > ram_end) {
    return invalid_input(
        "kernel does not fit in guest RAM: {} bytes loaded at {:#x}, running at {:#x} with "
        "init_size {:#x}, but low RAM ends at {:#x}",
        payload.size(), load_gpa, runtime_gpa, h.init_size, ram_end);
  }
  // boot.rst §"64-bit Boot Protocol": the kernel's range must be identity mapped.
  if (*load_end > kIdentityMapBytes || *runtime_end > kIdentityMapBytes) {
    return invalid_input("kernel at {:#x}..{:#x} is outside the identity-mapped first {} GiB",
                         std::min(load_gpa, runtime_gpa), std::max(*load_end, *runtime_end),
                         kIdentityMapBytes / kGiB);
  }
  KUMO_TRY(mem.write(memory::GuestAddress(load_gpa), payload));

  const size_t header_end =
      std::min(kSetupHeaderMagicOffset + image[kHeaderLengthByteOffset], kSetupHeaderEndMax);
  LoadedKernel loaded;
  loaded.format = KernelFormat::kBzImage;
  loaded.entry = memory::GuestAddress(load_gpa + kEntry64Offset);
  loaded.end_gpa = std::max(*load_end, *runtime_end);
  loaded.initrd_limit_gpa = std::min(ram_end, uint64_t{h.initrd_addr_max} + 1);
  loaded.cmdline_max_bytes = std::min<uint64_t>(h.cmdline_size, kCmdlineMaxBytes - 1);
  const auto header = image.subspan(kSetupHeaderGpaOffset, header_end - kSetupHeaderGpaOffset);
  loaded.setup_header.assign(header.begin(), header.end());
  return loaded;
}

}  // namespace kumo::arch::x86_64
