#include "arch/x86_64/e820.h"

#include <gtest/gtest.h>

#include "arch/x86_64/layout.h"

namespace kumo::arch::x86_64 {
namespace {

TEST(E820, SmallRamHasLowRamReservedAreaAndHighMemory) {
  const auto map = e820_map(128 * kMiB).value();
  const std::vector<E820Entry> expected = {
      {0, 0x9fc00, E820Type::kRam},
      {0x9fc00, 0x100000 - 0x9fc00, E820Type::kReserved},
      {0x100000, 128 * kMiB - 0x100000, E820Type::kRam},
  };
  EXPECT_EQ(map, expected);
}

TEST(E820, RamAboveThreeGibContinuesAtFourGib) {
  const auto map = e820_map(6 * kGiB).value();
  ASSERT_EQ(map.size(), 4u);
  EXPECT_EQ(map[2], (E820Entry{0x100000, 0xc000'0000 - 0x100000, E820Type::kRam}));
  EXPECT_EQ(map[3], (E820Entry{0x1'0000'0000, 3 * kGiB, E820Type::kRam}));
}

TEST(E820, ReservedAreaCoversAcpiAndMpTables) {
  const auto map = e820_map(kMinRamBytes).value();
  EXPECT_LE(map[1].addr, kAcpiGpa);
  EXPECT_GE(map[1].addr + map[1].size, kMpTableGpa + kMpTableMaxBytes);
}

TEST(E820, TooSmallRamIsRejected) {
  EXPECT_EQ(e820_map(kMiB).error().kind, ErrorKind::kInvalidInput);
}

}  // namespace
}  // namespace kumo::arch::x86_64
