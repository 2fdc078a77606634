#include "devices/virtio/pci_transport.h"

#include <gtest/gtest.h>

#include "base/event_loop.h"
#include "devices/pci/pci_root.h"
#include "devices/virtio/testing/fakes.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using testing::FakeInterruptLine;
using testing::FakeIoEventRegistry;
using testing::FakeMsiAllocator;
using testing::TransportDriver;
using testing::wait_until;

constexpr uint64_t kFeatureDeviceBit = 1ULL << 5;

// Completes every chain with len = its readable byte count.
class EchoDevice final : public vio::VirtioDevice {
 public:
  uint16_t device_type() const override { return 4; }
  uint64_t device_features() const override { return kFeatureDeviceBit; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return 16; }
  uint32_t pci_class() const override { return 0x00ff00; }
  void read_config(uint64_t offset, std::span<uint8_t> data) override {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(0xa0 + offset + i);
  }
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  Status activate(vio::ActivateContext ctx) override {
    activations++;
    features = ctx.features;
    ctx_ = std::move(ctx);
    loop_ = KUMO_TRY(EventLoop::create());
    if (!ctx_.queues[0]) return invalid_input("queue 0 not enabled");
    const int fd = ctx_.queues[0]->notify_fd;
    KUMO_TRY(loop_->add(fd, 0x001 /*EPOLLIN*/, [this, fd] {
      drain_eventfd(fd);
      auto& q = ctx_.queues[0]->queue;
      for (;;) {
        auto chain = q.pop();
        if (!chain) {
          ctx_.interrupt->set_needs_reset();
          return;
        }
        if (!*chain) break;
        (void)q.add_used((*chain)->head, static_cast<uint32_t>((*chain)->readable_bytes));
      }
      if (*q.needs_interrupt()) ctx_.interrupt->signal_used(0);
    }));
    return loop_->start("echo");
  }
  void reset() override {
    if (loop_) loop_->stop();
    loop_.reset();
    resets++;
  }
  int activations = 0;
  int resets = 0;
  uint64_t features = 0;

 private:
  vio::ActivateContext ctx_;
  std::unique_ptr<EventLoop> loop_;
};

class PciTransportTest : public ::testing::Test {
 protected:
  PciTransportTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), 1 << 20}})),
        line_(std::make_shared<FakeInterruptLine>()),
        queue_(mem_, 0x1000, 16, 0x10000, 0x10000) {}

  std::shared_ptr<VirtioPciDevice> make(bool msix = true) {
    auto dev = std::make_unique<EchoDevice>();
    echo_ = dev.get();
    TransportContext ctx{&mem_, msix ? &msi_ : nullptr, line_, &ioevents_};
    auto t = VirtioPciDevice::create(std::move(dev), ctx);
    EXPECT_TRUE(t);
    (*t)->set_bar_address(0, 0xc000'0000);
    return *t;
  }
  static void set_command(VirtioPciDevice& t, uint16_t command) {
    (void)t.config_write(pci::kRegCommand,
                         std::span(reinterpret_cast<const uint8_t*>(&command), 2));
  }
  // Sets MSI-X Enable in Message Control.
  static void enable_msix(VirtioPciDevice& t) {
    const uint8_t control[2] = {0x02, 0x80};
    for (uint8_t cap = 0x40; cap != 0;) {
      uint8_t hdr[2];
      t.config_read(cap, hdr);
      if (hdr[0] == pci::kCapIdMsix) {
        (void)t.config_write(cap + 2u, control);
        return;
      }
      cap = hdr[1];
    }
    ADD_FAILURE() << "no MSI-X capability";
  }
  size_t ioevent_count() {
    std::lock_guard lock(ioevents_.mutex);
    return ioevents_.events.size();
  }
  uint64_t modern() {
    return vio::feature_bit(vio::kFeatureVersion1) | vio::feature_bit(vio::kFeatureEventIdx);
  }

  memory::GuestMemory mem_;
  FakeMsiAllocator msi_;
  std::shared_ptr<FakeInterruptLine> line_;
  FakeIoEventRegistry ioevents_;
  vio::testing::DriverQueue queue_;
  EchoDevice* echo_ = nullptr;
};

TEST_F(PciTransportTest, PciIdentityIsModernVirtio) {
  auto t = make();
  uint8_t id[4];
  t->config_read(0, id);
  EXPECT_EQ(id[0] | id[1] << 8, 0x1af4);
  EXPECT_EQ(id[2] | id[3] << 8, 0x1044);
  uint8_t rev = 0;
  t->config_read(8, std::span(&rev, 1));
  EXPECT_EQ(rev, 1);
}

