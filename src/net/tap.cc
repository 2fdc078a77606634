#include "net/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace kumo::net {
namespace {

Result<UniqueFd> control_socket() {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s) {
    return host_error("opening a socket for interface ioctls");
  }
  return s;
}

Status copy_name(ifreq& ifr, std::string_view name) {
  if (name.size() >= IFNAMSIZ) {
    return invalid_input("interface name '{}' is longer than {} characters", name, IFNAMSIZ - 1);
  }
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  return {};
}

}  // namespace

namespace {

// Opens /dev/net/tun and attaches it to tap `name` (created if missing) with `flags` added.
Result<UniqueFd> open_tap_queue(std::string_view name, short flags, std::string& actual_name) {
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    const int e = errno;
    if (e == ENOENT) {
      return host_error_errno(e, "/dev/net/tun is missing (load the tun module)");
    }
    if (e == EACCES || e == EPERM) {
      return make_error(ErrorKind::kInvalidInput, e,
                        "no permission to open /dev/net/tun (run as root or grant access to "
                        "the device node)");
    }
    return host_error_errno(e, "opening /dev/net/tun");
  }
  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | flags);
  KUMO_TRY(copy_name(ifr, name.empty() ? std::string_view("kumo%d") : name));
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) {
    const int e = errno;
    // A permission problem is the user's to fix, like an unreadable disk image: kInvalidInput.
    if (e == EPERM && name.empty()) {
      return make_error(ErrorKind::kInvalidInput, e,
                        "creating a tap needs CAP_NET_ADMIN (run as root, or create one first "
                        "with `ip tuntap add NAME mode tap user $USER vnet_hdr` and pass tap=NAME)");
    }
    if (e == EPERM) {
      return make_error(ErrorKind::kInvalidInput, e,
                        fmt::format("creating tap '{}' needs CAP_NET_ADMIN (run as root, or create "
                                    "it first with `ip tuntap add {} mode tap user $USER vnet_hdr`)",
                                    name, name));
    }
    // Naming a tap someone else holds, or an interface that is no tap, is the user's to fix.
    if (e == EBUSY) {
      return make_error(ErrorKind::kInvalidInput, e,
                        fmt::format("tap '{}' is already in use by another process", name));
    }
    if (e == EINVAL && (flags & IFF_MULTI_QUEUE) != 0) {
      return make_error(ErrorKind::kInvalidInput, e,
                        fmt::format("interface '{}' exists and is not a multi-queue tap (create "
                                    "it with `ip tuntap add {} mode tap multi_queue vnet_hdr`)",
                                    name, name));
    }
    if (e == EINVAL) {
      return make_error(ErrorKind::kInvalidInput, e,
                        fmt::format("interface '{}' exists and is not a tap", name));
    }
    return host_error_errno(e, "creating tap '{}'", name);
  }
  actual_name = ifr.ifr_name;
  int hdr = static_cast<int>(kVnetHeaderBytes);
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0) {
    return host_error("setting the vnet header size of tap '{}'", actual_name);
  }
  // Nothing offloaded until the guest negotiates it.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0UL) != 0) {
    return host_error("clearing offloads of tap '{}'", actual_name);
  }
  return fd;
}

}  // namespace

Result<Tap> Tap::create(std::string_view name) {
  auto queues = KUMO_TRY(create_multiqueue(name, 1));
  return std::move(queues.front());
}

Result<std::vector<Tap>> Tap::create_multiqueue(std::string_view name, unsigned queues) {
  if (queues == 0 || queues > kMaxQueues) {
    return invalid_input("a tap has 1 to {} queues, not {}", kMaxQueues, queues);
  }
  const short flags = queues > 1 ? IFF_MULTI_QUEUE : 0;
  std::vector<Tap> taps;
  std::string actual;
  for (unsigned i = 0; i < queues; ++i) {
    // The first queue may create the interface (and learn its name); the others join it.
    UniqueFd fd = KUMO_TRY(open_tap_queue(i == 0 ? name : std::string_view(actual), flags, actual));
    taps.push_back(Tap(std::move(fd), actual));
  }
  KUMO_TRY(set_link_up(actual));
  // Attaching turned the carrier on, but the host starts transmitting on the interface only
  // once its link-watch work has run (operstate up, qdisc activated); until then everything
  // the host sends the guest is dropped. A guest that boots in milliseconds and sends at once
  // would lose the replies to its first frames, so wait for it (bounded; usually < 1 ms).
  KUMO_TRY(wait_until_running(actual, std::chrono::seconds(1)));
  return taps;
}

