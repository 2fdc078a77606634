#include "arch/x86_64/gdt.h"

#include "arch/x86_64/layout.h"
#include "base/check.h"

namespace kumo::arch::x86_64 {
namespace {

// Intel SDM Vol. 3A §3.4.5 "Segment Descriptors". `flags` holds access byte (bits 0-7) and
// the G/DB/L/AVL nibble (bits 12-15), as in the descriptor's bytes 5 and 6.
constexpr uint64_t descriptor(uint16_t flags, uint32_t base, uint32_t limit) {
  return ((static_cast<uint64_t>(base) & 0xff00'0000) << 32) |
         ((static_cast<uint64_t>(flags) & 0xf0ff) << 40) |
         ((static_cast<uint64_t>(limit) & 0x000f'0000) << 32) |
         ((static_cast<uint64_t>(base) & 0x00ff'ffff) << 16) |
         (static_cast<uint64_t>(limit) & 0x0000'ffff);
}

constexpr std::array<uint64_t, kBootGdtEntries> kGdt = {
    0,                                  // null
    descriptor(0xc09b, 0, 0xfffff),     // 0x08: code, 32-bit (D=1), 4 GiB, accessed
    descriptor(0xa09b, 0, 0xfffff),     // 0x10: code, 64-bit (L=1)
    descriptor(0xc093, 0, 0xfffff),     // 0x18: data, read/write, 4 GiB
    descriptor(0x008b, 0, 0x67),        // 0x20: busy 32-bit TSS, byte granular
    0,                                  // upper half of the TSS in long mode
};

}  // namespace

std::array<uint64_t, kBootGdtEntries> boot_gdt() { return kGdt; }

Segment boot_segment(uint16_t selector) {
  KUMO_CHECK(selector % 8 == 0 && selector / 8 < kBootGdtEntries - 1 && selector != 0);
  const uint64_t d = kGdt[selector / 8];
  Segment s;
  s.base = ((d >> 16) & 0xff'ffff) | ((d >> 32) & 0xff00'0000);
  const uint32_t raw_limit = static_cast<uint32_t>((d & 0xffff) | ((d >> 32) & 0xf'0000));
  s.g = static_cast<uint8_t>((d >> 55) & 1);
  s.limit = s.g != 0 ? (raw_limit << 12) | 0xfff : raw_limit;
  s.selector = selector;
  s.type = static_cast<uint8_t>((d >> 40) & 0xf);
  s.s = static_cast<uint8_t>((d >> 44) & 1);
  s.dpl = static_cast<uint8_t>((d >> 45) & 3);
  s.present = static_cast<uint8_t>((d >> 47) & 1);
  s.avl = static_cast<uint8_t>((d >> 52) & 1);
  s.l = static_cast<uint8_t>((d >> 53) & 1);
  s.db = static_cast<uint8_t>((d >> 54) & 1);
  return s;
}

Status write_boot_gdt(memory::GuestMemory& mem) {
  return mem.write_obj(memory::GuestAddress(kBootGdtGpa), kGdt);
}

}  // namespace kumo::arch::x86_64