TEST_F(PciTransportTest, CapabilityChainDescribesAllRegions) {
  auto t = make();
  pci::PciRoot root;
  auto attached = root.attach(t);
  ASSERT_TRUE(attached);
  std::vector<uint8_t> types;
  bool found_msix = false;
  uint32_t cap = root.config_read(attached->slot, 0, 0x34, 1);
  for (int hops = 0; cap != 0 && hops < 48; ++hops) {
    const uint32_t id = root.config_read(attached->slot, 0, cap, 1);
    if (id == pci::kCapIdVendor) {
      types.push_back(static_cast<uint8_t>(root.config_read(attached->slot, 0, cap + 3, 1)));
    } else if (id == pci::kCapIdMsix) {
      found_msix = true;
      EXPECT_EQ(root.config_read(attached->slot, 0, cap + 2, 2) & 0x7ff, 2u);  // 3 vectors
    }
    cap = root.config_read(attached->slot, 0, cap + 1, 1);
  }
  EXPECT_EQ(types, (std::vector<uint8_t>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(found_msix);
}

TEST_F(PciTransportTest, FeaturesIncludeRingFeaturesAndVersion1) {
  auto t = make();
  TransportDriver d(*t);
  const uint64_t f = d.device_features();
  EXPECT_TRUE(f & vio::feature_bit(vio::kFeatureVersion1));
  EXPECT_TRUE(f & vio::feature_bit(vio::kFeatureIndirectDesc));
  EXPECT_TRUE(f & vio::feature_bit(vio::kFeatureEventIdx));
  EXPECT_TRUE(f & kFeatureDeviceBit);
}

TEST_F(PciTransportTest, UnofferedFeatureIsRefusedAtFeaturesOk) {
  auto t = make();
  TransportDriver d(*t);
  EXPECT_FALSE(d.negotiate(modern() | (1ULL << 40)));
}

TEST_F(PciTransportTest, LegacyDriverWithoutVersion1IsRefused) {
  auto t = make();
  TransportDriver d(*t);
  EXPECT_FALSE(d.negotiate(kFeatureDeviceBit));
}

TEST_F(PciTransportTest, QueueRoundTripWithMsix) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern() | kFeatureDeviceBit));
  d.setup_queue(0, queue_.config(), 1);
  // Enable MSI-X and unmask vector 1.
  t->bar_write(0, kMsixTableOffset + 16 + 12, std::vector<uint8_t>{0, 0, 0, 0});
  enable_msix(*t);
  d.driver_ok();
  EXPECT_EQ(echo_->activations, 1);
  EXPECT_EQ(echo_->features, modern() | kFeatureDeviceBit);
  queue_.add_chain({{queue_.alloc(7), 7, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return msi_.vectors[1]->triggers.load() == 1; }));
  auto used = queue_.pop_used();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 7u);
  EXPECT_EQ(line_->raised.load(), 0);
}

TEST_F(PciTransportTest, IntxRaisesLineUntilIsrIsRead) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return line_->level.load(); }));
  EXPECT_EQ(d.isr(), 1);
  EXPECT_FALSE(line_->level.load());
  EXPECT_EQ(d.isr(), 0);
}

TEST_F(PciTransportTest, InterruptDisableDeassertsIntxUntilCleared) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return line_->level.load(); }));
  const uint8_t disable[2] = {0x06, 0x04};  // memory, bus master, Interrupt Disable
  (void)t->config_write(pci::kRegCommand, disable);
  EXPECT_FALSE(line_->level.load());
  const uint8_t enable[2] = {0x06, 0x00};
  (void)t->config_write(pci::kRegCommand, enable);
  EXPECT_TRUE(line_->level.load());  // still pending: ISR not read yet
  EXPECT_EQ(d.isr(), 1);
  EXPECT_FALSE(line_->level.load());
}

TEST_F(PciTransportTest, InterruptStatusBitShowsPendingIntx) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  auto interrupt_status = [&] {
    uint8_t status[2] = {};
    t->config_read(pci::kRegStatus, status);
    return (status[0] & pci::kStatusInterrupt) != 0;
  };
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  EXPECT_FALSE(interrupt_status());
  const uint8_t disable[2] = {0x06, 0x04};  // Interrupt Disable: pending, but not asserted
  (void)t->config_write(pci::kRegCommand, disable);
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until(interrupt_status));
  EXPECT_FALSE(line_->level.load());
  EXPECT_EQ(d.isr(), 1);
  EXPECT_FALSE(interrupt_status());
}

