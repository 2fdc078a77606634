// libFuzzer target: the bzImage setup-header parser and loader (bzimage.h) and the zero
// page built from what it accepts, loading into a small guest.

#include <cstddef>
#include <cstdint>
#include <span>

#include "arch/x86_64/bzimage.h"
#include "arch/x86_64/kernel_loader.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/zero_page.h"

using namespace kumo::arch::x86_64;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static kumo::memory::GuestMemory mem = testing::make_guest_memory(kMinRamBytes);
  const std::span<const uint8_t> image(data, size);
  if (load_bzimage(mem, image)) {
    (void)load_kernel_image(mem, image, image.first(size / 3), {.cmdline = "console=ttyS0"});
  }
  return 0;
}
