#include "devices/virtio/block/block_device.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "devices/virtio/block/memory_backend.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/testing/fakes.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio::block {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using testing::MemoryBackend;
using vio::testing::Segment;
using virtio::testing::TransportDriver;
using virtio::testing::wait_until;

constexpr uint64_t kDiskBytes = 1 << 20;

struct Header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

class VirtioBlockTest : public ::testing::Test {
 protected:
  VirtioBlockTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), 4 << 20}})),
        queue_(mem_, 0x1000, 64, 0x100000, 0x300000),
        backend_(std::make_shared<MemoryBackend>(kDiskBytes)) {}

  void start(DiskOptions options = {}, uint64_t extra_features = 0) {
    options.path = "mem";
    if (options.serial.empty()) options.serial = "kumo-disk-1";
    auto device = std::make_unique<VirtioBlock>(backend_, options);
    block_ = device.get();
    transport_ = *VirtioPciDevice::create(std::move(device), TransportContext{&mem_, nullptr, line_, nullptr});
    driver_ = std::make_unique<TransportDriver>(*transport_);
    ASSERT_TRUE(driver_->negotiate(vio::feature_bit(vio::kFeatureVersion1) |
                                   vio::feature_bit(vio::kFeatureEventIdx) |
                                   vio::feature_bit(vio::kFeatureIndirectDesc) | extra_features));
    driver_->setup_queue(0, queue_.config());
    driver_->driver_ok();
    ASSERT_FALSE(driver_->status() & vio::kStatusNeedsReset);
  }

  uint64_t header(uint32_t type, uint64_t sector) {
    Header h{type, 0, sector};
    return queue_.alloc(sizeof(h), std::span(reinterpret_cast<const uint8_t*>(&h), sizeof(h)));
  }

  // Publishes, notifies and waits for the used element of `head`.
  std::optional<vio::UsedElement> run(uint16_t head) {
    driver_->notify(0);
    std::optional<vio::UsedElement> used;
    wait_until([&] {
      used = queue_.pop_used();
      return used.has_value() || (driver_->status() & vio::kStatusNeedsReset);
    });
    if (used) {
      EXPECT_EQ(used->id, head);
    }
    return used;
  }

  uint8_t status_at(uint64_t gpa) { return queue_.read(gpa, 1)[0]; }

  // A complete request: header, optional data, status. Returns {status byte, used len}.
  std::pair<uint8_t, uint32_t> request(uint32_t type, uint64_t sector, uint64_t data_gpa,
                                       uint32_t data_len, bool data_writable) {
    const uint64_t status = queue_.alloc(1);
    std::vector<Segment> segs{{header(type, sector), 16, false}};
    if (data_len != 0) segs.push_back({data_gpa, data_len, data_writable});
    segs.push_back({status, 1, true});
    const uint16_t head = queue_.add_chain(segs);
    auto used = run(head);
    if (!used) return {0xff, 0};
    return {status_at(status), used->len};
  }

  memory::GuestMemory mem_;
  vio::testing::DriverQueue queue_;
  std::shared_ptr<MemoryBackend> backend_;
  std::shared_ptr<virtio::testing::FakeInterruptLine> line_ =
      std::make_shared<virtio::testing::FakeInterruptLine>();
  VirtioBlock* block_ = nullptr;
  std::shared_ptr<VirtioPciDevice> transport_;
  std::unique_ptr<TransportDriver> driver_;
};

TEST_F(VirtioBlockTest, ConfigReportsCapacityAndFeatures) {
  start();
  EXPECT_EQ(driver_->config(0, 8), kDiskBytes / 512);
  EXPECT_EQ(driver_->config(20, 4), 512u);
  const uint64_t f = driver_->device_features();
  EXPECT_TRUE(f & vio::feature_bit(kFeatureFlush));
  EXPECT_TRUE(f & vio::feature_bit(kFeatureDiscard));
  EXPECT_FALSE(f & vio::feature_bit(kFeatureRo));
}

