#include "devices/virtio/net/net_device.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>

#include "devices/virtio/net/control_command.h"
#include "devices/virtio/net/net_header.h"
#include "devices/virtio/net/socket_backend.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/testing/fakes.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio::net {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using vio::testing::DriverQueue;
using virtio::testing::TransportDriver;
using virtio::testing::wait_until;

uint64_t bits(std::initializer_list<uint32_t> list) {
  uint64_t f = vio::feature_bit(vio::kFeatureVersion1) | vio::feature_bit(vio::kFeatureEventIdx);
  for (uint32_t b : list) f |= vio::feature_bit(b);
  return f;
}

std::vector<uint8_t> ethernet_frame(size_t payload, uint16_t ethertype = 0x88b5) {
  std::vector<uint8_t> f(14 + payload);
  std::memset(f.data(), 0xff, 6);
  const uint8_t src[6] = {0x52, 0x54, 0, 1, 2, 3};
  std::memcpy(f.data() + 6, src, 6);
  f[12] = static_cast<uint8_t>(ethertype >> 8);
  f[13] = static_cast<uint8_t>(ethertype);
  for (size_t i = 0; i < payload; ++i) f[14 + i] = static_cast<uint8_t>(i);
  return f;
}

class VirtioNetTest : public ::testing::Test {
 protected:
  VirtioNetTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), 4 << 20}})),
        rx_(mem_, 0x1000, 16, 0x100000, 0x100000),
        tx_(mem_, 0x4000, 16, 0x200000, 0x100000) {}

  bool start(uint64_t features, std::optional<BucketConfig> bw = std::nullopt,
             bool expect_ok = true, uint64_t poll_ns = 0) {
    auto backend = std::make_unique<testing::SocketBackend>(&peer_);
    backend_ = backend.get();
    auto device = std::make_unique<VirtioNet>(std::move(backend),
                                              *kumo::net::parse_mac("52:54:00:12:34:56"),
                                              NetWorkerSettings{bw, std::nullopt, poll_ns});
    net_ = device.get();
    transport_ = *VirtioPciDevice::create(std::move(device),
                                          TransportContext{&mem_, nullptr, line_, nullptr});
    driver_ = std::make_unique<TransportDriver>(*transport_);
    if (!driver_->negotiate(features)) {
      EXPECT_FALSE(expect_ok);
      return false;
    }
    driver_->setup_queue(0, rx_.config());
    driver_->setup_queue(1, tx_.config());
    driver_->driver_ok();
    EXPECT_FALSE(driver_->status() & vio::kStatusNeedsReset);
    return true;
  }

  uint16_t send(const VnetHeader& h, const std::vector<uint8_t>& frame, bool notify = true) {
    const uint64_t hdr = tx_.alloc(12, std::span(reinterpret_cast<const uint8_t*>(&h), 12));
    const uint64_t data = tx_.alloc(frame.size(), frame);
    const uint16_t head = tx_.add_chain({{hdr, 12, false},
                                         {data, static_cast<uint32_t>(frame.size()), false}});
    if (notify) driver_->notify(1);
    return head;
  }

  std::optional<std::vector<uint8_t>> peer_recv() {
    std::vector<uint8_t> buf(70000);
    std::optional<std::vector<uint8_t>> out;
    wait_until([&] {
      const ssize_t n = ::recv(peer_.get(), buf.data(), buf.size(), MSG_DONTWAIT);
      if (n > 0) {
        buf.resize(static_cast<size_t>(n));
        out = buf;
      }
      return out.has_value();
    }, std::chrono::milliseconds(500));
    return out;
  }

  memory::GuestMemory mem_;
  DriverQueue rx_;
  DriverQueue tx_;
  UniqueFd peer_;
  testing::SocketBackend* backend_ = nullptr;
  VirtioNet* net_ = nullptr;
  std::shared_ptr<virtio::testing::FakeInterruptLine> line_ =
      std::make_shared<virtio::testing::FakeInterruptLine>();
  std::shared_ptr<VirtioPciDevice> transport_;
  std::unique_ptr<TransportDriver> driver_;
};

