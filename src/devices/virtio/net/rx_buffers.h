#pragma once
// RxBuffers: the receive chains virtio-net has popped but not yet filled, and how one frame
// read from the back end is spread over them (virtio 1.2 §5.1.6.3, §5.1.6.4).
//
// Without VIRTIO_NET_F_MRG_RXBUF a frame goes into one chain. With it, a frame may span
// several chains in ring order; the device reports how many in the first chain's header
// (num_buffers) and returns them together. The worker reads a frame straight into the
// chains' guest buffers (read_iovecs()); one host byte after them catches a frame longer
// than the chains (the tap truncates silently): such a frame is dropped and the chains stay
// for the next one.
//
// Chains are kept in the order they were popped, and a frame always fills the oldest first,
// so the pending chains are the last ones popped: SplitQueue::undo_pop(chains()) gives
// them back to the ring.
//
// Thread-safety: the device worker thread only.

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

#include "virtio/descriptor_chain.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::net {

class RxBuffers final {
 public:
  // The most bytes (vnet header included) one read may need: a pending total this large is
  // enough for any frame the back end may hand over.
  explicit RxBuffers(bool mergeable, uint64_t max_frame_bytes)
      : mergeable_(mergeable), max_frame_bytes_(max_frame_bytes) {}

  // Takes a popped chain whose writable buffers are `iov` (host addresses, same order).
  void add(kumo::virtio::DescriptorChain chain, std::vector<iovec> iov);
  // Whether the pending chains can take the next frame: one chain, or with mergeable
  // buffers enough bytes for the largest frame (or as many iovecs as one read may have).
  [[nodiscard]] bool ready() const;
  [[nodiscard]] size_t chains() const { return chains_.size(); }

  // Where the next frame goes: the pending chains' buffers (the first chain's only, without
  // mergeable buffers), then the overflow byte. Valid until the next call on this object.
  [[nodiscard]] std::span<const iovec> read_iovecs();
  // A frame of `bytes` (header included) landed through read_iovecs(). Returns the used
  // elements for the chains it filled (oldest first; empty when it did not fit: `bytes`
  // beyond them), removes those chains, and sets `first` to the first one's writable buffers
  // (where num_buffers goes). Needs chains() > 0.
  [[nodiscard]] std::span<const kumo::virtio::UsedElement> take(
      size_t bytes, std::vector<kumo::virtio::GuestBuffer>& first);
  // Forgets every pending chain (after the caller gave them back with undo_pop).
  void clear() {
    chains_.clear();
    bytes_ = 0;
    iovecs_ = 0;
    offered_bytes_ = 0;
  }
  // Removes the oldest chain unfilled (a read error): its used element has length 0.
  [[nodiscard]] kumo::virtio::UsedElement drop_oldest();

 private:
  void remove_oldest();

  struct Pending {
    kumo::virtio::DescriptorChain chain;
    std::vector<iovec> iov;
  };
  static constexpr size_t kMaxReadIovecs = 1024;  // IOV_MAX

  bool mergeable_;
  uint64_t max_frame_bytes_;
  std::deque<Pending> chains_;
  uint64_t bytes_ = 0;    // writable bytes of all pending chains
  size_t iovecs_ = 0;     // iovecs of all pending chains
  std::vector<iovec> read_iov_;
  uint64_t offered_bytes_ = 0;  // writable bytes behind read_iov_
  std::vector<kumo::virtio::UsedElement> used_;
  uint8_t overflow_ = 0;
};

}  // namespace kumo::devices::virtio::net