TEST_F(VirtioBlockTest, WriteThenReadRoundTrips) {
  start();
  std::vector<uint8_t> pattern(1024);
  for (size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<uint8_t>(i * 7);
  const uint64_t src = queue_.alloc(1024, pattern);
  auto [st, len] = request(1, 4, src, 1024, false);
  EXPECT_EQ(st, kStatusOk);
  EXPECT_EQ(len, 1u);
  EXPECT_EQ(std::memcmp(backend_->data_.data() + 2048, pattern.data(), 1024), 0);
  const uint64_t dst = queue_.alloc(1024);
  auto [st2, len2] = request(0, 4, dst, 1024, true);
  EXPECT_EQ(st2, kStatusOk);
  EXPECT_EQ(len2, 1025u);
  EXPECT_EQ(queue_.read(dst, 1024), pattern);
}

TEST_F(VirtioBlockTest, RequestSplitAcrossIndirectDescriptorsWorks) {
  start();
  backend_->data_[512] = 0x42;
  const uint64_t status = queue_.alloc(1);
  const uint64_t a = queue_.alloc(256), b = queue_.alloc(256);
  const uint16_t head = queue_.add_indirect_chain(
      {{header(0, 1), 16, false}, {a, 256, true}, {b, 256, true}, {status, 1, true}});
  ASSERT_TRUE(run(head));
  EXPECT_EQ(status_at(status), kStatusOk);
  EXPECT_EQ(queue_.read(a, 1)[0], 0x42);
}

TEST_F(VirtioBlockTest, FlushCompletes) {
  start();
  auto [st, len] = request(4, 0, 0, 0, false);
  EXPECT_EQ(st, kStatusOk);
  EXPECT_EQ(backend_->ops.back(), kumo::block::IoOp::kFlush);
}

TEST_F(VirtioBlockTest, GetIdReturnsTheSerial) {
  start();
  const uint64_t id = queue_.alloc(20);
  auto [st, len] = request(8, 0, id, 20, true);
  EXPECT_EQ(st, kStatusOk);
  EXPECT_EQ(len, 21u);
  auto bytes = queue_.read(id, 20);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(bytes.data())), "kumo-disk-1");
}

TEST_F(VirtioBlockTest, WriteZeroesClearsTheRange) {
  start();
  std::fill(backend_->data_.begin(), backend_->data_.begin() + 4096, uint8_t{0xee});
  DiscardSegment seg{2, 2, 0};
  const uint64_t s = queue_.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&seg), 16));
  auto [st, len] = request(13, 0, s, 16, false);
  EXPECT_EQ(st, kStatusOk);
  EXPECT_EQ(backend_->data_[1023], 0xee);
  EXPECT_EQ(backend_->data_[1024], 0);
  EXPECT_EQ(backend_->data_[2047], 0);
  EXPECT_EQ(backend_->data_[2048], 0xee);
}

TEST_F(VirtioBlockTest, DiscardReachesTheBackend) {
  start();
  DiscardSegment seg{0, 8, 0};
  const uint64_t s = queue_.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&seg), 16));
  auto [st, len] = request(11, 0, s, 16, false);
  EXPECT_EQ(st, kStatusOk);
  EXPECT_EQ(backend_->ops.back(), kumo::block::IoOp::kDiscard);
}

TEST_F(VirtioBlockTest, DiscardWithUnmapIsUnsupported) {
  start();
  DiscardSegment seg{0, 8, 1};
  const uint64_t s = queue_.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&seg), 16));
  EXPECT_EQ(request(11, 0, s, 16, false).first, kStatusUnsupported);
}

TEST_F(VirtioBlockTest, DiscardBeyondCapacityIsIoErr) {
  start();
  DiscardSegment seg{kDiskBytes / 512 - 1, 2, 0};
  const uint64_t s = queue_.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&seg), 16));
  EXPECT_EQ(request(11, 0, s, 16, false).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, ReadOnlyDiskRefusesWritesAndOffersRo) {
  DiskOptions options;
  options.read_only = true;
  start(options, vio::feature_bit(kFeatureRo));
  EXPECT_TRUE(driver_->device_features() & vio::feature_bit(kFeatureRo));
  EXPECT_FALSE(driver_->device_features() & vio::feature_bit(kFeatureDiscard));
  const uint64_t src = queue_.alloc(512, std::vector<uint8_t>(512, 0x11));
  EXPECT_EQ(request(1, 0, src, 512, false).first, kStatusIoErr);
  EXPECT_EQ(backend_->data_[0], 0);
  EXPECT_EQ(backend_->submitted, 0);
}