TEST_F(VirtioNetTest, ConfigHasMacAndLinkUp) {
  start(bits({kFeatureMac, kFeatureStatus}));
  EXPECT_EQ(driver_->config(0, 4), 0x00'54'52u | (0x12u << 24));
  EXPECT_EQ(driver_->config(4, 2), 0x5634u);
  EXPECT_EQ(driver_->config(6, 2), kStatusLinkUp);
}

TEST_F(VirtioNetTest, TransmittedFrameReachesTheBackend) {
  start(bits({kFeatureMac}));
  const auto frame = ethernet_frame(100);
  const uint16_t head = send(VnetHeader{}, frame);
  auto got = peer_recv();
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 12 + frame.size());
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), got->begin() + 12));
  ASSERT_TRUE(wait_until([&] { return tx_.used_idx() == 1; }));
  EXPECT_EQ(tx_.pop_used()->id, head);
  EXPECT_EQ(net_->counters().tx_frames.load(), 1u);
}

TEST_F(VirtioNetTest, ReceivedFrameReachesTheGuestWithOneBuffer) {
  start(bits({}));
  const uint64_t buf = rx_.alloc(2048);
  rx_.add_chain({{buf, 2048, true}});
  driver_->notify(0);
  auto frame = ethernet_frame(60);
  std::vector<uint8_t> msg(12, 0);
  msg.insert(msg.end(), frame.begin(), frame.end());
  ASSERT_EQ(::send(peer_.get(), msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
  auto used = rx_.pop_used();
  EXPECT_EQ(used->len, msg.size());
  auto got = rx_.read(buf, msg.size());
  EXPECT_EQ(got[10], 1);  // num_buffers
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), got.begin() + 12));
  // The worker publishes the used entry before it raises the interrupt: wait for both.
  EXPECT_TRUE(wait_until([&] { return line_->raised.load() >= 1; }));
}

TEST_F(VirtioNetTest, FrameWaitsUntilTheDriverPostsABuffer) {
  start(bits({}));
  auto frame = ethernet_frame(20);
  std::vector<uint8_t> msg(12, 0);
  msg.insert(msg.end(), frame.begin(), frame.end());
  ASSERT_GT(::send(peer_.get(), msg.data(), msg.size(), 0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_.used_idx(), 0);
  rx_.add_chain({{rx_.alloc(2048), 2048, true}});
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
}

// Merged receive buffers (§5.1.6.4): a frame spans chains in ring order; the first chain's
// header says how many; all of them reach the driver with one used index update.
TEST_F(VirtioNetTest, MergeableFrameSpansSeveralChains) {
  start(bits({kFeatureMrgRxbuf}));
  std::vector<uint64_t> bufs;
  for (int i = 0; i < 8; ++i) {  // 8 x 256 bytes: enough for the largest non-GSO frame
    bufs.push_back(rx_.alloc(256));
    rx_.add_chain({{bufs.back(), 256, true}});
  }
  driver_->notify(0);
  const auto frame = ethernet_frame(986);  // 12 + 1000 bytes: 256, 256, 256, 244
  std::vector<uint8_t> msg(12, 0);
  msg.insert(msg.end(), frame.begin(), frame.end());
  ASSERT_EQ(::send(peer_.get(), msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 4; }));
  std::vector<uint8_t> got;
  const uint32_t lens[] = {256, 256, 256, 244};
  for (int i = 0; i < 4; ++i) {
    auto used = rx_.pop_used();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, static_cast<uint32_t>(i));
    EXPECT_EQ(used->len, lens[i]);
    auto part = rx_.read(bufs[static_cast<size_t>(i)], used->len);
    got.insert(got.end(), part.begin(), part.end());
  }
  EXPECT_EQ(got[10] | (got[11] << 8), 4);  // num_buffers
  EXPECT_TRUE(std::equal(frame.begin(), frame.end(), got.begin() + 12));
  // The next frame starts in the next free chain, once the largest frame would fit again.
  for (int i = 0; i < 2; ++i) rx_.add_chain({{rx_.alloc(256), 256, true}});
  driver_->notify(0);
  ASSERT_EQ(::send(peer_.get(), msg.data(), 80, 0), 80);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 5; }));
  EXPECT_EQ(rx_.pop_used()->id, 4u);
  EXPECT_EQ(rx_.read(bufs[4], 12)[10], 1);
  EXPECT_EQ(net_->counters().rx_frames.load(), 2u);
}

