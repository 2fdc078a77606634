#include "devices/shared_interrupt_line.h"

#include <gtest/gtest.h>

#include <vector>

namespace kumo::devices {
namespace {

class RecordingLine final : public InterruptLine {
 public:
  Status set_level(bool asserted) override {
    levels.push_back(asserted);
    return {};
  }
  Status pulse() override { return {}; }
  std::vector<bool> levels;
};

TEST(SharedInterruptLine, StaysAssertedWhileAnySourceAssertsIt) {
  auto wire = std::make_shared<RecordingLine>();
  auto shared = SharedInterruptLine::create(wire);
  auto a = shared->add_source().value();
  auto b = shared->add_source().value();
  ASSERT_TRUE(a->set_level(true));
  ASSERT_TRUE(b->set_level(true));
  ASSERT_TRUE(a->set_level(false));  // b still pending: the line must stay high
  EXPECT_EQ(wire->levels, (std::vector<bool>{true}));
  ASSERT_TRUE(b->set_level(false));
  EXPECT_EQ(wire->levels, (std::vector<bool>{true, false}));
}

TEST(SharedInterruptLine, RepeatedLevelsOfOneSourceDoNotToggleTheWire) {
  auto wire = std::make_shared<RecordingLine>();
  auto shared = SharedInterruptLine::create(wire);
  auto a = shared->add_source().value();
  ASSERT_TRUE(a->set_level(false));
  ASSERT_TRUE(a->set_level(true));
  ASSERT_TRUE(a->set_level(true));
  EXPECT_EQ(wire->levels, (std::vector<bool>{true}));
}

TEST(SharedInterruptLine, PulseOfOneSourceLeavesAnotherSourcesLevel) {
  auto wire = std::make_shared<RecordingLine>();
  auto shared = SharedInterruptLine::create(wire);
  auto a = shared->add_source().value();
  auto b = shared->add_source().value();
  ASSERT_TRUE(b->set_level(true));
  ASSERT_TRUE(a->pulse());
  EXPECT_EQ(wire->levels, (std::vector<bool>{true}));
}

TEST(SharedInterruptLine, SixtyFifthSourceIsRefused) {
  auto shared = SharedInterruptLine::create(std::make_shared<RecordingLine>());
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(shared->add_source());
  EXPECT_FALSE(shared->add_source());
}

}  // namespace
}  // namespace kumo::devices
