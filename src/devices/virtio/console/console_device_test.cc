#include "devices/virtio/console/console_device.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include <cstring>

#include "devices/virtio/pci_transport.h"
#include "devices/virtio/testing/fakes.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio::console {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using virtio::testing::TransportDriver;
using virtio::testing::wait_until;

class VirtioConsoleTest : public ::testing::Test {
 protected:
  VirtioConsoleTest()
      : mem_(*memory::GuestMemory::create({{GuestAddress(0), 1 << 20}})),
        rx_(mem_, 0x1000, 16, 0x10000, 0x40000),
        tx_(mem_, 0x4000, 16, 0x50000, 0x40000) {
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
    input_read_.reset(in[0]);
    input_write_.reset(in[1]);
    output_read_.reset(out[0]);
    output_write_.reset(out[1]);
  }
  void SetUp() override { start(input_read_.get()); }
  // Activates the console with `input_fd` as its input.
  void start(int input_fd) {
    transport_ = *VirtioPciDevice::create(
        std::make_unique<VirtioConsole>(input_fd, output_write_.get()),
        TransportContext{&mem_, nullptr, line_, nullptr});
    driver_ = std::make_unique<TransportDriver>(*transport_);
    EXPECT_TRUE(driver_->negotiate(vio::feature_bit(vio::kFeatureVersion1) |
                                   vio::feature_bit(kFeatureEmergWrite)));
    driver_->setup_queue(0, rx_.config());
    driver_->setup_queue(1, tx_.config());
    driver_->driver_ok();
  }
  std::string drain_output() {
    char buf[256];
    std::string out;
    ssize_t n;
    while ((n = ::read(output_read_.get(), buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }
  memory::GuestMemory mem_;
  vio::testing::DriverQueue rx_;
  vio::testing::DriverQueue tx_;
  UniqueFd input_read_, input_write_, output_read_, output_write_;
  std::shared_ptr<virtio::testing::FakeInterruptLine> line_ =
      std::make_shared<virtio::testing::FakeInterruptLine>();
  std::shared_ptr<VirtioPciDevice> transport_;
  std::unique_ptr<TransportDriver> driver_;
};

TEST_F(VirtioConsoleTest, ConfigReportsSizeAndOnePort) {
  EXPECT_EQ(driver_->config(0, 2), 80u);
  EXPECT_EQ(driver_->config(2, 2), 25u);
  EXPECT_EQ(driver_->config(4, 4), 1u);
}

TEST_F(VirtioConsoleTest, TransmitReachesOutput) {
  tx_.add_chain({{tx_.alloc_string("hello "), 6, false}, {tx_.alloc_string("world"), 5, false}});
  driver_->notify(1);
  std::string out;
  ASSERT_TRUE(wait_until([&] {
    out += drain_output();
    return out == "hello world";
  }));
}

TEST_F(VirtioConsoleTest, InputReachesTheGuest) {
  const uint64_t buf = rx_.alloc(64);
  rx_.add_chain({{buf, 64, true}});
  driver_->notify(0);
  ASSERT_EQ(::write(input_write_.get(), "ls\n", 3), 3);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
  EXPECT_EQ(rx_.pop_used()->len, 3u);
  auto bytes = rx_.read(buf, 3);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "ls\n");
}

TEST_F(VirtioConsoleTest, InputWaitsForBuffers) {
  ASSERT_EQ(::write(input_write_.get(), "x", 1), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rx_.used_idx(), 0);
  rx_.add_chain({{rx_.alloc(8), 8, true}});
  driver_->notify(0);
  EXPECT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
}

TEST_F(VirtioConsoleTest, EmergencyWriteGoesStraightOut) {
  driver_->write_config(8, 'E', 4);
  EXPECT_EQ(drain_output(), "E");
}

TEST_F(VirtioConsoleTest, BadTransmitChainSetsNeedsReset) {
  tx_.write_descriptor(0, {0x1000'0000, 4, 0, 0});
  tx_.publish(0);
  driver_->notify(1);
  EXPECT_TRUE(wait_until([&] { return (driver_->status() & vio::kStatusNeedsReset) != 0; }));
}

// Inputs epoll refuses (EPERM): kumo's stdin is /dev/null or a regular file in scripts and tests.
class VirtioConsoleUnpollableInputTest : public VirtioConsoleTest {
 protected:
  void SetUp() override {}
};

TEST_F(VirtioConsoleUnpollableInputTest, TransmitWorksWithDevNullAsInput) {
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(null);
  start(null.get());
  tx_.add_chain({{tx_.alloc_string("hi"), 2, false}});
  driver_->notify(1);
  std::string out;
  ASSERT_TRUE(wait_until([&] {
    out += drain_output();
    return out == "hi";
  }));
  EXPECT_EQ(driver_->status() & vio::kStatusNeedsReset, 0);
}

TEST_F(VirtioConsoleUnpollableInputTest, RegularFileInputReachesTheGuest) {
  char path[] = "/tmp/kumo-console-input-XXXXXX";
  UniqueFd file(::mkstemp(path));
  ASSERT_TRUE(file);
  ::unlink(path);
  ASSERT_EQ(::write(file.get(), "from a file", 11), 11);
  ASSERT_EQ(::lseek(file.get(), 0, SEEK_SET), 0);
  start(file.get());
  const uint64_t buf = rx_.alloc(64);
  rx_.add_chain({{buf, 64, true}});
  driver_->notify(0);
  ASSERT_TRUE(wait_until([&] { return rx_.used_idx() == 1; }));
  EXPECT_EQ(rx_.pop_used()->len, 11u);
  auto bytes = rx_.read(buf, 11);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "from a file");
}

}  // namespace
}  // namespace kumo::devices::virtio::console