TEST_F(VirtioNetTest, MergeableWaitsUntilTheLargestFrameWouldFit) {
  start(bits({kFeatureMrgRxbuf}));
  for (int i = 0; i < 5; ++i) rx_.add_chain({{rx_.alloc(256), 256, true}});  // 1280 < 1530
  driver_->notify(0);
  std::vector<uint8_t> msg(12 + 60, 0);
  ASSERT_GT(::send(peer_.get(), msg.data(), msg.size(), 0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_.used_idx(), 0);
  rx_.add_chain({{rx_.alloc(256), 256, true}});  // 1536 bytes: enough
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
}

TEST_F(VirtioNetTest, MergeableWithGuestTsoWaitsForAGsoFramesWorth) {
  start(bits({kFeatureMrgRxbuf, kFeatureGuestCsum, kFeatureGuestTso4}));
  for (int i = 0; i < 15; ++i) rx_.add_chain({{rx_.alloc(4096), 4096, true}});  // 60 KiB
  driver_->notify(0);
  std::vector<uint8_t> msg(12 + 60, 0);
  ASSERT_GT(::send(peer_.get(), msg.data(), msg.size(), 0), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_.used_idx(), 0);
  rx_.add_chain({{rx_.alloc(8192), 8192, true}});
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
}

TEST_F(VirtioNetTest, FrameLongerThanTheBufferIsDroppedNotTruncated) {
  start(bits({}));
  const uint64_t buf = rx_.alloc(100);
  rx_.add_chain({{buf, 100, true}});
  driver_->notify(0);
  std::vector<uint8_t> msg(12 + 200, 0xab);
  ASSERT_GT(::send(peer_.get(), msg.data(), msg.size(), 0), 0);
  ASSERT_TRUE(wait_until([&] { return net_->counters().rx_dropped.load() == 1; }));
  EXPECT_EQ(rx_.used_idx(), 0);
  // The buffer stays posted and takes the next frame that fits.
  ASSERT_EQ(::send(peer_.get(), msg.data(), 100, 0), 100);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
  EXPECT_EQ(rx_.pop_used()->len, 100u);
  EXPECT_FALSE(driver_->status() & vio::kStatusNeedsReset);
}

TEST_F(VirtioNetTest, ReceiveChainsTooSmallForTheHeaderAreReturnedEmpty) {
  start(bits({kFeatureMrgRxbuf}));
  rx_.add_chain({{rx_.alloc(8), 8, true}});
  for (int i = 0; i < 2; ++i) rx_.add_chain({{rx_.alloc(2048), 2048, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
  auto used = rx_.pop_used();
  EXPECT_EQ(used->id, 0u);
  EXPECT_EQ(used->len, 0u);
  std::vector<uint8_t> msg(12 + 60, 0);
  ASSERT_GT(::send(peer_.get(), msg.data(), msg.size(), 0), 0);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 2; }));
  EXPECT_EQ(rx_.pop_used()->id, 1u);
}

TEST_F(VirtioNetTest, ChecksumOffloadWithoutCsumIsDropped) {
  start(bits({}));
  VnetHeader h{};
  h.flags = kHdrFlagNeedsCsum;
  h.csum_start = 34;
  h.csum_offset = 16;
  send(h, ethernet_frame(100));
  ASSERT_TRUE(wait_until([&] { return tx_.used_idx() == 1; }));
  EXPECT_FALSE(peer_recv());
  EXPECT_EQ(net_->counters().tx_dropped.load(), 1u);
}

TEST_F(VirtioNetTest, NegotiatedTso4FrameIsForwarded) {
  start(bits({kFeatureCsum, kFeatureHostTso4}));
  VnetHeader h{};
  h.flags = kHdrFlagNeedsCsum;
  h.gso_type = kGsoTcpV4;
  h.gso_size = 1448;
  h.hdr_len = 54;
  h.csum_start = 34;
  h.csum_offset = 16;
  send(h, ethernet_frame(4000));
  auto got = peer_recv();
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[1], kGsoTcpV4);
}

