#pragma once
// The boot GDT kumo writes at kBootGdtGpa, and the segment registers derived from it.
//
// Selectors are fixed so both entry protocols are satisfied by one table:
//   0x08 flat 32-bit code   PVH boot ABI: "CS: 32-bit read/execute code segment, base 0,
//                           limit 0xFFFFFFFF; selector value unspecified"
//   0x10 flat 64-bit code   Linux boot protocol 2.15 §"64-bit Boot Protocol": __BOOT_CS = 0x10
//   0x18 flat data          __BOOT_DS = 0x18; also DS/ES/SS for PVH
//   0x20 TSS (busy, 32-bit, base 0, limit 0x67), 16 bytes so it is also a valid long-mode
//        system descriptor. PVH: "TR: 32-bit TSS (active) with base 0 and limit 0x67".

#include <array>
#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

inline constexpr uint16_t kCode32Selector = 0x08;
inline constexpr uint16_t kCode64Selector = 0x10;
inline constexpr uint16_t kDataSelector = 0x18;
inline constexpr uint16_t kTssSelector = 0x20;

// A segment register's hidden state, field for field what KVM's struct kvm_segment holds.
struct Segment {
  uint64_t base = 0;
  uint32_t limit = 0;  // in bytes, already scaled by the granularity bit
  uint16_t selector = 0;
  uint8_t type = 0;
  uint8_t present = 0;
  uint8_t dpl = 0;
  uint8_t db = 0;
  uint8_t s = 0;
  uint8_t l = 0;
  uint8_t g = 0;
  uint8_t avl = 0;
  bool operator==(const Segment&) const = default;
};

inline constexpr size_t kBootGdtEntries = 6;

// The eight-byte descriptors of the boot GDT (index = selector / 8).
[[nodiscard]] std::array<uint64_t, kBootGdtEntries> boot_gdt();

// Decodes the boot GDT entry that `selector` names (KUMO_CHECKs that it is one of ours).
[[nodiscard]] Segment boot_segment(uint16_t selector);

// Writes boot_gdt() at kBootGdtGpa. The GDTR limit is kBootGdtEntries * 8 - 1.
[[nodiscard]] Status write_boot_gdt(memory::GuestMemory& mem);

}  // namespace kumo::arch::x86_64
