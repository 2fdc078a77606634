#include "virtio/queue.h"

#include <gtest/gtest.h>

#include "virtio/testing/driver_queue.h"
#include "virtio/virtio_spec.h"

namespace kumo::virtio {
namespace {

using memory::GuestAddress;
using testing::DriverQueue;

constexpr uint64_t kRamBytes = 1 << 20;
constexpr uint16_t kQueueSize = 8;

class SplitQueueTest : public ::testing::Test {
 protected:
  SplitQueueTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), kRamBytes}})),
        driver_(mem_, 0x1000, kQueueSize, 0x10000, 0x40000) {}

  SplitQueue make(bool event_idx = false) {
    return SplitQueue(mem_, driver_.config(), event_idx, true);
  }

  memory::GuestMemory mem_;
  DriverQueue driver_;
};

TEST_F(SplitQueueTest, PopReturnsChainsInOrderThenNothing) {
  auto q = make();
  const uint16_t h1 = driver_.add_chain({{driver_.alloc(4), 4, false}});
  const uint16_t h2 = driver_.add_chain({{driver_.alloc(4), 4, true}});
  auto c1 = q.pop();
  auto c2 = q.pop();
  auto c3 = q.pop();
  ASSERT_TRUE(c1 && *c1 && c2 && *c2 && c3);
  EXPECT_EQ((*c1)->head, h1);
  EXPECT_EQ((*c2)->head, h2);
  EXPECT_FALSE(c3->has_value());
}

TEST_F(SplitQueueTest, UsedElementsReachTheDriver) {
  auto q = make();
  const uint16_t head = driver_.add_chain({{driver_.alloc(4), 4, true}});
  auto chain = q.pop();
  ASSERT_TRUE(chain && *chain);
  ASSERT_TRUE(q.add_used(head, 3));
  auto used = driver_.pop_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 3u);
  EXPECT_FALSE(driver_.pop_used());
}

TEST_F(SplitQueueTest, SeveralUsedElementsArePublishedWithOneIndexStore) {
  auto q = make();
  std::vector<UsedElement> elements;
  for (uint32_t i = 0; i < 3; ++i) {
    elements.push_back(UsedElement{driver_.add_chain({{driver_.alloc(4), 4, true}}), i + 1});
    ASSERT_TRUE(q.pop().value().has_value());
  }
  ASSERT_TRUE(q.add_used(std::span<const UsedElement>(elements)));
  EXPECT_EQ(driver_.used_idx(), 3);
  EXPECT_EQ(q.next_used(), 3);
  for (const UsedElement& e : elements) {
    auto used = driver_.pop_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, e.id);
    EXPECT_EQ(used->len, e.len);
  }
}

TEST_F(SplitQueueTest, UndoPopGivesBackTheLastChains) {
  auto q = make();
  uint16_t heads[3];
  for (auto& h : heads) h = driver_.add_chain({{driver_.alloc(4), 4, true}});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.pop().value().has_value());
  q.undo_pop(2);
  EXPECT_EQ(q.next_avail(), 1);
  EXPECT_EQ(q.pop().value()->head, heads[1]);
  EXPECT_EQ(q.pop().value()->head, heads[2]);
  EXPECT_FALSE(q.pop().value().has_value());
}

TEST_F(SplitQueueTest, IndexWrapsAround16Bits) {
  auto q = make();
  for (int i = 0; i < 70000; ++i) {
    const uint16_t head = driver_.add_chain({{0x20000, 4, false}});
    auto chain = q.pop();
    ASSERT_TRUE(chain && *chain) << i;
    ASSERT_TRUE(q.add_used(head, 0));
    ASSERT_TRUE(driver_.pop_used());
  }
  EXPECT_EQ(q.next_avail(), static_cast<uint16_t>(70000));
}

TEST_F(SplitQueueTest, AvailIndexJumpBeyondQueueSizeIsAnError) {
  auto q = make();
  driver_.set_avail_idx(kQueueSize + 1);
  auto chain = q.pop();
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().kind, ErrorKind::kGuest);
}