TEST_F(VirtioNetTest, UnnegotiatedGsoTypesAreDropped) {
  start(bits({kFeatureCsum, kFeatureHostTso4}));
  VnetHeader h{};
  h.flags = kHdrFlagNeedsCsum;
  h.gso_size = 1000;
  h.csum_start = 34;
  h.csum_offset = 6;
  h.gso_type = kGsoUdp;
  send(h, ethernet_frame(3000));
  h.gso_type = kGsoTcpV6;
  send(h, ethernet_frame(3000));
  h.gso_type = kGsoTcpV4 | kGsoEcn;
  send(h, ethernet_frame(3000));
  ASSERT_TRUE(wait_until([&] { return tx_.used_idx() == 3; }));
  EXPECT_FALSE(peer_recv());
  EXPECT_EQ(net_->counters().tx_dropped.load(), 3u);
}

TEST_F(VirtioNetTest, MalformedTransmitChainsAreDropped) {
  start(bits({}));
  // Too short for the headers.
  const uint64_t a = tx_.alloc(12);
  tx_.add_chain({{a, 12, false}});
  // A device-writable buffer in a transmit chain.
  tx_.add_chain({{tx_.alloc(40), 40, false}, {tx_.alloc(8), 8, true}});
  // Checksum position outside the frame (with CSUM not negotiated anyway) and bad flags.
  VnetHeader h{};
  h.flags = 0x2;  // DATA_VALID is receive-only
  send(h, ethernet_frame(40));
  ASSERT_TRUE(wait_until([&] { return tx_.used_idx() == 3; }));
  EXPECT_EQ(net_->counters().tx_dropped.load(), 3u);
  EXPECT_FALSE(driver_->status() & vio::kStatusNeedsReset);
}

TEST_F(VirtioNetTest, TransmitCycleSetsNeedsReset) {
  start(bits({}));
  tx_.write_descriptor(0, {tx_.alloc(64), 64, vio::kDescFlagNext, 0});
  tx_.publish(0);
  driver_->notify(1);
  EXPECT_TRUE(wait_until([&] { return (driver_->status() & vio::kStatusNeedsReset) != 0; }));
}

TEST_F(VirtioNetTest, GuestTsoWithoutGuestCsumIsRefused) {
  EXPECT_FALSE(start(bits({kFeatureGuestTso4}), std::nullopt, false));
}

TEST_F(VirtioNetTest, BackendOffloadsMatchNegotiatedGuestFeatures) {
  start(bits({kFeatureGuestCsum, kFeatureGuestTso4}));
  std::lock_guard lock(backend_->mutex);
  ASSERT_FALSE(backend_->offloads.empty());
  EXPECT_EQ(backend_->offloads.back(),
            (kumo::net::Offloads{.csum = true, .tso4 = true, .tso6 = false}));
}

TEST_F(VirtioNetTest, NoGuestOffloadsMeansNoBackendOffloads) {
  start(bits({kFeatureCsum, kFeatureHostTso4, kFeatureHostTso6}));
  std::lock_guard lock(backend_->mutex);
  ASSERT_FALSE(backend_->offloads.empty());
  EXPECT_EQ(backend_->offloads.back(), kumo::net::Offloads{});
}

