#include "devices/virtio/rng/rng_device.h"

#include <gtest/gtest.h>

#include "devices/virtio/pci_transport.h"
#include "devices/virtio/testing/fakes.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio::rng {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using virtio::testing::TransportDriver;
using virtio::testing::wait_until;

class VirtioRngTest : public ::testing::Test {
 protected:
  VirtioRngTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), 1 << 20}})),
        queue_(mem_, 0x1000, 16, 0x10000, 0x80000) {
    transport_ = *VirtioPciDevice::create(std::make_unique<VirtioRng>(),
                                          TransportContext{&mem_, nullptr, line_, nullptr});
    driver_ = std::make_unique<TransportDriver>(*transport_);
    EXPECT_TRUE(driver_->negotiate(vio::feature_bit(vio::kFeatureVersion1)));
    driver_->setup_queue(0, queue_.config());
    driver_->driver_ok();
  }
  memory::GuestMemory mem_;
  vio::testing::DriverQueue queue_;
  std::shared_ptr<virtio::testing::FakeInterruptLine> line_ =
      std::make_shared<virtio::testing::FakeInterruptLine>();
  std::shared_ptr<VirtioPciDevice> transport_;
  std::unique_ptr<TransportDriver> driver_;
};

TEST_F(VirtioRngTest, FillsWritableBuffers) {
  const uint64_t a = queue_.alloc(64), b = queue_.alloc(64);
  queue_.add_chain({{a, 64, true}, {b, 64, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 1; }));
  EXPECT_EQ(queue_.pop_used()->len, 128u);
  EXPECT_NE(queue_.read(a, 64), std::vector<uint8_t>(64, 0));
  EXPECT_NE(queue_.read(b, 64), std::vector<uint8_t>(64, 0));
}

TEST_F(VirtioRngTest, HugeRequestsAreCapped) {
  const uint64_t a = queue_.alloc(0x20000);
  queue_.add_chain({{a, 0x20000, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 1; }));
  EXPECT_EQ(queue_.pop_used()->len, kMaxRequestBytes);
}

TEST_F(VirtioRngTest, ReadOnlyRequestGetsZeroBytes) {
  queue_.add_chain({{queue_.alloc(16), 16, false}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 1; }));
  EXPECT_EQ(queue_.pop_used()->len, 0u);
}

TEST_F(VirtioRngTest, BadChainSetsNeedsReset) {
  queue_.write_descriptor(0, {0xdead'0000, 16, vio::kDescFlagWrite, 0});
  queue_.publish(0);
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return (driver_->status() & vio::kStatusNeedsReset) != 0; }));
}

}  // namespace
}  // namespace kumo::devices::virtio::rng