TEST_F(VirtioBlockTest, ReadBeyondCapacityIsIoErr) {
  start();
  const uint64_t dst = queue_.alloc(1024);
  EXPECT_EQ(request(0, kDiskBytes / 512 - 1, dst, 1024, true).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, SectorOverflowIsIoErr) {
  start();
  const uint64_t dst = queue_.alloc(512);
  EXPECT_EQ(request(0, ~uint64_t{0}, dst, 512, true).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, LengthNotMultipleOf512IsIoErr) {
  start();
  const uint64_t dst = queue_.alloc(100);
  EXPECT_EQ(request(0, 0, dst, 100, true).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, UnknownTypeIsUnsupported) {
  start();
  EXPECT_EQ(request(99, 0, 0, 0, false).first, kStatusUnsupported);
}

TEST_F(VirtioBlockTest, WriteOnlyHeaderIsIoErr) {
  start();
  const uint64_t status = queue_.alloc(1);
  const uint16_t head =
      queue_.add_chain({{header(0, 0), 16, true}, {status, 1, true}});
  ASSERT_TRUE(run(head));
  EXPECT_EQ(status_at(status), kStatusIoErr);
}

TEST_F(VirtioBlockTest, ZeroLengthHeaderIsIoErr) {
  start();
  const uint64_t status = queue_.alloc(1);
  const uint16_t head = queue_.add_chain({{header(0, 0), 0, false}, {status, 1, true}});
  ASSERT_TRUE(run(head));
  EXPECT_EQ(status_at(status), kStatusIoErr);
}

TEST_F(VirtioBlockTest, MissingStatusByteCompletesWithZeroLength) {
  start();
  const uint16_t head = queue_.add_chain({{header(4, 0), 16, false}});
  auto used = run(head);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 0u);
  EXPECT_FALSE(driver_->status() & vio::kStatusNeedsReset);
}

TEST_F(VirtioBlockTest, DescriptorCycleSetsNeedsReset) {
  start();
  queue_.write_descriptor(5, {header(0, 0), 16, vio::kDescFlagNext, 6});
  queue_.write_descriptor(6, {queue_.alloc(1), 1, vio::kDescFlagNext | vio::kDescFlagWrite, 5});
  queue_.publish(5);
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return (driver_->status() & vio::kStatusNeedsReset) != 0; }));
  // The VMM keeps running and the driver can reset and start over.
  driver_->set_status(0);
  EXPECT_EQ(driver_->status(), 0);
}

TEST_F(VirtioBlockTest, BufferOutsideGuestRamSetsNeedsReset) {
  start();
  queue_.write_descriptor(0, {header(0, 0), 16, vio::kDescFlagNext, 1});
  queue_.write_descriptor(1, {0x7000'0000, 512, vio::kDescFlagWrite, 0});
  queue_.publish(0);
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return (driver_->status() & vio::kStatusNeedsReset) != 0; }));
}

TEST_F(VirtioBlockTest, OversizedChainLengthIsIoErrNotACrash) {
  start();
  // 2 MiB of writable data on a 1 MiB disk.
  const uint64_t big = queue_.alloc(2 << 20);
  EXPECT_EQ(request(0, 0, big, 2 << 20, true).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, BackendErrorIsIoErr) {
  start();
  backend_->fail_errno = EIO;
  const uint64_t dst = queue_.alloc(512);
  EXPECT_EQ(request(0, 0, dst, 512, true).first, kStatusIoErr);
}

TEST_F(VirtioBlockTest, ManyRequestsAreInFlightAtOnce) {
  start();
  backend_->hold = true;
  std::vector<uint64_t> statuses;
  for (int i = 0; i < 16; ++i) {
    const uint64_t status = queue_.alloc(1);
    statuses.push_back(status);
    queue_.add_chain({{header(0, static_cast<uint64_t>(i)), 16, false},
                      {queue_.alloc(512), 512, true}, {status, 1, true}});
  }
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return backend_->held() == 16; }));
  EXPECT_EQ(queue_.used_idx(), 0);
  backend_->release();
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 16; }));
  for (uint64_t s : statuses) EXPECT_EQ(status_at(s), kStatusOk);
}

TEST_F(VirtioBlockTest, FullBackendQueueIsRetriedAfterCompletions) {
  start();
  backend_->hold = true;
  backend_->max_in_flight = 2;
  for (int i = 0; i < 5; ++i) {
    queue_.add_chain({{header(0, 0), 16, false}, {queue_.alloc(512), 512, true},
                      {queue_.alloc(1), 1, true}});
  }
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return backend_->held() == 2; }));
  backend_->hold = false;
  backend_->release();
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 5; }));
}

