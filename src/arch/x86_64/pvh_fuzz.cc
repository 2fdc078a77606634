// libFuzzer target: the ELF parser and PVH loader (pvh.h, elf.h) on arbitrary kernel files,
// loading into a small guest, then the rest of the boot path for images that load.

#include <cstddef>
#include <cstdint>
#include <span>

#include "arch/x86_64/elf.h"
#include "arch/x86_64/kernel_loader.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/pvh.h"

using namespace kumo::arch::x86_64;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kumo::memory::GuestMemory mem = testing::make_guest_memory(kMinRamBytes);
  const std::span<const uint8_t> image(data, size);
  if (auto elf = ElfImage::parse(image)) {
    (void)elf->find_note("GNU", 3);
  }
  if (load_pvh_kernel(mem, image)) {
    (void)load_kernel_image(mem, image, image.first(size / 2), {.cmdline = "console=ttyS0"});
  }
  return 0;
}
