#pragma once
// FrameBackend: a host network endpoint that exchanges Ethernet frames, each preceded by
// Linux's vnet header (struct virtio_net_hdr_v1 as <linux/virtio_net.h> and the tun
// driver define it: 12 bytes with num_buffers). Tap implements it; tests use socket pairs.
// Back ends know nothing of virtqueues: they take iovecs.
//
// Thread-safety: one thread (the device worker) at a time.

#include <sys/uio.h>

#include <cstddef>
#include <span>

#include "base/result.h"

namespace kumo::net {

inline constexpr size_t kVnetHeaderBytes = 12;

// Which offloaded frames the host may hand us (tun TUNSETOFFLOAD): the consumer enables
// only what its peer negotiated.
struct Offloads {
  bool csum = false;  // partial checksums
  bool tso4 = false;
  bool tso6 = false;
  bool tso_ecn = false;
  bool ufo = false;
  friend bool operator==(const Offloads&, const Offloads&) = default;
};

class FrameBackend {
 public:
  virtual ~FrameBackend() = default;
  // Non-blocking fd, readable when a frame is waiting (for epoll).
  [[nodiscard]] virtual int fd() const = 0;
  // Reads one frame (header + data) into `iov`; 0 when none is waiting. A frame longer than
  // the iovecs is truncated silently (as tun does: the count is of bytes stored), so a
  // caller that must know puts a spare byte after its buffers.
  [[nodiscard]] virtual Result<size_t> read_frame(std::span<const iovec> iov) = 0;
  // Writes one frame (header + data); 0 when the back end is full (retry on EPOLLOUT).
  [[nodiscard]] virtual Result<size_t> write_frame(std::span<const iovec> iov) = 0;
  [[nodiscard]] virtual Status set_offloads(const Offloads& offloads) = 0;
  // For one queue of a multi-queue back end: whether the host may hand it frames (a
  // disabled queue's frames go to the enabled ones).
  [[nodiscard]] virtual Status set_enabled(bool enabled) = 0;
};

}  // namespace kumo::net