TEST_F(VirtioBlockTest, IopsLimitDelaysRequests) {
  DiskOptions options;
  options.ops = BucketConfig{2, 0, 100};  // 2 ops per 100 ms
  start(options);
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 6; ++i) {
    queue_.add_chain({{header(4, 0), 16, false}, {queue_.alloc(1), 1, true}});
  }
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return queue_.used_idx() == 6; }));
  const auto elapsed = std::chrono::steady_clock::now() - begin;
  // 2 immediately, 4 more at 20 ops/s: at least ~200 ms.
  EXPECT_GE(elapsed, std::chrono::milliseconds(180));
}

// The limiter belongs to the disk: resetting the device does not give the guest a full bucket.
TEST(VirtioBlockLimits, AResetDoesNotRefillTheBucket) {
  auto mem = *memory::GuestMemory::create({{GuestAddress(0), 4 << 20}});
  DiskOptions options;
  options.path = "mem";
  options.ops = BucketConfig{2, 0, 1000};  // 2 ops per second
  auto device = std::make_unique<VirtioBlock>(std::make_shared<MemoryBackend>(kDiskBytes), options);
  auto line = std::make_shared<virtio::testing::FakeInterruptLine>();
  auto transport = *VirtioPciDevice::create(std::move(device),
                                            TransportContext{&mem, nullptr, line, nullptr});
  TransportDriver driver(*transport);
  auto flushes = [&](uint64_t ring_base, uint64_t data_base, int n) {
    vio::testing::DriverQueue q(mem, ring_base, 16, data_base, 0x10000);
    EXPECT_TRUE(driver.negotiate(vio::feature_bit(vio::kFeatureVersion1)));
    driver.setup_queue(0, q.config());
    driver.driver_ok();
    for (int i = 0; i < n; ++i) {
      Header h{4, 0, 0};
      q.add_chain({{q.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&h), 16)), 16, false},
                   {q.alloc(1), 1, true}});
    }
    driver.notify(0);
    const auto begin = std::chrono::steady_clock::now();
    EXPECT_TRUE(wait_until([&] { return q.used_idx() == n; }));
    const auto elapsed = std::chrono::steady_clock::now() - begin;
    driver.set_status(0);
    return elapsed;
  };
  EXPECT_LT(flushes(0x1000, 0x100000, 2), std::chrono::milliseconds(300));  // the whole bucket
  EXPECT_GE(flushes(0x8000, 0x200000, 1), std::chrono::milliseconds(300));  // still empty
}

TEST_F(VirtioBlockTest, ResetWaitsForInFlightRequests) {
  start();
  backend_->hold = true;
  queue_.add_chain({{header(0, 0), 16, false}, {queue_.alloc(512), 512, true},
                    {queue_.alloc(1), 1, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return backend_->held() == 1; }));
  std::thread releaser([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    backend_->release();
  });
  driver_->set_status(0);
  releaser.join();
  EXPECT_EQ(backend_->held(), 0u);
  EXPECT_EQ(driver_->status(), 0);
}

TEST_F(VirtioBlockTest, DeviceCanBeActivatedAgainAfterReset) {
  start();
  driver_->set_status(0);
  vio::testing::DriverQueue fresh(mem_, 0x8000, 16, 0x200000, 0x10000);
  ASSERT_TRUE(driver_->negotiate(vio::feature_bit(vio::kFeatureVersion1)));
  driver_->setup_queue(0, fresh.config());
  driver_->driver_ok();
  const uint64_t status = fresh.alloc(1);
  Header h{4, 0, 0};
  const uint64_t hdr = fresh.alloc(16, std::span(reinterpret_cast<const uint8_t*>(&h), 16));
  fresh.add_chain({{hdr, 16, false}, {status, 1, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return fresh.used_idx() == 1; }));
  EXPECT_EQ(fresh.read(status, 1)[0], kStatusOk);
}

// Busy polling (poll-us): while the worker polls, a request the driver publishes without a
// notification is served; once the window has passed, the driver is asked to notify again.
TEST_F(VirtioBlockTest, APollingWorkerServesRequestsPublishedWithoutANotification) {
  DiskOptions options;
  options.poll_ns = 10'000'000'000;  // longer than the test: the worker never sleeps
  start(options);
  auto [st, len] = request(0, 0, queue_.alloc(512), 512, true);  // notified
  ASSERT_EQ(st, kStatusOk);
  const uint64_t status = queue_.alloc(1);
  const uint16_t head = queue_.add_chain(
      {{header(0, 1), 16, false}, {queue_.alloc(512), 512, true}, {status, 1, true}});
  std::optional<vio::UsedElement> used;
  ASSERT_TRUE(wait_until([&] { return (used = queue_.pop_used()).has_value(); }));
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(status_at(status), kStatusOk);
}

