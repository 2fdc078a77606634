#pragma once
// SocketBackend: a FrameBackend over one end of an AF_UNIX SOCK_SEQPACKET pair (one message
// per frame, vnet header included) for virtio-net tests; records offload settings. Like tun,
// it truncates a frame longer than the read's iovecs silently. Test-only.

#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <vector>

#include "base/unique_fd.h"
#include "net/frame_backend.h"

namespace kumo::devices::virtio::net::testing {

class SocketBackend final : public kumo::net::FrameBackend {
 public:
  // `peer` receives the other end.
  explicit SocketBackend(UniqueFd* peer) {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    fd_.reset(sv[0]);
    peer->reset(sv[1]);
  }
  int fd() const override { return fd_.get(); }
  Result<size_t> read_frame(std::span<const iovec> iov) override {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov.data());
    msg.msg_iovlen = iov.size();
    const ssize_t n = ::recvmsg(fd_.get(), &msg, 0);
    if (n < 0) {
      if (errno == EAGAIN) return size_t{0};
      return host_error("recvmsg");
    }
    return static_cast<size_t>(n);
  }
  Result<size_t> write_frame(std::span<const iovec> iov) override {
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov.data());
    msg.msg_iovlen = iov.size();
    const ssize_t n = ::sendmsg(fd_.get(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN) return size_t{0};
      return host_error("sendmsg");
    }
    return static_cast<size_t>(n);
  }
  Status set_offloads(const kumo::net::Offloads& o) override {
    std::lock_guard lock(mutex);
    offloads.push_back(o);
    return {};
  }
  Status set_enabled(bool on) override {
    enabled.store(on);
    return {};
  }
  std::mutex mutex;
  std::vector<kumo::net::Offloads> offloads;
  std::atomic<bool> enabled{true};

 private:
  UniqueFd fd_;
};

}  // namespace kumo::devices::virtio::net::testing
