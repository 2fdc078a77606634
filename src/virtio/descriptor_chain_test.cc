#include "virtio/descriptor_chain.h"

#include <gtest/gtest.h>

#include "virtio/testing/driver_queue.h"
#include "virtio/virtio_spec.h"

namespace kumo::virtio {
namespace {

using memory::GuestAddress;
using testing::DriverQueue;
using testing::Segment;

constexpr uint64_t kRamBytes = 1 << 20;
constexpr uint16_t kQueueSize = 16;

class DescriptorChainTest : public ::testing::Test {
 protected:
  DescriptorChainTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), kRamBytes}})),
        driver_(mem_, 0x1000, kQueueSize, 0x10000, 0x40000) {}

  Result<DescriptorChain> walk(uint16_t head, bool indirect = true) {
    return walk_descriptor_chain(mem_, driver_.config().desc_table, kQueueSize, head, indirect);
  }

  memory::GuestMemory mem_;
  DriverQueue driver_;
};

TEST_F(DescriptorChainTest, ReadableThenWritableBuffersAreSplit) {
  const uint64_t a = driver_.alloc(16), b = driver_.alloc(100), c = driver_.alloc(1);
  const uint16_t head = driver_.add_chain({{a, 16, false}, {b, 100, true}, {c, 1, true}});
  auto chain = walk(head);
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(chain->head, head);
  ASSERT_EQ(chain->readable.size(), 1u);
  ASSERT_EQ(chain->writable.size(), 2u);
  EXPECT_EQ(chain->readable[0].addr.raw(), a);
  EXPECT_EQ(chain->writable[1].addr.raw(), c);
  EXPECT_EQ(chain->readable_bytes, 16u);
  EXPECT_EQ(chain->writable_bytes, 101u);
}

TEST_F(DescriptorChainTest, IndirectTableIsFollowed) {
  const uint64_t a = driver_.alloc(8), b = driver_.alloc(8);
  const uint16_t head = driver_.add_indirect_chain({{a, 8, false}, {b, 8, true}});
  auto chain = walk(head);
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(chain->readable.size(), 1u);
  EXPECT_EQ(chain->writable.size(), 1u);
}

TEST_F(DescriptorChainTest, IndirectWithoutFeatureIsRejected) {
  const uint64_t a = driver_.alloc(8);
  const uint16_t head = driver_.add_indirect_chain({{a, 8, false}});
  EXPECT_FALSE(walk(head, /*indirect=*/false));
}

TEST_F(DescriptorChainTest, HeadOutOfRangeIsRejected) { EXPECT_FALSE(walk(kQueueSize)); }

TEST_F(DescriptorChainTest, CycleIsRejectedAfterQueueSizeHops) {
  const uint64_t a = driver_.alloc(8);
  driver_.write_descriptor(0, {a, 8, kDescFlagNext, 1});
  driver_.write_descriptor(1, {a, 8, kDescFlagNext, 0});
  auto chain = walk(0);
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().kind, ErrorKind::kGuest);
  EXPECT_NE(chain.error().message.find("loops"), std::string::npos);
}

TEST_F(DescriptorChainTest, SelfLoopIsRejected) {
  driver_.write_descriptor(3, {driver_.alloc(8), 8, kDescFlagNext, 3});
  EXPECT_FALSE(walk(3));
}

