#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "devices/legacy/boot_timer.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial.h"

namespace kumo::devices {
namespace {

class FakeLine final : public InterruptLine {
 public:
  Status set_level(bool asserted) override {
    level = asserted;
    ++changes;
    return {};
  }
  Status pulse() override { return {}; }
  bool level = false;
  int changes = 0;
};

uint8_t rd(BusDevice& d, uint64_t off) {
  uint8_t v = 0;
  d.read(off, std::span(&v, 1));
  return v;
}
void wr(BusDevice& d, uint64_t off, uint8_t v) { d.write(off, std::span(&v, 1)); }

TEST(Serial, TransmittedBytesReachSink) {
  std::string out;
  Serial s([&](std::span<const uint8_t> b) { out.append(b.begin(), b.end()); }, nullptr);
  for (char c : std::string("hi\n")) wr(s, 0, static_cast<uint8_t>(c));
  EXPECT_EQ(out, "hi\n");
  EXPECT_EQ(rd(s, 5) & 0x60, 0x60);  // THR empty, transmitter idle
}

TEST(Serial, ReceivedByteSetsDataReadyAndRaisesEnabledIrq) {
  auto line = std::make_shared<FakeLine>();
  Serial s([](std::span<const uint8_t>) {}, line);
  wr(s, 1, 0x01);  // IER: rx available
  EXPECT_FALSE(line->level);
  const uint8_t in[] = {'x'};
  EXPECT_EQ(s.enqueue_input(in), 1u);
  EXPECT_TRUE(line->level);
  EXPECT_EQ(rd(s, 5) & 1, 1);
  EXPECT_EQ(rd(s, 2) & 0x0f, 0x04);
  EXPECT_EQ(rd(s, 0), 'x');
  EXPECT_FALSE(line->level);
  EXPECT_EQ(rd(s, 5) & 1, 0);
}

TEST(Serial, ThrEmptyInterruptClearsOnIirRead) {
  auto line = std::make_shared<FakeLine>();
  Serial s([](std::span<const uint8_t>) {}, line);
  wr(s, 1, 0x02);
  EXPECT_TRUE(line->level);
  EXPECT_EQ(rd(s, 2) & 0x0f, 0x02);
  EXPECT_FALSE(line->level);
  EXPECT_EQ(rd(s, 2) & 0x0f, 0x01);
}

TEST(Serial, DivisorLatchIsSeparateFromDataRegister) {
  std::string out;
  Serial s([&](std::span<const uint8_t> b) { out.append(b.begin(), b.end()); }, nullptr);
  wr(s, 3, 0x80);
  wr(s, 0, 0x01);
  wr(s, 1, 0x00);
  EXPECT_EQ(rd(s, 0), 0x01);
  wr(s, 3, 0x03);
  EXPECT_TRUE(out.empty());
}

TEST(Serial, InputBeyondFifoIsDroppedWithOverrun) {
  Serial s([](std::span<const uint8_t>) {}, nullptr);
  std::vector<uint8_t> big(Serial::kRxFifoBytes + 10, 'a');
  EXPECT_EQ(s.enqueue_input(big), Serial::kRxFifoBytes);
  EXPECT_EQ(rd(s, 5) & 0x02, 0x02);
  EXPECT_EQ(rd(s, 5) & 0x02, 0x00);
}

TEST(Serial, AnyOffsetAndWidthIsHarmless) {
  Serial s([](std::span<const uint8_t>) {}, nullptr);
  uint8_t buf[8] = {};
  for (uint64_t off = 0; off < 16; ++off) {
    s.read(off, std::span(buf, 8));
    s.write(off, std::span(buf, 8));
    s.read(off, std::span<uint8_t>());
  }
}

TEST(I8042, PulseResetCommandCallsReset) {
  int resets = 0;
  I8042 k([&] { ++resets; });
  wr(k, 0, 0xfe);  // data port: not a command
  EXPECT_EQ(resets, 0);
  wr(k, 4, 0xfe);
  EXPECT_EQ(resets, 1);
  EXPECT_EQ(rd(k, 4), 0);
}

TEST(DebugExit, WrittenValueBecomesExitCode) {
  int code = -1;
  DebugExit d([&](uint8_t v) { code = v; });
  const uint8_t v[4] = {0x2a, 0, 0, 0};
  d.write(0, v);
  EXPECT_EQ(code, 0x2a);
}

TEST(BootTimer, WriteReportsElapsedTime) {
  BootTime seen;
  BootTimer t(std::chrono::steady_clock::now() - std::chrono::milliseconds(5),
              [&](const BootTime& bt) { seen = bt; });
  wr(t, 0, 7);
  EXPECT_EQ(seen.marker, 7);
  EXPECT_GE(seen.wall_us, 5000u);
}

}  // namespace
}  // namespace kumo::devices