TEST_F(VirtioBlockTest, AfterThePollWindowTheDriverIsAskedToNotifyAgain) {
  DiskOptions options;
  options.poll_ns = 1'000'000;
  start(options);
  auto [st, len] = request(0, 0, queue_.alloc(512), 512, true);
  ASSERT_EQ(st, kStatusOk);
  // EVENT_IDX: avail_event names the next chain the worker will pop.
  EXPECT_TRUE(wait_until([&] { return queue_.avail_event() == 1; }));
  const uint64_t status = queue_.alloc(1);
  const uint16_t head = queue_.add_chain(
      {{header(0, 1), 16, false}, {queue_.alloc(512), 512, true}, {status, 1, true}});
  EXPECT_TRUE(run(head).has_value());
  EXPECT_EQ(status_at(status), kStatusOk);
}

// VIRTIO_BLK_F_MQ: three request queues served by one worker; each request is answered on
// the queue it came from, with that queue's interrupt vector.
TEST(VirtioBlockMq, EveryQueueServesRequestsAndAnswersOnItsOwnRing) {
  auto mem = *memory::GuestMemory::create({{GuestAddress(0), 4 << 20}});
  auto backend = std::make_shared<MemoryBackend>(kDiskBytes);
  std::vector<std::unique_ptr<vio::testing::DriverQueue>> queues;
  for (uint16_t i = 0; i < 3; ++i) {
    queues.push_back(std::make_unique<vio::testing::DriverQueue>(
        mem, 0x1000 * (i + 1), 16, 0x100000 + 0x80000 * i, 0x80000));
  }
  DiskOptions options;
  options.path = "mem";
  options.queues = 3;
  auto device = std::make_unique<VirtioBlock>(backend, options);
  auto line = std::make_shared<virtio::testing::FakeInterruptLine>();
  auto transport = *VirtioPciDevice::create(std::move(device),
                                            TransportContext{&mem, nullptr, line, nullptr});
  TransportDriver driver(*transport);
  EXPECT_TRUE(driver.device_features() & vio::feature_bit(kFeatureMq));
  EXPECT_EQ(driver.config(34, 2), 3u);  // num_queues
  ASSERT_TRUE(driver.negotiate(vio::feature_bit(vio::kFeatureVersion1) |
                               vio::feature_bit(kFeatureMq)));
  for (uint16_t i = 0; i < 3; ++i) driver.setup_queue(i, queues[i]->config());
  driver.driver_ok();
  // One write per queue, to different sectors, all notified at once.
  std::vector<uint64_t> status(3);
  for (uint16_t i = 0; i < 3; ++i) {
    auto& q = *queues[i];
    Header h{1, 0, 8ULL * i};
    const uint64_t hdr = q.alloc(sizeof(h), std::span(reinterpret_cast<const uint8_t*>(&h),
                                                      sizeof(h)));
    std::vector<uint8_t> data(512, static_cast<uint8_t>(0xa0 + i));
    const uint64_t buf = q.alloc(512, data);
    status[i] = q.alloc(1);
    q.add_chain({{hdr, 16, false}, {buf, 512, false}, {status[i], 1, true}});
  }
  for (uint16_t i = 0; i < 3; ++i) driver.notify(i);
  for (uint16_t i = 0; i < 3; ++i) {
    auto& q = *queues[i];
    ASSERT_TRUE(wait_until([&] { return q.used_idx() == 1; })) << "queue " << i;
    EXPECT_EQ(q.read(status[i], 1)[0], kStatusOk);
    EXPECT_EQ(backend->data_[8 * 512 * i], 0xa0 + i);
  }
  EXPECT_FALSE(driver.status() & vio::kStatusNeedsReset);
}

TEST(VirtioBlockMq, WithoutMqOnlyOneQueueIsOffered) {
  DiskOptions options;
  options.path = "mem";
  VirtioBlock device(std::make_shared<MemoryBackend>(kDiskBytes), options);
  EXPECT_EQ(device.num_queues(), 1);
  EXPECT_FALSE(device.device_features() & vio::feature_bit(kFeatureMq));
}

}  // namespace
}  // namespace kumo::devices::virtio::block
