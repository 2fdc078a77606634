// kumo-tap-echo: the host side of the test guest's net-echo / net-bench workloads.
// Listens on a network interface (the VM's tap) for Ethernet frames of ethertype 0x88b5 and
// sends each one straight back on the same interface, so the guest receives it. Works the
// same for kumo and QEMU (-netdev tap), which makes it the fair peer for network benchmarks.
//
// Usage: kumo-tap-echo IFNAME [SECONDS]     (root; exits after SECONDS, default 60)

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {
constexpr uint16_t kProbeEthertype = 0x88b5;
}

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: kumo-tap-echo IFNAME [SECONDS]\n");
    return 2;
  }
  const unsigned ifindex = if_nametoindex(argv[1]);
  if (ifindex == 0) {
    std::fprintf(stderr, "kumo-tap-echo: no interface '%s'\n", argv[1]);
    return 2;
  }
  const int seconds = argc == 3 ? std::atoi(argv[2]) : 60;
  const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kProbeEthertype));
  if (fd < 0) {
    std::perror("kumo-tap-echo: socket(AF_PACKET)");
    return 1;
  }
  // Room for a full window of MTU-sized probes (the 208 KiB default drops some of 128 frames
  // of 1514 bytes, which the guest then counts as lost after its timeout).
  const int rcvbuf = 8 << 20;
  if (::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) != 0) {
    (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(kProbeEthertype);
  addr.sll_ifindex = static_cast<int>(ifindex);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    std::perror("kumo-tap-echo: bind");
    return 1;
  }
  // Our own replies would come back on the socket as PACKET_OUTGOING; skip them in the kernel.
  const int one = 1;
  (void)::setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
  std::printf("ready\n");
  std::fflush(stdout);
  // Frames are echoed in batches (recvmmsg / sendmmsg) so the responder costs a few system
  // calls per window of probes, not three per frame: it shares the host's CPUs with the VMM
  // under test and must not be the bottleneck of the comparison.
  constexpr unsigned kBatch = 64;
  static unsigned char frames[kBatch][2048];
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> rx{};
  std::array<sockaddr_ll, kBatch> from{};
  std::array<mmsghdr, kBatch> tx{};
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    for (unsigned i = 0; i < kBatch; ++i) {
      iov[i] = iovec{frames[i], sizeof(frames[i])};
      rx[i] = mmsghdr{};
      rx[i].msg_hdr.msg_iov = &iov[i];
      rx[i].msg_hdr.msg_iovlen = 1;
      rx[i].msg_hdr.msg_name = &from[i];
      rx[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    const int n = ::recvmmsg(fd, rx.data(), kBatch, MSG_DONTWAIT, nullptr);
    unsigned out = 0;
    for (int i = 0; i < n; ++i) {
      const auto k = static_cast<unsigned>(i);
      if (rx[k].msg_len == 0 || from[k].sll_pkttype == PACKET_OUTGOING) {
        continue;
      }
      iov[k].iov_len = rx[k].msg_len;
      tx[out] = mmsghdr{};
      tx[out].msg_hdr.msg_iov = &iov[k];
      tx[out].msg_hdr.msg_iovlen = 1;
      tx[out].msg_hdr.msg_name = &addr;
      tx[out].msg_hdr.msg_namelen = sizeof(addr);
      ++out;
    }
    for (unsigned sent = 0; sent < out;) {
      const int m = ::sendmmsg(fd, &tx[sent], out - sent, 0);
      if (m <= 0) {
        break;  // a lost reply is the guest's to count
      }
      sent += static_cast<unsigned>(m);
    }
  }
  return 0;
}
