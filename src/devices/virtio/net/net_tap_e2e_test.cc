// End-to-end: virtio-net on a real tap in a fresh network namespace. Frames the driver
// transmits appear on an AF_PACKET socket bound to the tap, and frames sent on that socket
// reach the driver's receive buffers. Needs root and /dev/net/tun; skips otherwise.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <thread>

#include "devices/virtio/net/net_device.h"
#include "devices/virtio/net/net_header.h"
#include "devices/virtio/pci_transport.h"
#include "devices/virtio/testing/fakes.h"
#include "net/tap.h"
#include "virtio/testing/driver_queue.h"

namespace kumo::devices::virtio::net {
namespace {

namespace vio = kumo::virtio;
using memory::GuestAddress;
using virtio::testing::TransportDriver;
using virtio::testing::wait_until;

constexpr uint16_t kEthertype = 0x88b5;  // IEEE local experimental: ignored by the host stack

struct HostSide {
  FrameBackends tap;
  UniqueFd packet;
  int ifindex = 0;
};

// Creates the tap and a packet socket on it inside a new network namespace (on a helper
// thread, so the test process stays in its own namespace; fds keep the namespace alive).
Result<HostSide> make_host_side() {
  Result<HostSide> out = invalid_input("not run");
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      out = host_error("unshare(CLONE_NEWNET)");
      return;
    }
    NetOptions options;
    options.tap = "kumoe2e0";
    auto tap = open_tap_backends(options, *kumo::net::parse_mac("52:54:00:e2:e2:01"));
    if (!tap) {
      out = tl::unexpected(tap.error());
      return;
    }
    HostSide side;
    side.tap = std::move(*tap);
    side.ifindex = static_cast<int>(::if_nametoindex("kumoe2e0"));
    side.packet = UniqueFd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEthertype)));
    if (!side.packet) {
      out = host_error("AF_PACKET socket");
      return;
    }
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(kEthertype);
    addr.sll_ifindex = side.ifindex;
    if (::bind(side.packet.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      out = host_error("binding the packet socket");
      return;
    }
    out = std::move(side);
  });
  t.join();
  return out;
}

std::vector<uint8_t> frame(const uint8_t dst[6], const uint8_t src[6], const std::string& text) {
  std::vector<uint8_t> f(std::max<size_t>(14 + text.size(), 60), 0);
  std::memcpy(f.data(), dst, 6);
  std::memcpy(f.data() + 6, src, 6);
  f[12] = kEthertype >> 8;
  f[13] = kEthertype & 0xff;
  std::memcpy(f.data() + 14, text.data(), text.size());
  return f;
}

TEST(VirtioNetTap, FramesFlowBothWaysThroughARealTap) {
  if (::geteuid() != 0 || ::access("/dev/net/tun", R_OK | W_OK) != 0) {
    GTEST_SKIP() << "needs root and /dev/net/tun to create a tap";
  }
  auto host = make_host_side();
  if (!host && host.error().message.find("unshare") != std::string::npos) {
    GTEST_SKIP() << "network namespaces unavailable: " << host.error().to_string();
  }
  ASSERT_TRUE(host) << host.error().to_string();

  auto mem = *memory::GuestMemory::create({{GuestAddress(0), 4 << 20}});
  vio::testing::DriverQueue rx(mem, 0x1000, 16, 0x100000, 0x100000);
  vio::testing::DriverQueue tx(mem, 0x4000, 16, 0x200000, 0x100000);
  const auto guest_mac = *kumo::net::parse_mac("52:54:00:e2:e2:01");
  auto line = std::make_shared<virtio::testing::FakeInterruptLine>();
  auto transport = *VirtioPciDevice::create(
      std::make_unique<VirtioNet>(std::move(host->tap), guest_mac, NetWorkerSettings{}),
      TransportContext{&mem, nullptr, line, nullptr});
  TransportDriver driver(*transport);
  ASSERT_TRUE(driver.negotiate(vio::feature_bit(vio::kFeatureVersion1) |
                               vio::feature_bit(kFeatureMac) |
                               vio::feature_bit(kFeatureGuestCsum) |
                               vio::feature_bit(kFeatureGuestTso4) |
                               vio::feature_bit(kFeatureCsum)));
  driver.setup_queue(0, rx.config());
  driver.setup_queue(1, tx.config());
  driver.driver_ok();
  std::map<uint16_t, uint64_t> rx_buffers;
  for (int i = 0; i < 8; ++i) {
    const uint64_t buf = rx.alloc(2048);
    rx_buffers[rx.add_chain({{buf, 2048, true}})] = buf;
  }
  driver.notify(0);

  // Guest -> host.
  const uint8_t broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  const auto out = frame(broadcast, guest_mac.bytes.data(), "from the guest");
  VnetHeader hdr{};
  const uint64_t h = tx.alloc(12, std::span(reinterpret_cast<const uint8_t*>(&hdr), 12));
  const uint64_t d = tx.alloc(out.size(), out);
  tx.add_chain({{h, 12, false}, {d, static_cast<uint32_t>(out.size()), false}});
  driver.notify(1);
  std::vector<uint8_t> got(2048);
  bool seen = false;
  ASSERT_TRUE(wait_until([&] {
    const ssize_t n = ::recv(host->packet.get(), got.data(), got.size(), MSG_DONTWAIT);
    seen = n == static_cast<ssize_t>(out.size()) && std::memcmp(got.data(), out.data(), out.size()) == 0;
    return seen;
  })) << "the transmitted frame never appeared on the tap";

  // Host -> guest.
  const uint8_t host_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
  const auto in = frame(guest_mac.bytes.data(), host_mac, "from the host");
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = host->ifindex;
  to.sll_halen = 6;
  std::memcpy(to.sll_addr, guest_mac.bytes.data(), 6);
  ASSERT_EQ(::sendto(host->packet.get(), in.data(), in.size(), 0, reinterpret_cast<sockaddr*>(&to),
                     sizeof(to)),
            static_cast<ssize_t>(in.size()));
  bool received = false;
  ASSERT_TRUE(wait_until([&] {
    while (auto used = rx.pop_used()) {
      const auto bytes = rx.read(rx_buffers[static_cast<uint16_t>(used->id)], used->len);
      if (bytes.size() == 12 + in.size() &&
          std::equal(in.begin(), in.end(), bytes.begin() + 12)) {
        received = true;
      }
    }
    return received;
  })) << "the frame sent on the tap never reached the guest";
  EXPECT_EQ(transport->device_status() & vio::kStatusNeedsReset, 0);
}

}  // namespace
}  // namespace kumo::devices::virtio::net