TEST_F(PciTransportTest, EnablingMsixDeassertsIntx) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return line_->level.load(); }));
  enable_msix(*t);
  EXPECT_FALSE(line_->level.load());
}

TEST_F(PciTransportTest, IoEventsAreRegisteredAndFollowBarMoves) {
  auto t = make();
  set_command(*t, pci::kCommandMemorySpace);
  {
    std::lock_guard lock(ioevents_.mutex);
    ASSERT_EQ(ioevents_.events.size(), 2u);
    EXPECT_TRUE(ioevents_.events.count(0xc000'0000 + kNotifyOffset + 4));
  }
  const uint32_t new_bar = 0xd000'0000;
  auto moves = t->config_write(0x10, std::span(reinterpret_cast<const uint8_t*>(&new_bar), 4));
  ASSERT_EQ(moves.size(), 1u);
  std::lock_guard lock(ioevents_.mutex);
  EXPECT_EQ(ioevents_.events.size(), 2u);
  EXPECT_TRUE(ioevents_.events.count(0xd000'0000 + kNotifyOffset));
}

TEST_F(PciTransportTest, IoEventsAreRegisteredOnlyWhileMemorySpaceIsEnabled) {
  auto t = make();
  EXPECT_EQ(ioevent_count(), 0u);  // Command is 0 at power-on
  set_command(*t, pci::kCommandMemorySpace | pci::kCommandBusMaster);
  EXPECT_EQ(ioevent_count(), 2u);
  set_command(*t, pci::kCommandBusMaster);
  EXPECT_EQ(ioevent_count(), 0u);
  const uint32_t new_bar = 0xd000'0000;  // moved while off: registered there once enabled
  EXPECT_TRUE(t->config_write(0x10, std::span(reinterpret_cast<const uint8_t*>(&new_bar), 4))
                  .empty());
  EXPECT_EQ(ioevent_count(), 0u);
  set_command(*t, pci::kCommandMemorySpace);
  std::lock_guard lock(ioevents_.mutex);
  EXPECT_EQ(ioevents_.events.size(), 2u);
  EXPECT_TRUE(ioevents_.events.count(0xd000'0000 + kNotifyOffset));
}

TEST_F(PciTransportTest, ResetStopsTheDeviceAndClearsState) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  d.set_status(0);
  EXPECT_EQ(d.status(), 0);
  EXPECT_GE(echo_->resets, 1);
  d.write(0x16, 0, 2);
  EXPECT_EQ(d.read(0x1c, 2), 0u);            // queue_enable cleared
  EXPECT_EQ(d.read(0x18, 2), 16u);           // size back to max
  EXPECT_EQ(d.read(0x10, 2), 0xffffu);       // config vector NO_VECTOR
}

TEST_F(PciTransportTest, PciResetReturnsTheFunctionToPowerOn) {
  auto t = make();
  pci::PciRoot root;
  auto attached = root.attach(t, 10);
  ASSERT_TRUE(attached);
  const uint8_t slot = attached->slot;
  std::vector<uint32_t> power_on;
  for (size_t reg = 0; reg < pci::kConfigSpaceBytes; reg += 4) {
    power_on.push_back(root.config_read(slot, 0, reg, 4));
  }
  set_command(*t, pci::kCommandMemorySpace | pci::kCommandBusMaster);
  const uint8_t line = 5;
  root.config_write(slot, 0, pci::kRegInterruptLine, std::span(&line, 1));
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config(), 1);
  d.write(0x10, 0, 2);  // config vector
  t->bar_write(0, kMsixTableOffset + 16, std::vector<uint8_t>{0, 0, 0xe0, 0xfe});
  t->bar_write(0, kMsixTableOffset + 16 + 12, std::vector<uint8_t>{0, 0, 0, 0});
  enable_msix(*t);
  d.driver_ok();
  ASSERT_EQ(echo_->activations, 1);
  ASSERT_EQ(ioevent_count(), 2u);
  {
    std::lock_guard lock(msi_.vectors[1]->mutex);
    ASSERT_FALSE(msi_.vectors[1]->masked);
  }
  const int resets = echo_->resets;

  root.reset();
  // Configuration space as firmware left it: Command 0, BAR 0 and Interrupt Line where
  // attach() put them, MSI-X disabled.
  for (size_t reg = 0; reg < pci::kConfigSpaceBytes; reg += 4) {
    EXPECT_EQ(root.config_read(slot, 0, reg, 4), power_on[reg / 4]) << "register " << reg;
  }
  EXPECT_EQ(ioevent_count(), 0u);
  // The virtio device: reset, worker stopped, queues disabled.
  EXPECT_EQ(t->device_status(), 0);
  EXPECT_EQ(echo_->resets, resets + 1);
  EXPECT_EQ(d.read(0x10, 2), pci::kMsixNoVector);
  EXPECT_EQ(d.read(0x1c, 2), 0u);
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  EXPECT_FALSE(wait_until([&] { return queue_.pop_used().has_value(); },
                          std::chrono::milliseconds(100)));
  // The MSI-X table: every entry zero and masked, its route dropped.
  EXPECT_EQ(d.read(kMsixTableOffset + 16, 4), 0u);
  EXPECT_EQ(d.read(kMsixTableOffset + 16 + 12, 4), 1u);
  std::lock_guard lock(msi_.vectors[1]->mutex);
  EXPECT_TRUE(msi_.vectors[1]->masked);
}

TEST_F(PciTransportTest, PciResetDeassertsIntxAndClearsInterruptDisable) {
  auto t = make(/*msix=*/false);
  pci::PciRoot root;
  auto attached = root.attach(t, 10);
  ASSERT_TRUE(attached);
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  queue_.add_chain({{queue_.alloc(3), 3, false}});
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return line_->level.load(); }));
  set_command(*t, pci::kCommandInterruptDisable);
  root.reset();
  EXPECT_FALSE(line_->level.load());
  EXPECT_EQ(d.isr(), 0);
  uint8_t status[2] = {};
  t->config_read(pci::kRegStatus, status);
  EXPECT_EQ(status[0] & pci::kStatusInterrupt, 0);
  // The driver can bring the device up again.
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  EXPECT_EQ(echo_->activations, 2);
}

TEST_F(PciTransportTest, ClearingDriverOkStopsTheDeviceUntilTheDriverResetsIt) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  ASSERT_EQ(echo_->activations, 1);
  const int resets = echo_->resets;
  const uint8_t without_driver_ok =
      vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk;
  d.set_status(without_driver_ok);
  EXPECT_EQ(echo_->resets, resets + 1);  // the worker stopped
  EXPECT_EQ(d.status(), without_driver_ok | vio::kStatusNeedsReset);
  queue_.add_chain({{queue_.alloc(5), 5, false}});
  d.notify(0);
  EXPECT_FALSE(wait_until([&] { return queue_.pop_used().has_value(); },
                          std::chrono::milliseconds(100)));
  d.driver_ok();  // not without a reset first
  EXPECT_EQ(echo_->activations, 1);
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
  d.set_status(0);
  EXPECT_EQ(d.status(), 0);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  EXPECT_EQ(echo_->activations, 2);
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return queue_.pop_used().has_value(); }));
}

