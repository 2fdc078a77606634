#include "devices/bus.h"

#include <gtest/gtest.h>

#include <vector>

namespace kumo::devices {
namespace {

class Recorder final : public BusDevice {
 public:
  void read(uint64_t offset, std::span<uint8_t> data) override {
    for (auto& b : data) b = static_cast<uint8_t>(offset);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_len = data.size();
  }
  uint64_t last_offset = 0;
  size_t last_len = 0;
};

TEST(Bus, DispatchesWithOffsetRelativeToBase) {
  Bus bus;
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(0x3f8, 8, dev));
  uint8_t v = 0xaa;
  EXPECT_TRUE(bus.write(0x3fb, std::span(&v, 1)));
  EXPECT_EQ(dev->last_offset, 3u);
  uint8_t out = 0;
  EXPECT_TRUE(bus.read(0x3fd, std::span(&out, 1)));
  EXPECT_EQ(out, 5);
}

TEST(Bus, UnmappedAndStraddlingAccessesMiss) {
  Bus bus;
  ASSERT_TRUE(bus.insert(0x100, 4, std::make_shared<Recorder>()));
  uint8_t buf[4] = {};
  EXPECT_FALSE(bus.read(0xff, std::span(buf, 1)));
  EXPECT_FALSE(bus.read(0x104, std::span(buf, 1)));
  EXPECT_FALSE(bus.read(0x102, std::span(buf, 4)));
}

TEST(Bus, OverlappingInsertIsRejected) {
  Bus bus;
  ASSERT_TRUE(bus.insert(0x100, 0x10, std::make_shared<Recorder>()));
  EXPECT_FALSE(bus.insert(0x10f, 1, std::make_shared<Recorder>()));
  EXPECT_FALSE(bus.insert(0xf0, 0x11, std::make_shared<Recorder>()));
  EXPECT_FALSE(bus.insert(UINT64_MAX, 2, std::make_shared<Recorder>()));
  EXPECT_TRUE(bus.insert(0x110, 1, std::make_shared<Recorder>()));
}

TEST(Bus, MoveRemapsRangeAndRejectsOverlap) {
  Bus bus;
  auto dev = std::make_shared<Recorder>();
  ASSERT_TRUE(bus.insert(0x1000, 0x100, dev));
  ASSERT_TRUE(bus.insert(0x3000, 0x100, std::make_shared<Recorder>()));
  ASSERT_TRUE(bus.move(0x1000, 0x2000));
  uint8_t b = 0;
  EXPECT_FALSE(bus.read(0x1000, std::span(&b, 1)));
  EXPECT_TRUE(bus.read(0x2004, std::span(&b, 1)));
  EXPECT_FALSE(bus.move(0x2000, 0x3080));  // overlaps: left unmapped
  EXPECT_FALSE(bus.read(0x2004, std::span(&b, 1)));
  EXPECT_FALSE(bus.move(0x5000, 0x6000));  // nothing there
}

TEST(Bus, RemoveUnmapsOnlyThatRange) {
  Bus bus;
  ASSERT_TRUE(bus.insert(0x1000, 0x100, std::make_shared<Recorder>()));
  ASSERT_TRUE(bus.insert(0x2000, 0x100, std::make_shared<Recorder>()));
  ASSERT_TRUE(bus.remove(0x1000));
  uint8_t b = 0;
  EXPECT_FALSE(bus.read(0x1004, std::span(&b, 1)));
  EXPECT_TRUE(bus.read(0x2004, std::span(&b, 1)));
  EXPECT_FALSE(bus.remove(0x1000));
  EXPECT_FALSE(bus.remove(0x2004));  // not a base
  EXPECT_TRUE(bus.insert(0x1000, 0x100, std::make_shared<Recorder>()));
}

}  // namespace
}  // namespace kumo::devices