TEST_F(VirtioNetTest, LinkDownIsAConfigChange) {
  start(bits({kFeatureStatus}));
  (void)driver_->isr();
  net_->set_link(false);
  EXPECT_EQ(driver_->config(6, 2), 0u);
  EXPECT_EQ(driver_->isr() & 2, 2);
}

TEST_F(VirtioNetTest, TransmitBandwidthIsLimited) {
  start(bits({}), BucketConfig{2000, 0, 100});  // 20 KB/s after the initial 2000 bytes
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 4; ++i) send(VnetHeader{}, ethernet_frame(986));  // 1000-byte frames
  ASSERT_TRUE(wait_until([&] { return tx_.used_idx() == 4; }));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(80));
}

// Busy polling (poll-us): while the worker polls, frames and receive buffers the driver
// publishes without a notification are used; afterwards it asks for notifications again.
TEST_F(VirtioNetTest, APollingWorkerUsesChainsPublishedWithoutANotification) {
  start(bits({}), std::nullopt, true, 10'000'000'000);  // longer than the test
  send(VnetHeader{}, ethernet_frame(60));
  ASSERT_TRUE(peer_recv());
  const auto unnotified = ethernet_frame(70);
  send(VnetHeader{}, unnotified, /*notify=*/false);
  auto got = peer_recv();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 12u + unnotified.size());
  // Out of receive buffers, then one is posted without a notification.
  auto frame = ethernet_frame(60);
  std::vector<uint8_t> msg(12, 0);
  msg.insert(msg.end(), frame.begin(), frame.end());
  ASSERT_EQ(::send(peer_.get(), msg.data(), msg.size(), 0), static_cast<ssize_t>(msg.size()));
  rx_.add_chain({{rx_.alloc(2048), 2048, true}});
  EXPECT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
}

TEST_F(VirtioNetTest, AfterThePollWindowTheDriverIsAskedToNotifyAgain) {
  start(bits({}), std::nullopt, true, 1'000'000);
  send(VnetHeader{}, ethernet_frame(60));
  ASSERT_TRUE(peer_recv());
  // No EVENT_IDX here: used.flags NO_NOTIFY is cleared on both queues before sleeping.
  EXPECT_TRUE(wait_until([&] { return tx_.used_flags() == 0 && rx_.used_flags() == 0; }));
  const auto second = ethernet_frame(61);
  send(VnetHeader{}, second);
  auto got = peer_recv();
  ASSERT_TRUE(got);
  EXPECT_EQ(got->size(), 12u + second.size());
}

// --- multiqueue: two pairs, each on its own back end, and the control queue (index 4) ---

class VirtioNetMqTest : public ::testing::Test {
 protected:
  static constexpr uint16_t kCtrl = 4;

  VirtioNetMqTest() : mem_(*memory::GuestMemory::create({{GuestAddress(0), 4 << 20}})) {
    for (uint16_t i = 0; i < 5; ++i) {
      queues_.push_back(std::make_unique<DriverQueue>(mem_, 0x1000 * (i + 1), 16,
                                                      0x100000 + 0x80000 * i, 0x80000));
    }
  }

  bool start(uint64_t features, std::optional<BucketConfig> bw = std::nullopt) {
    FrameBackends backends;
    for (int i = 0; i < 2; ++i) {
      auto b = std::make_unique<testing::SocketBackend>(&peers_[i]);
      backends_[i] = b.get();
      backends.push_back(std::move(b));
    }
    auto device = std::make_unique<VirtioNet>(std::move(backends),
                                              *kumo::net::parse_mac("52:54:00:12:34:56"),
                                              NetWorkerSettings{bw, std::nullopt, 0});
    net_ = device.get();
    transport_ = *VirtioPciDevice::create(std::move(device),
                                          TransportContext{&mem_, nullptr, line_, nullptr});
    driver_ = std::make_unique<TransportDriver>(*transport_);
    if (!driver_->negotiate(features)) return false;
    for (uint16_t i = 0; i < 5; ++i) driver_->setup_queue(i, queues_[i]->config());
    driver_->driver_ok();
    return (driver_->status() & vio::kStatusNeedsReset) == 0;
  }

