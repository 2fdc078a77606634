#pragma once
// Tap: a Linux tap interface opened through /dev/net/tun with IFF_TAP | IFF_NO_PI |
// IFF_VNET_HDR (vnet header size 12), non-blocking; a FrameBackend.
//
// Creating a tap needs CAP_NET_ADMIN (or a persistent tap owned by the user). Errors carry the
// errno and a sentence saying what to do. kInvalidInput (the user fixes it, as with an
// unreadable disk image): no permission, tap in use by another process, name taken by an
// interface that is no tap, bridge missing, MAC already used on the host. kHost: /dev/net/tun
// missing, other host failures.
//
// Thread-safety: none; one owner. Move-only (the fd moves).

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "net/frame_backend.h"
#include "net/mac_address.h"

namespace kumo::net {

class Tap final : public FrameBackend {
 public:
  // `name` empty: the kernel picks "kumo%d". The interface is brought up, and create()
  // returns once the host can transmit on it.
  [[nodiscard]] static Result<Tap> create(std::string_view name);
  // The same with `queues` (1..kMaxQueues) queues, one Tap (fd) each, all attached; more
  // than one needs a multi-queue tap (IFF_MULTI_QUEUE; created so when missing).
  static constexpr unsigned kMaxQueues = 16;
  [[nodiscard]] static Result<std::vector<Tap>> create_multiqueue(std::string_view name,
                                                                  unsigned queues);

  Tap(Tap&&) noexcept = default;
  Tap& operator=(Tap&&) noexcept = default;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] int fd() const override { return fd_.get(); }
  [[nodiscard]] Result<size_t> read_frame(std::span<const iovec> iov) override;
  [[nodiscard]] Result<size_t> write_frame(std::span<const iovec> iov) override;
  [[nodiscard]] Status set_offloads(const Offloads& offloads) override;
  // Attaches or detaches this queue (TUNSETQUEUE); a detached queue gets no frames.
  [[nodiscard]] Status set_enabled(bool enabled) override;

 private:
  Tap(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}
  UniqueFd fd_;
  std::string name_;
};

// Enslaves interface `ifname` to bridge `bridge` (SIOCBRADDIF). Errors name the bridge when
// it does not exist or is not a bridge.
[[nodiscard]] Status attach_to_bridge(std::string_view ifname, std::string_view bridge);
// Fails when an interface in this network namespace already has `mac` (a guest with the
// same MAC as a host interface breaks bridge forwarding).
[[nodiscard]] Status check_mac_unused(const MacAddress& mac);
// Waits until the kernel reports `ifname` running (IFF_RUNNING: carrier on and operstate
// processed, so the host transmits on it); kHost error after `timeout`.
[[nodiscard]] Status wait_until_running(std::string_view ifname,
                                        std::chrono::milliseconds timeout);
// Sets IFF_UP on an interface.
[[nodiscard]] Status set_link_up(std::string_view ifname);

}  // namespace kumo::net
