#pragma once
// Synthetic kernel images for tests and fuzzer seeds: a minimal PVH ELF and a minimal
// bzImage, each valid by default so a test can break exactly one thing.

#include <cstdint>
#include <string_view>
#include <vector>

#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/memory_test_util.h"

namespace kumo::arch::x86_64::testing {

struct TestSegment {
  uint32_t type = 1;  // PT_LOAD
  uint64_t paddr = 0;
  std::vector<uint8_t> data;
  uint64_t mem_bytes = 0;  // 0: data.size()
  uint64_t align = 4;
};

inline std::vector<uint8_t> elf_note(std::string_view name, uint32_t type,
                                     const std::vector<uint8_t>& desc) {
  const size_t name_bytes = (name.size() + 1 + 3) / 4 * 4;
  const size_t desc_bytes = (desc.size() + 3) / 4 * 4;
  std::vector<uint8_t> n(12 + name_bytes + desc_bytes, 0);
  store_le<uint32_t>(n, 0, static_cast<uint32_t>(name.size() + 1));
  store_le<uint32_t>(n, 4, static_cast<uint32_t>(desc.size()));
  store_le<uint32_t>(n, 8, type);
  for (size_t i = 0; i < name.size(); ++i) n[12 + i] = static_cast<uint8_t>(name[i]);
  for (size_t i = 0; i < desc.size(); ++i) n[12 + name_bytes + i] = desc[i];
  return n;
}

inline std::vector<uint8_t> le32(uint32_t v) {
  std::vector<uint8_t> b(4);
  store_le<uint32_t>(b, 0, v);
  return b;
}

// ELF64 x86-64 ET_EXEC: header, program headers, then each segment's bytes.
inline std::vector<uint8_t> make_elf(uint64_t entry, const std::vector<TestSegment>& segments) {
  constexpr size_t kEhdr = 64;
  constexpr size_t kPhdr = 56;
  std::vector<uint8_t> f(kEhdr + kPhdr * segments.size());
  f[0] = 0x7f, f[1] = 'E', f[2] = 'L', f[3] = 'F';
  f[4] = 2, f[5] = 1, f[6] = 1;
  store_le<uint16_t>(f, 16, 2);   // ET_EXEC
  store_le<uint16_t>(f, 18, 62);  // EM_X86_64
  store_le<uint32_t>(f, 20, 1);
  store_le<uint64_t>(f, 24, entry);
  store_le<uint64_t>(f, 32, kEhdr);
  store_le<uint16_t>(f, 52, kEhdr);
  store_le<uint16_t>(f, 54, kPhdr);
  store_le<uint16_t>(f, 56, static_cast<uint16_t>(segments.size()));
  for (size_t i = 0; i < segments.size(); ++i) {
    const TestSegment& s = segments[i];
    const size_t at = kEhdr + i * kPhdr;
    store_le<uint32_t>(f, at, s.type);
    store_le<uint64_t>(f, at + 8, f.size());
    store_le<uint64_t>(f, at + 16, s.paddr);
    store_le<uint64_t>(f, at + 24, s.paddr);
    store_le<uint64_t>(f, at + 32, s.data.size());
    store_le<uint64_t>(f, at + 40, s.mem_bytes != 0 ? s.mem_bytes : s.data.size());
    store_le<uint64_t>(f, at + 48, s.align);
    f.insert(f.end(), s.data.begin(), s.data.end());
  }
  return f;
}

inline constexpr uint64_t kTestPvhEntry = kKernelLoadGpa + 0x10;

// A PVH kernel: 256 bytes of code at 1 MiB plus 4 KiB of bss, entry note at +0x10.
inline std::vector<uint8_t> make_pvh_elf() {
  std::vector<uint8_t> code(256, 0x90);
  return make_elf(0xffffffff81000000ull,
                  {{.type = 1, .paddr = kKernelLoadGpa, .data = code, .mem_bytes = 256 + 4096},
                   {.type = 4, .paddr = 0, .data = elf_note("Xen", 18, le32(kTestPvhEntry))}});
}

inline constexpr size_t kTestSetupSects = 4;
inline constexpr uint64_t kTestPayloadBytes = 0x2000;

// A bzImage (protocol 2.15, relocatable, 64-bit) with a payload of kTestPayloadBytes.
inline std::vector<uint8_t> make_bzimage() {
  std::vector<uint8_t> f((kTestSetupSects + 1) * 512 + kTestPayloadBytes, 0);
  f[0x1f1] = kTestSetupSects;
  store_le<uint32_t>(f, 0x1f4, static_cast<uint32_t>(kTestPayloadBytes / 16));
  store_le<uint16_t>(f, 0x1fe, 0xaa55);
  f[0x200] = 0xeb;
  f[0x201] = 0x6a;  // header ends at 0x26c
  store_le<uint32_t>(f, 0x202, 0x53726448);
  store_le<uint16_t>(f, 0x206, 0x020f);
  f[0x211] = 0x01;  // LOADED_HIGH
  store_le<uint32_t>(f, 0x22c, 0x7fffffff);
  store_le<uint32_t>(f, 0x230, 0x200000);
  f[0x234] = 1;
  store_le<uint16_t>(f, 0x236, 0x3);  // XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  store_le<uint32_t>(f, 0x238, 2047);
  store_le<uint64_t>(f, 0x258, 0x1000000);
  store_le<uint32_t>(f, 0x260, 0x100000);
  for (size_t i = (kTestSetupSects + 1) * 512; i < f.size(); ++i) {
    f[i] = static_cast<uint8_t>(i);
  }
  return f;
}

}  // namespace kumo::arch::x86_64::testing
