#include "arch/x86_64/layout.h"

#include <gtest/gtest.h>

#include "arch/x86_64/boot_entry.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/memory_test_util.h"

namespace kumo::arch::x86_64 {
namespace {

using memory::GuestAddress;

TEST(Layout, SmallRamIsOneRegionFromZero) {
  const auto regions = ram_regions(256 * kMiB).value();
  ASSERT_EQ(regions.size(), 1u);
  EXPECT_EQ(regions[0].start.raw(), 0u);
  EXPECT_EQ(regions[0].size_bytes, 256 * kMiB);
}

TEST(Layout, RamLargerThanThreeGibSplitsAroundTheHole) {
  const auto regions = ram_regions(4 * kGiB).value();
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(regions[0].start.raw(), 0u);
  EXPECT_EQ(regions[0].size_bytes, kMmioHoleGpa);
  EXPECT_EQ(regions[1].start.raw(), kHighRamGpa);
  EXPECT_EQ(regions[1].size_bytes, 1 * kGiB);
}

TEST(Layout, RamOfExactlyThreeGibHasNoHighRegion) {
  EXPECT_EQ(ram_regions(3 * kGiB).value().size(), 1u);
}

TEST(Layout, RamBelowMinimumIsInvalidInput) {
  const auto r = ram_regions(kMinRamBytes - kPageSize);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("minimum"), std::string::npos);
}

TEST(Layout, RamAboveMaximumOrUnalignedIsInvalidInput) {
  EXPECT_EQ(ram_regions(kMaxRamBytes + kPageSize).error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(ram_regions(kMinRamBytes + 1).error().kind, ErrorKind::kInvalidInput);
}

TEST(Layout, LayoutRamBytesAcceptsMemoryFromRamRegions) {
  auto mem = testing::make_guest_memory();
  EXPECT_EQ(layout_ram_bytes(mem).value(), testing::kTestRamBytes);
}

TEST(Layout, LayoutRamBytesRejectsOtherShapes) {
  auto mem = memory::GuestMemory::create({{GuestAddress(kMiB), 32 * kMiB}}).value();
  const auto r = layout_ram_bytes(mem);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
}

TEST(Layout, IdentityPageTablesMapFirstGibWithLargePages) {
  auto mem = testing::make_guest_memory();
  ASSERT_TRUE(write_identity_page_tables(mem));
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPml4Gpa)).value(), kPdptGpa | 0x3);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPml4Gpa + 8)).value(), 0u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdptGpa)).value(), kPdGpa | 0x3);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdGpa)).value(), 0x83u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kPdGpa + 511 * 8)).value(),
            (511 * 2 * kMiB) | 0x83);
}

TEST(Gdt, SelectorsDecodeToFlatSegments) {
  const Segment code32 = boot_segment(kCode32Selector);
  EXPECT_EQ(code32.base, 0u);
  EXPECT_EQ(code32.limit, 0xffffffffu);
  EXPECT_EQ(code32.type, 0xb);
  EXPECT_EQ(code32.db, 1);
  EXPECT_EQ(code32.l, 0);
  const Segment code64 = boot_segment(kCode64Selector);
  EXPECT_EQ(code64.l, 1);
  EXPECT_EQ(code64.db, 0);
  EXPECT_EQ(code64.present, 1);
  EXPECT_EQ(code64.s, 1);
  const Segment data = boot_segment(kDataSelector);
  EXPECT_EQ(data.type, 0x3);
  EXPECT_EQ(data.limit, 0xffffffffu);
  const Segment tss = boot_segment(kTssSelector);
  EXPECT_EQ(tss.type, 0xb);
  EXPECT_EQ(tss.s, 0);
  EXPECT_EQ(tss.limit, 0x67u);
  EXPECT_EQ(tss.g, 0);
}

TEST(Gdt, WrittenGdtMatchesBootGdt) {
  auto mem = testing::make_guest_memory();
  ASSERT_TRUE(write_boot_gdt(mem));
  const auto gdt = boot_gdt();
  for (size_t i = 0; i < gdt.size(); ++i) {
    EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(kBootGdtGpa + i * 8)).value(), gdt[i]);
  }
}

TEST(BootEntry, PvhEntryIsProtectedModeWithStartInfoInRbx) {
  const BootEntry e = pvh_boot_entry(GuestAddress(0x100010), GuestAddress(kPvhStartInfoGpa),
                                     GuestAddress(kAcpiGpa));
  EXPECT_EQ(e.mode, CpuMode::kProtected32);
  EXPECT_EQ(e.rip, 0x100010u);
  EXPECT_EQ(e.rbx, kPvhStartInfoGpa);
  EXPECT_EQ(e.cr0 & kCr0Pg, 0u);
  EXPECT_NE(e.cr0 & kCr0Pe, 0u);
  EXPECT_EQ(e.efer, 0u);
  EXPECT_EQ(e.cs.selector, kCode32Selector);
  EXPECT_EQ(e.gdt.base, kBootGdtGpa);
}

TEST(BootEntry, Linux64EntryIsLongModeWithBootParamsInRsi) {
  const BootEntry e = linux64_boot_entry(GuestAddress(0x100200), GuestAddress(kZeroPageGpa),
                                         GuestAddress(kAcpiGpa));
  EXPECT_EQ(e.mode, CpuMode::kLong64);
  EXPECT_EQ(e.rsi, kZeroPageGpa);
  EXPECT_EQ(e.cr3, kPml4Gpa);
  EXPECT_NE(e.cr0 & kCr0Pg, 0u);
  EXPECT_NE(e.cr4 & kCr4Pae, 0u);
  EXPECT_EQ(e.efer, kEferLme | kEferLma);
  EXPECT_EQ(e.cs.selector, 0x10);
  EXPECT_EQ(e.ds.selector, 0x18);
}

}  // namespace
}  // namespace kumo::arch::x86_64
