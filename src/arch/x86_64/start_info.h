#pragma once
// The PVH boot ABI's start-of-day structures, as defined by Xen's
// xen/include/public/arch-x86/hvm/start_info.h (version 1). All little-endian, no padding.

#include <cstdint>
#include <type_traits>

namespace kumo::arch::x86_64 {

inline constexpr uint32_t kHvmStartMagic = 0x336ec578;
inline constexpr uint32_t kHvmStartInfoVersion = 1;

struct HvmStartInfo {
  uint32_t magic = kHvmStartMagic;
  uint32_t version = kHvmStartInfoVersion;
  uint32_t flags = 0;
  uint32_t nr_modules = 0;
  uint64_t modlist_paddr = 0;
  uint64_t cmdline_paddr = 0;
  uint64_t rsdp_paddr = 0;
  uint64_t memmap_paddr = 0;  // version 1
  uint32_t memmap_entries = 0;
  uint32_t reserved = 0;
};

struct HvmModlistEntry {
  uint64_t paddr = 0;
  uint64_t size = 0;
  uint64_t cmdline_paddr = 0;
  uint64_t reserved = 0;
};

struct HvmMemmapTableEntry {
  uint64_t addr = 0;
  uint64_t size = 0;
  uint32_t type = 0;  // e820 types
  uint32_t reserved = 0;
};

static_assert(sizeof(HvmStartInfo) == 56 && std::has_unique_object_representations_v<HvmStartInfo>);
static_assert(sizeof(HvmModlistEntry) == 32 &&
              std::has_unique_object_representations_v<HvmModlistEntry>);
static_assert(sizeof(HvmMemmapTableEntry) == 24 &&
              std::has_unique_object_representations_v<HvmMemmapTableEntry>);

}  // namespace kumo::arch::x86_64