TEST_F(DescriptorChainTest, NextOutOfRangeIsRejected) {
  driver_.write_descriptor(0, {driver_.alloc(8), 8, kDescFlagNext, kQueueSize});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, BufferOutsideGuestRamIsRejected) {
  driver_.write_descriptor(0, {kRamBytes - 4, 8, 0, 0});
  EXPECT_FALSE(walk(0));
  driver_.write_descriptor(0, {~uint64_t{0} - 2, 8, 0, 0});  // wraps
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, ReadableAfterWritableIsRejected) {
  const uint64_t a = driver_.alloc(8);
  driver_.write_descriptor(0, {a, 8, kDescFlagWrite | kDescFlagNext, 1});
  driver_.write_descriptor(1, {a, 8, 0, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, ZeroLengthBuffersAreDropped) {
  const uint64_t a = driver_.alloc(8);
  driver_.write_descriptor(0, {a, 0, kDescFlagNext, 1});
  driver_.write_descriptor(1, {a, 8, kDescFlagWrite, 0});
  auto chain = walk(0);
  ASSERT_TRUE(chain);
  EXPECT_TRUE(chain->readable.empty());
  EXPECT_EQ(chain->writable.size(), 1u);
}

TEST_F(DescriptorChainTest, NestedIndirectIsRejected) {
  const uint64_t inner = driver_.alloc(16);
  const uint64_t outer = driver_.alloc(16);
  driver_.write_table(inner, std::vector<Descriptor>{{driver_.alloc(8), 8, 0, 0}});
  driver_.write_table(outer, std::vector<Descriptor>{{inner, 16, kDescFlagIndirect, 0}});
  driver_.write_descriptor(0, {outer, 16, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectWithNextIsRejected) {
  const uint64_t table = driver_.alloc(16);
  driver_.write_table(table, std::vector<Descriptor>{{driver_.alloc(8), 8, 0, 0}});
  driver_.write_descriptor(0, {table, 16, kDescFlagIndirect | kDescFlagNext, 1});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectLengthNotMultipleOf16IsRejected) {
  const uint64_t table = driver_.alloc(32);
  driver_.write_descriptor(0, {table, 24, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
  driver_.write_descriptor(0, {table, 0, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectTableLargerThanQueueIsRejected) {
  const uint64_t table = driver_.alloc(16 * (kQueueSize + 1));
  driver_.write_descriptor(0, {table, 16 * (kQueueSize + 1), kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectTableOutsideRamIsRejected) {
  driver_.write_descriptor(0, {kRamBytes - 16, 32, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectCycleIsRejected) {
  const uint64_t table = driver_.alloc(32);
  const uint64_t a = driver_.alloc(8);
  driver_.write_table(table, std::vector<Descriptor>{{a, 8, kDescFlagNext, 1},
                                                    {a, 8, kDescFlagNext, 0}});
  driver_.write_descriptor(0, {table, 32, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, IndirectNextOutOfTableIsRejected) {
  const uint64_t table = driver_.alloc(32);
  driver_.write_table(table, std::vector<Descriptor>{{driver_.alloc(8), 8, kDescFlagNext, 2},
                                                    {driver_.alloc(8), 8, 0, 0}});
  driver_.write_descriptor(0, {table, 32, kDescFlagIndirect, 0});
  EXPECT_FALSE(walk(0));
}

TEST_F(DescriptorChainTest, TotalLengthOver4GiBIsRejected) {
  // Guest RAM is small, so use a big mapping to make lengths pass the range check.
  auto big = memory::GuestMemory::create({{GuestAddress(0), 0x1'0000'0000ULL}});
  ASSERT_TRUE(big);
  DriverQueue driver(*big, 0x1000, kQueueSize, 0x10000, 0x1000);
  driver.write_descriptor(0, {0, 0xffff'0000U, kDescFlagNext, 1});
  driver.write_descriptor(1, {0, 0xffff'0000U, 0, 0});
  auto chain = walk_descriptor_chain(*big, driver.config().desc_table, kQueueSize, 0, true);
  ASSERT_FALSE(chain);
  EXPECT_NE(chain.error().message.find("4 GiB"), std::string::npos);
}

TEST_F(DescriptorChainTest, DescriptorTableOutsideRamIsAnError) {
  auto chain = walk_descriptor_chain(mem_, GuestAddress(kRamBytes - 16), kQueueSize, 3, true);
  EXPECT_FALSE(chain);
}

}  // namespace
}  // namespace kumo::virtio
