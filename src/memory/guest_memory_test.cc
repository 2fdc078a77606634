#include "memory/guest_memory.h"

#include <gtest/gtest.h>

namespace kumo::memory {
namespace {

GuestMemory two_regions() {
  return GuestMemory::create({{GuestAddress(0), 0x10000}, {GuestAddress(0x100000), 0x2000}})
      .value();
}

TEST(GuestMemory, WriteThenReadRoundTrips) {
  GuestMemory mem = two_regions();
  ASSERT_TRUE(mem.write_obj<uint64_t>(GuestAddress(0x100008), 0x1122334455667788ull));
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x100008)).value(), 0x1122334455667788ull);
}

TEST(GuestMemory, AccessInHoleIsGuestError) {
  GuestMemory mem = two_regions();
  auto r = mem.read_obj<uint32_t>(GuestAddress(0x20000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kGuest);
}

TEST(GuestMemory, AccessStraddlingRegionEndIsRejected) {
  GuestMemory mem = two_regions();
  EXPECT_FALSE(mem.read_obj<uint64_t>(GuestAddress(0xfffc)));
  EXPECT_TRUE(mem.read_obj<uint32_t>(GuestAddress(0xfffc)));
}

TEST(GuestMemory, WrappingRangeIsRejected) {
  GuestMemory mem = two_regions();
  EXPECT_FALSE(mem.host_span(GuestAddress(0x1000), UINT64_MAX));
  EXPECT_FALSE(mem.host_span(GuestAddress(UINT64_MAX - 1), 4));
}

TEST(GuestMemory, UnalignedOrOverlappingRegionsAreRejected) {
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0x100), 0x1000}}));
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0x2000}, {GuestAddress(0x1000), 0x1000}}));
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0}}));
}

TEST(GuestMemory, MemoryIsZeroInitiallyAndSharedThroughMemfd) {
  GuestMemory mem = two_regions();
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x40)).value(), 0u);
  EXPECT_GE(mem.regions()[0].memfd(), 0);
  EXPECT_EQ(mem.total_bytes(), 0x12000u);
}

TEST(GuestMemory, DiscardAllZeroesEveryRegion) {
  GuestMemory mem = two_regions();
  ASSERT_TRUE(mem.write_obj<uint64_t>(GuestAddress(0x10), ~0ull));
  ASSERT_TRUE(mem.write_obj<uint64_t>(GuestAddress(0x101000), ~0ull));
  ASSERT_TRUE(mem.discard_all());
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x10)).value(), 0u);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x101000)).value(), 0u);
}

}  // namespace
}  // namespace kumo::memory
