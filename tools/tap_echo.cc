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
  std::printf("ready\n");
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  unsigned char frame[2048];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    sockaddr_ll from{};
    socklen_t from_len = sizeof(from);
    const ssize_t n = ::recvfrom(fd, frame, sizeof(frame), 0, reinterpret_cast<sockaddr*>(&from),
                                 &from_len);
    if (n <= 0 || from.sll_pkttype == PACKET_OUTGOING) {
      continue;  // our own replies come back on the socket too
    }
    (void)::sendto(fd, frame, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&addr),
                   sizeof(addr));
  }
  return 0;
}
