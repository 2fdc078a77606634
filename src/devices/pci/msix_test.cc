#include "devices/pci/msix.h"

#include <gtest/gtest.h>

#include <cstring>

#include "devices/virtio/testing/fakes.h"

namespace kumo::devices::pci {
namespace {

using virtio::testing::FakeMsiAllocator;

class MsixTableTest : public ::testing::Test {
 protected:
  MsixTableTest() {
    std::vector<std::unique_ptr<MsiVector>> v;
    for (int i = 0; i < 4; ++i) v.push_back(*alloc_.allocate());
    table_ = std::make_unique<MsixTable>(std::move(v));
  }
  void write32(uint64_t offset, uint32_t value) {
    table_->table_write(offset, std::span(reinterpret_cast<const uint8_t*>(&value), 4));
  }
  uint32_t read32(uint64_t offset) {
    uint32_t v = 0;
    table_->table_read(offset, std::span(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  FakeMsiAllocator alloc_;
  std::unique_ptr<MsixTable> table_;
};

TEST_F(MsixTableTest, EntriesStartMasked) {
  EXPECT_EQ(read32(12), 1u);
  EXPECT_EQ(read32(16 * 3 + 12), 1u);
}

TEST_F(MsixTableTest, ResetDisablesAndMasksEveryEntryAndForgetsPendingBits) {
  table_->set_message_control(0xc000);  // enabled, function masked
  write32(16, 0xfee0'0000);
  write32(24, 0x41);
  write32(28, 0);
  ASSERT_TRUE(table_->trigger(1));  // pending behind the function mask
  table_->reset();
  EXPECT_FALSE(table_->enabled());
  for (uint64_t entry = 0; entry < 4; ++entry) {
    EXPECT_EQ(read32(16 * entry), 0u);
    EXPECT_EQ(read32(16 * entry + 8), 0u);
    EXPECT_EQ(read32(16 * entry + 12), 1u);
  }
  uint8_t pba = 0xff;
  table_->pba_read(0, std::span(&pba, 1));
  EXPECT_EQ(pba, 0);
  {
    auto* v = alloc_.vectors[1];
    std::lock_guard lock(v->mutex);
    EXPECT_TRUE(v->masked);  // the VMM drops its route
    EXPECT_EQ(v->message, MsiMessage{});
  }
  table_->set_message_control(0x8000);  // the pending bit was dropped: unmasking fires nothing
  write32(16 + 12, 0);
  EXPECT_EQ(alloc_.vectors[1]->triggers.load(), 0);
}

TEST_F(MsixTableTest, ProgrammingAnEntryRoutesIt) {
  table_->set_message_control(0x8000);
  write32(16, 0xfee0'0000);
  write32(20, 0);
  write32(24, 0x41);
  write32(28, 0);
  auto* v = alloc_.vectors[1];
  std::lock_guard lock(v->mutex);
  EXPECT_EQ(v->message.address, 0xfee0'0000u);
  EXPECT_EQ(v->message.data, 0x41u);
  EXPECT_FALSE(v->masked);
}

TEST_F(MsixTableTest, MaskedVectorLatchesPendingAndFiresOnUnmask) {
  table_->set_message_control(0x8000);
  ASSERT_TRUE(table_->trigger(2));
  EXPECT_EQ(alloc_.vectors[2]->triggers.load(), 0);
  uint8_t pba = 0;
  table_->pba_read(0, std::span(&pba, 1));
  EXPECT_EQ(pba, 0x4);
  write32(16 * 2 + 12, 0);
  EXPECT_EQ(alloc_.vectors[2]->triggers.load(), 1);
  table_->pba_read(0, std::span(&pba, 1));
  EXPECT_EQ(pba, 0);
}

TEST_F(MsixTableTest, FunctionMaskHoldsEveryVector) {
  table_->set_message_control(0x8000 | 0x4000);
  write32(12, 0);
  ASSERT_TRUE(table_->trigger(0));
  EXPECT_EQ(alloc_.vectors[0]->triggers.load(), 0);
  table_->set_message_control(0x8000);
  EXPECT_EQ(alloc_.vectors[0]->triggers.load(), 1);
}

TEST_F(MsixTableTest, OutOfRangeAndOddAccessesAreIgnored) {
  EXPECT_TRUE(table_->trigger(100));
  write32(64, 0x1234);  // past the table
  EXPECT_EQ(read32(64), 0u);
  uint8_t b = 0xff;
  table_->table_write(1, std::span<const uint8_t>(&b, 1));
  table_->table_read(2, std::span(&b, 1));
  EXPECT_EQ(b, 0);
}

TEST_F(MsixTableTest, CapabilityAdvertisesSizeAndLocations) {
  const auto body = table_->capability_body(0, 0x4000, 0x6000);
  ASSERT_EQ(body.size(), 10u);
  uint16_t control = 0;
  uint32_t table = 0, pba = 0;
  std::memcpy(&control, &body[0], 2);
  std::memcpy(&table, &body[2], 4);
  std::memcpy(&pba, &body[6], 4);
  EXPECT_EQ(control, 3);
  EXPECT_EQ(table, 0x4000u);
  EXPECT_EQ(pba, 0x6000u);
}

}  // namespace
}  // namespace kumo::devices::pci