  DriverQueue& q(uint16_t i) { return *queues_[i]; }

  // Queues a frame (`payload` bytes after the Ethernet header) on transmit queue `tx` and
  // notifies.
  void send_on(uint16_t tx, size_t payload = 60) {
    const VnetHeader h{};
    const auto frame = ethernet_frame(payload);
    const uint64_t hdr = q(tx).alloc(12, std::span(reinterpret_cast<const uint8_t*>(&h), 12));
    const uint64_t data = q(tx).alloc(frame.size(), frame);
    q(tx).add_chain({{hdr, 12, false}, {data, static_cast<uint32_t>(frame.size()), false}});
    driver_->notify(tx);
  }

  // Sends a control request; returns the ack byte, or nullopt if the chain never came back.
  std::optional<uint8_t> control(std::vector<uint8_t> request) {
    DriverQueue& c = q(kCtrl);
    const uint64_t req = c.alloc(request.size(), request);
    const uint8_t unset = 0xee;
    const uint64_t ack = c.alloc(1, std::span(&unset, 1));
    const uint16_t before = c.used_idx();
    c.add_chain({{req, static_cast<uint32_t>(request.size()), false}, {ack, 1, true}});
    driver_->notify(kCtrl);
    if (!wait_until([&] { return c.used_idx() != before; })) return std::nullopt;
    auto used = c.pop_used();
    EXPECT_EQ(used->len, 1u);
    return c.read(ack, 1)[0];
  }
  std::optional<uint8_t> set_pairs(uint16_t n) {
    return control({kCtrlClassMq, kCtrlMqVqPairsSet, static_cast<uint8_t>(n),
                    static_cast<uint8_t>(n >> 8)});
  }

  // Sends a frame from peer `pair`'s host side; waits until the guest's `rx` queue used it.
  bool host_sends(int pair, uint16_t rx) {
    std::vector<uint8_t> msg(12, 0);
    const auto frame = ethernet_frame(60);
    msg.insert(msg.end(), frame.begin(), frame.end());
    const uint16_t before = q(rx).used_idx();
    if (::send(peers_[pair].get(), msg.data(), msg.size(), 0) < 0) return false;
    return wait_until([&] { return q(rx).used_idx() != before; }, std::chrono::milliseconds(500));
  }

  memory::GuestMemory mem_;
  std::vector<std::unique_ptr<DriverQueue>> queues_;
  UniqueFd peers_[2];
  testing::SocketBackend* backends_[2] = {};
  VirtioNet* net_ = nullptr;
  std::shared_ptr<virtio::testing::FakeInterruptLine> line_ =
      std::make_shared<virtio::testing::FakeInterruptLine>();
  std::shared_ptr<VirtioPciDevice> transport_;
  std::unique_ptr<TransportDriver> driver_;
};

TEST_F(VirtioNetMqTest, OffersMqWithTheControlQueueAndSaysHowManyPairs) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq})));
  const uint64_t offered = driver_->device_features();
  EXPECT_TRUE(offered & vio::feature_bit(kFeatureMq));
  EXPECT_TRUE(offered & vio::feature_bit(kFeatureCtrlVq));
  EXPECT_EQ(driver_->config(8, 2), 2u);  // max_virtqueue_pairs
  EXPECT_EQ(net_->num_queues(), 5);
  EXPECT_EQ(net_->active_pairs(), 1u);
  EXPECT_FALSE(backends_[1]->enabled.load());  // the host sends nothing to an idle pair
}