TEST_F(SplitQueueTest, BadChainIsAnError) {
  auto q = make();
  driver_.write_descriptor(0, {0, 8, kDescFlagNext, 0});
  driver_.publish(0);
  EXPECT_FALSE(q.pop());
}

TEST_F(SplitQueueTest, AvailRingHeadOutOfRangeIsAnError) {
  auto q = make();
  driver_.publish(200);
  EXPECT_FALSE(q.pop());
}

TEST_F(SplitQueueTest, NoInterruptFlagSuppressesWithoutEventIdx) {
  auto q = make();
  const uint16_t head = driver_.add_chain({{driver_.alloc(4), 4, true}});
  ASSERT_TRUE(q.pop());
  ASSERT_TRUE(q.add_used(head, 0));
  driver_.set_avail_flags(kAvailFlagNoInterrupt);
  EXPECT_FALSE(*q.needs_interrupt());
  driver_.set_avail_flags(0);
  EXPECT_TRUE(*q.needs_interrupt());
}

TEST_F(SplitQueueTest, EventIdxInterruptsOnlyWhenUsedEventIsCrossed) {
  auto q = make(/*event_idx=*/true);
  driver_.set_used_event(2);  // driver wants an interrupt once used idx passes 2
  for (int i = 0; i < 4; ++i) {
    const uint16_t head = driver_.add_chain({{driver_.alloc(4), 4, true}});
    ASSERT_TRUE(q.pop());
    ASSERT_TRUE(q.add_used(head, 0));
    const bool expect = i == 2;  // new idx 3 crosses used_event 2
    EXPECT_EQ(*q.needs_interrupt(), expect) << i;
  }
}

TEST_F(SplitQueueTest, EventIdxBatchCrossingUsedEventInterruptsOnce) {
  auto q = make(true);
  driver_.set_used_event(0);
  for (int i = 0; i < 3; ++i) {
    const uint16_t head = driver_.add_chain({{driver_.alloc(4), 4, true}});
    ASSERT_TRUE(q.pop());
    ASSERT_TRUE(q.add_used(head, 0));
  }
  EXPECT_TRUE(*q.needs_interrupt());
  EXPECT_FALSE(*q.needs_interrupt());
}

TEST_F(SplitQueueTest, EventIdxEnablePublishesAvailEvent) {
  auto q = make(true);
  driver_.add_chain({{driver_.alloc(4), 4, true}});
  ASSERT_TRUE(q.pop());
  auto more = q.set_notifications(true);
  ASSERT_TRUE(more);
  EXPECT_FALSE(*more);
  EXPECT_EQ(driver_.avail_event(), 1);
}

TEST_F(SplitQueueTest, DisablingNotificationsSetsNoNotify) {
  auto q = make(false);
  ASSERT_TRUE(q.set_notifications(false));
  EXPECT_EQ(driver_.used_flags(), kUsedFlagNoNotify);
  driver_.add_chain({{driver_.alloc(4), 4, true}});
  auto more = q.set_notifications(true);
  EXPECT_EQ(driver_.used_flags(), 0);
  ASSERT_TRUE(more);
  EXPECT_TRUE(*more);  // a chain arrived: the caller must not sleep
}

TEST(SplitQueueValidate, RejectsBadSizesAlignmentAndRanges) {
  auto mem = *memory::GuestMemory::create({{GuestAddress(0), 0x10000}});
  QueueConfig good{8, true, GuestAddress(0x1000), GuestAddress(0x2000), GuestAddress(0x3000)};
  EXPECT_TRUE(SplitQueue::validate(mem, good, true));
  auto bad = good;
  bad.size = 0;
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
  bad.size = 6;
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
  bad = good;
  bad.desc_table = GuestAddress(0x1008);
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
  bad = good;
  bad.used_ring = GuestAddress(0x3002);
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
  bad = good;
  bad.used_ring = GuestAddress(0xfff0);
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
  bad = good;
  bad.avail_ring = GuestAddress(0xffff'ffff'ffff'fff0ULL);
  EXPECT_FALSE(SplitQueue::validate(mem, bad, true));
}

}  // namespace
}  // namespace kumo::virtio