TEST_F(PciTransportTest, ClearingAStatusBitWhileDriverOkStopsTheDeviceAndNotifiesTheDriver) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  const int resets = echo_->resets;
  d.set_status(vio::kStatusDriver | vio::kStatusFeaturesOk | vio::kStatusDriverOk);
  EXPECT_EQ(echo_->resets, resets + 1);
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
  EXPECT_TRUE(line_->level.load());  // §2.1.2: a configuration change notification
  EXPECT_EQ(d.isr(), 2);
}

TEST_F(PciTransportTest, StatusBitClearedBeforeDriverOkKeepsTheDeviceFromStarting) {
  auto t = make();
  TransportDriver d(*t);
  d.set_status(vio::kStatusAcknowledge | vio::kStatusDriver);
  d.set_status(vio::kStatusAcknowledge);
  EXPECT_EQ(d.status(), vio::kStatusAcknowledge | vio::kStatusNeedsReset);
  d.write(0x08, 1, 4);
  d.write(0x0c, 1, 4);  // VERSION_1
  d.set_status(vio::kStatusAcknowledge | vio::kStatusDriver | vio::kStatusFeaturesOk);
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  EXPECT_EQ(echo_->activations, 0);
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
}

TEST_F(PciTransportTest, BadQueueLayoutSetsNeedsResetAndNotifiesTheDriver) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  auto cfg = queue_.config();
  cfg.used_ring = GuestAddress(0xffff'0000'0000ULL);
  d.setup_queue(0, cfg);
  d.driver_ok();
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
  EXPECT_EQ(echo_->activations, 0);
  EXPECT_TRUE(line_->level.load());  // §2.1.2: DRIVER_OK is set, so a configuration change
  EXPECT_EQ(d.isr(), 2);
}