TEST_F(VirtioNetMqTest, SecondPairCarriesFramesOnlyAfterVqPairsSet) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq})));
  send_on(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(q(3).used_idx(), 0);  // transmitq2 is not served yet
  EXPECT_EQ(set_pairs(2), kCtrlOk);
  EXPECT_EQ(net_->active_pairs(), 2u);
  EXPECT_TRUE(backends_[1]->enabled.load());
  EXPECT_TRUE(wait_until([&] { return q(3).used_idx() == 1; }));
  char buf[2048];
  EXPECT_GT(::recv(peers_[1].get(), buf, sizeof(buf), 0), 0);
  q(2).add_chain({{q(2).alloc(2048), 2048, true}});
  driver_->notify(2);
  EXPECT_TRUE(host_sends(1, 2));
  EXPECT_EQ(net_->counters().rx_frames.load(), 1u);
}

TEST_F(VirtioNetMqTest, StoppingAPairGivesItsReceiveBuffersBack) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq})));
  ASSERT_EQ(set_pairs(2), kCtrlOk);
  q(2).add_chain({{q(2).alloc(2048), 2048, true}});
  driver_->notify(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the worker holds the chain
  ASSERT_EQ(set_pairs(1), kCtrlOk);
  EXPECT_EQ(net_->active_pairs(), 1u);
  EXPECT_FALSE(backends_[1]->enabled.load());
  ASSERT_EQ(set_pairs(2), kCtrlOk);
  EXPECT_TRUE(host_sends(1, 2));  // the buffer posted before is used, not lost
}

TEST_F(VirtioNetMqTest, BadControlRequestsAreAnsweredWithAnError) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq})));
  EXPECT_EQ(set_pairs(0), kCtrlErr);
  EXPECT_EQ(set_pairs(3), kCtrlErr);
  EXPECT_EQ(control({kCtrlClassMq, kCtrlMqVqPairsSet, 2}), kCtrlErr);     // short data
  EXPECT_EQ(control({kCtrlClassMq, kCtrlMqVqPairsSet, 2, 0, 0}), kCtrlErr);  // long data
  EXPECT_EQ(control({0, 0, 1}), kCtrlErr);  // VIRTIO_NET_CTRL_RX_PROMISC: not supported
  EXPECT_EQ(control({kCtrlClassMq}), kCtrlErr);  // no command byte
  EXPECT_EQ(net_->active_pairs(), 1u);
  // No ack byte: returned with length 0.
  DriverQueue& c = q(kCtrl);
  const uint8_t req[4] = {kCtrlClassMq, kCtrlMqVqPairsSet, 2, 0};
  c.add_chain({{c.alloc(4, req), 4, false}});
  driver_->notify(kCtrl);
  ASSERT_TRUE(wait_until([&] { return c.used_idx() == 7; }));
  for (int i = 0; i < 6; ++i) c.pop_used();
  EXPECT_EQ(c.pop_used()->len, 0u);
  EXPECT_EQ(net_->active_pairs(), 1u);
  EXPECT_FALSE(driver_->status() & vio::kStatusNeedsReset);
}

// bw= limits the NIC, not each pair: two pairs sending at once share one bucket.
TEST_F(VirtioNetMqTest, BandwidthLimitHoldsForAllPairsTogether) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq}), BucketConfig{2000, 0, 100}));
  ASSERT_EQ(set_pairs(2), kCtrlOk);
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) {
    send_on(1, 986);  // 1000-byte frames: 2000 bytes per pair, 4000 in all
    send_on(3, 986);
  }
  ASSERT_TRUE(wait_until([&] { return q(1).used_idx() == 2 && q(3).used_idx() == 2; }));
  // 2000 bytes go at once, the other 2000 need a full refill (100 ms).
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(80));
}