Status Tap::set_enabled(bool enabled) {
  ifreq ifr{};
  ifr.ifr_flags = static_cast<short>(enabled ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
  if (::ioctl(fd_.get(), TUNSETQUEUE, &ifr) != 0) {
    return host_error("{} a queue of tap '{}'", enabled ? "attaching" : "detaching", name_);
  }
  return {};
}

Result<size_t> Tap::read_frame(std::span<const iovec> iov) {
  const ssize_t n = ::readv(fd_.get(), iov.data(), static_cast<int>(iov.size()));
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return host_error("reading a frame from tap '{}'", name_);
  }
  return static_cast<size_t>(n);
}

Result<size_t> Tap::write_frame(std::span<const iovec> iov) {
  const ssize_t n = ::writev(fd_.get(), iov.data(), static_cast<int>(iov.size()));
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return host_error("writing a frame to tap '{}'", name_);
  }
  return static_cast<size_t>(n);
}

Status Tap::set_offloads(const Offloads& o) {
  unsigned long flags = 0;
  if (o.csum) {
    flags |= TUN_F_CSUM;
    // The kernel accepts TSO/UFO only together with checksum offload.
    if (o.tso4) flags |= TUN_F_TSO4;
    if (o.tso6) flags |= TUN_F_TSO6;
    if (o.tso_ecn && (o.tso4 || o.tso6)) flags |= TUN_F_TSO_ECN;
    if (o.ufo) flags |= TUN_F_UFO;
  }
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, flags) != 0) {
    return host_error("setting offloads {:#x} on tap '{}'", flags, name_);
  }
  return {};
}

Status set_link_up(std::string_view ifname) {
  auto sock = KUMO_TRY(control_socket());
  ifreq ifr{};
  KUMO_TRY(copy_name(ifr, ifname));
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) {
    return host_error("reading flags of interface '{}'", ifname);
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) {
    return host_error("bringing interface '{}' up", ifname);
  }
  return {};
}

Status wait_until_running(std::string_view ifname, std::chrono::milliseconds timeout) {
  auto sock = KUMO_TRY(control_socket());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    ifreq ifr{};
    KUMO_TRY(copy_name(ifr, ifname));
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) {
      return host_error("reading flags of interface '{}'", ifname);
    }
    if ((ifr.ifr_flags & IFF_RUNNING) != 0) {
      return {};
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return host_error("interface '{}' did not come up within {} ms", ifname, timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Status attach_to_bridge(std::string_view ifname, std::string_view bridge) {
  const std::string bridge_name(bridge);
  if (::if_nametoindex(bridge_name.c_str()) == 0) {
    return invalid_input("bridge '{}' does not exist (create it with `ip link add {} type bridge`)",
                         bridge, bridge);
  }
  const std::string port(ifname);
  const unsigned index = ::if_nametoindex(port.c_str());
  if (index == 0) {
    return host_error("interface '{}' to attach to bridge '{}' does not exist", ifname, bridge);
  }
  auto sock = KUMO_TRY(control_socket());
  ifreq ifr{};
  KUMO_TRY(copy_name(ifr, bridge));
  ifr.ifr_ifindex = static_cast<int>(index);
  if (::ioctl(sock.get(), SIOCBRADDIF, &ifr) != 0) {
    if (errno == EPERM) {
      return host_error("attaching '{}' to bridge '{}' needs CAP_NET_ADMIN", ifname, bridge);
    }
    if (errno == EOPNOTSUPP || errno == EINVAL) {
      return invalid_input("interface '{}' is not a bridge", bridge);
    }
    return host_error("attaching '{}' to bridge '{}'", ifname, bridge);
  }
  return {};
}

Status check_mac_unused(const MacAddress& mac) {
  auto sock = KUMO_TRY(control_socket());
  struct if_nameindex* list = ::if_nameindex();
  if (list == nullptr) {
    return host_error("listing network interfaces");
  }
  Status result;
  for (struct if_nameindex* i = list; i->if_index != 0; ++i) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, i->if_name, IFNAMSIZ - 1);
    if (::ioctl(sock.get(), SIOCGIFHWADDR, &ifr) != 0) {
      continue;
    }
    if (std::memcmp(ifr.ifr_hwaddr.sa_data, mac.bytes.data(), 6) == 0) {
      result = invalid_input("MAC address {} is already used by host interface '{}'",
                             mac.to_string(), i->if_name);
      break;
    }
  }
  ::if_freenameindex(list);
  return result;
}

}  // namespace kumo::net