TEST_F(PciTransportTest, DriverOkWithoutFeaturesOkNeedsResetAndNotifiesTheDriver) {
  auto t = make(/*msix=*/false);
  TransportDriver d(*t);
  d.set_status(vio::kStatusAcknowledge | vio::kStatusDriver);
  d.driver_ok();
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
  EXPECT_EQ(d.isr(), 2);
}

TEST_F(PciTransportTest, NonPowerOfTwoQueueSizeSetsNeedsReset) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  auto cfg = queue_.config();
  cfg.size = 12;
  d.setup_queue(0, cfg);
  d.driver_ok();
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
}

TEST_F(PciTransportTest, MalformedChainFromGuestSetsNeedsReset) {
  auto t = make();
  TransportDriver d(*t);
  ASSERT_TRUE(d.negotiate(modern()));
  d.setup_queue(0, queue_.config());
  d.driver_ok();
  queue_.write_descriptor(0, {0x20000, 4, vio::kDescFlagNext, 0});  // self loop
  queue_.publish(0);
  d.notify(0);
  ASSERT_TRUE(wait_until([&] { return (d.status() & vio::kStatusNeedsReset) != 0; }));
  d.set_status(0);
  EXPECT_EQ(d.status(), 0);
}

TEST_F(PciTransportTest, DriverOkWithoutFeaturesOkSetsNeedsReset) {
  auto t = make();
  TransportDriver d(*t);
  d.set_status(vio::kStatusAcknowledge | vio::kStatusDriver);
  d.driver_ok();
  EXPECT_TRUE(d.status() & vio::kStatusNeedsReset);
}

TEST_F(PciTransportTest, OutOfRangeVectorsReadBackAsNoVector) {
  auto t = make();
  TransportDriver d(*t);
  d.write(0x10, 7, 2);
  EXPECT_EQ(d.read(0x10, 2), 0xffffu);
  d.write(0x16, 0, 2);
  d.write(0x1a, 2, 2);
  EXPECT_EQ(d.read(0x1a, 2), 2u);
  d.write(0x1a, 3, 2);
  EXPECT_EQ(d.read(0x1a, 2), 0xffffu);
}

TEST_F(PciTransportTest, MissingQueueReadsSizeZero) {
  auto t = make();
  TransportDriver d(*t);
  d.write(0x16, 9, 2);
  EXPECT_EQ(d.read(0x18, 2), 0u);
  d.write(0x18, 8, 2);  // ignored, no crash
  d.write(0x1c, 1, 2);
}

TEST_F(PciTransportTest, ArbitraryBarAccessesDoNotCrash) {
  auto t = make();
  uint8_t buf[8];
  for (uint64_t off = 0; off < kBarBytes + 16; off += 3) {
    for (size_t len : {size_t{1}, size_t{2}, size_t{4}, size_t{8}}) {
      t->bar_read(0, off, std::span(buf, len));
      if (off != 0x14) {  // leave device_status alone
        std::memset(buf, 0x5a, sizeof(buf));
        t->bar_write(0, off, std::span<const uint8_t>(buf, len));
      }
    }
  }
  t->bar_read(3, 0, std::span(buf, 4));
  t->bar_write(0, ~uint64_t{0}, std::span<const uint8_t>(buf, 8));
}

TEST_F(PciTransportTest, PciCfgCapabilityReachesTheBar) {
  auto t = make();
  // Find the PCI_CFG capability (cfg_type 5).
  uint8_t cap = 0x40;
  for (;;) {
    uint8_t hdr[4];
    t->config_read(cap, hdr);
    if (hdr[0] == pci::kCapIdVendor && hdr[3] == 5) break;
    cap = hdr[1];
    ASSERT_NE(cap, 0);
  }
  const uint32_t offset = 0x2000 + 4, length = 1;
  (void)t->config_write(cap + 8u, std::span(reinterpret_cast<const uint8_t*>(&offset), 4));
  (void)t->config_write(cap + 12u, std::span(reinterpret_cast<const uint8_t*>(&length), 4));
  uint8_t v = 0;
  t->config_read(cap + 16u, std::span(&v, 1));
  EXPECT_EQ(v, 0xa4);
}

}  // namespace
}  // namespace kumo::devices::virtio