// The limiters belong to the NIC: a guest cannot reset the device to get a full bucket back.
TEST_F(VirtioNetMqTest, AResetDoesNotRefillTheBucket) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq}), BucketConfig{2000, 0, 1000}));
  send_on(1, 986);
  send_on(1, 986);  // the whole bucket
  ASSERT_TRUE(wait_until([&] { return q(1).used_idx() == 2; }));
  driver_->set_status(0);
  for (uint16_t i = 0; i < 5; ++i) {  // fresh rings for the new driver instance
    queues_[i] = std::make_unique<DriverQueue>(mem_, 0x8000 + 0x1000 * i, 16,
                                               0x3a0000 + 0x8000 * i, 0x8000);
  }
  ASSERT_TRUE(driver_->negotiate(bits({kFeatureCtrlVq, kFeatureMq})));
  for (uint16_t i = 0; i < 5; ++i) driver_->setup_queue(i, queues_[i]->config());
  driver_->driver_ok();
  const auto begin = std::chrono::steady_clock::now();
  send_on(1, 986);
  ASSERT_TRUE(wait_until([&] { return q(1).used_idx() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - begin, std::chrono::milliseconds(300));
}

TEST_F(VirtioNetMqTest, WithoutMqOnlyTheFirstPairRuns) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq})));
  EXPECT_EQ(set_pairs(2), kCtrlErr);
  EXPECT_EQ(net_->active_pairs(), 1u);
}

TEST_F(VirtioNetMqTest, MqWithoutTheControlQueueIsRefused) {
  EXPECT_FALSE(start(bits({kFeatureMq})));
}

TEST_F(VirtioNetMqTest, ResetStopsEveryPair) {
  ASSERT_TRUE(start(bits({kFeatureCtrlVq, kFeatureMq})));
  ASSERT_EQ(set_pairs(2), kCtrlOk);
  driver_->set_status(0);
  EXPECT_EQ(net_->active_pairs(), 0u);
}

TEST(NetOptions, ParsesTapBridgeMacAndLimits) {
  auto o = parse_net_options("bridge=br0,tap=vm0,mac=52:54:00:00:00:01,bw=1M,ops=1000,ops_burst=10");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->tap, "vm0");
  EXPECT_EQ(o->bridge, "br0");
  EXPECT_EQ(o->mac->to_string(), "52:54:00:00:00:01");
  EXPECT_EQ(o->bandwidth->size, 1u << 20);
  EXPECT_EQ(o->ops->one_time_burst, 10u);
  EXPECT_EQ(o->queues, 1u);
  EXPECT_EQ(parse_net_options("tap=t0,queues=4")->queues, 4u);
}

TEST(NetOptions, ErrorsNameTheBadKey) {
  auto check = [](std::string_view text, std::string_view key) {
    auto o = parse_net_options(text);
    ASSERT_FALSE(o) << text;
    EXPECT_EQ(o.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(o.error().message.find(key), std::string::npos) << o.error().message;
  };
  check("tap=t0,mac=01:00:5e:00:00:01", "mac");
  check("tap=t0,mac=zz", "mac");
  check("mac=52:54:00:00:00:01", "tap");
  check("tap=averyveryverylongname", "tap");
  check("tap=t0,speed=10G", "speed");
  check("tap=t0,bw=fast", "bw");
  check("tap=t0,ops_burst=3", "ops_burst");
  check("tap=t0,poll-us=10001", "poll-us");
  check("tap=t0,poll-us=-1", "poll-us");
  check("tap=t0,queues=0", "queues");
  check("tap=t0,queues=17", "queues");
}

TEST(NetOptions, PollWindowDefaultsOnAndCanBeTurnedOff) {
  EXPECT_EQ(parse_net_options("tap=t0")->poll_ns, kDefaultPollMicros * 1000);
  EXPECT_EQ(parse_net_options("tap=t0,poll-us=0")->poll_ns, 0u);
  EXPECT_EQ(parse_net_options("tap=t0,poll-us=200")->poll_ns, 200'000u);
}

}  // namespace
}  // namespace kumo::devices::virtio::net
