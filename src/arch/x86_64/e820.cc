#include "arch/x86_64/e820.h"

#include "arch/x86_64/layout.h"

namespace kumo::arch::x86_64 {

Result<std::vector<E820Entry>> e820_map(uint64_t ram_bytes) {
  const auto regions = KUMO_TRY(ram_regions(ram_bytes));
  std::vector<E820Entry> map;
  map.push_back({0, kEbdaGpa, E820Type::kRam});
  map.push_back({kEbdaGpa, kKernelLoadGpa - kEbdaGpa, E820Type::kReserved});
  map.push_back({kKernelLoadGpa, low_ram_end(ram_bytes) - kKernelLoadGpa, E820Type::kRam});
  for (size_t i = 1; i < regions.size(); ++i) {
    map.push_back({regions[i].start.raw(), regions[i].size_bytes, E820Type::kRam});
  }
  return map;
}

}  // namespace kumo::arch::x86_64
