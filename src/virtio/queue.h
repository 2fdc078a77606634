#pragma once
// SplitQueue: the device side of one split virtqueue (virtio 1.2 §2.7): pops available
// descriptor chains, publishes used elements, and decides when the driver wants a used
// buffer notification (§2.7.7, §2.7.10 with VIRTIO_F_EVENT_IDX) and whether the device
// wants available buffer notifications (§2.7.10 avail_event / used.flags NO_NOTIFY).
//
// The ring addresses and size come from the driver (guest-controlled). validate() checks
// them once at activation: size a power of two in 1..32768, alignment (§2.7: descriptor
// table 16, available ring 2, used ring 4) and every ring inside guest RAM. Ring contents
// are re-read and re-checked on every access; an inconsistent ring (avail.idx jumping by
// more than the queue size, a bad chain) is a kGuest error: the caller sets NEEDS_RESET
// and stops using the queue.
//
// Thread-safety: one SplitQueue is used by one device worker thread at a time. The guest
// runs concurrently; the memory-ordering fences the spec requires (§2.7.13.3.1, §2.7.7.2)
// are issued here.

#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"
#include "virtio/virtio_spec.h"

namespace kumo::virtio {

// What the driver programmed through the transport for one queue (§4.1.4.3).
struct QueueConfig {
  uint16_t size = 0;
  bool ready = false;
  memory::GuestAddress desc_table;
  memory::GuestAddress avail_ring;
  memory::GuestAddress used_ring;
};

class SplitQueue final {
 public:
  // `mem` must outlive the queue. Negotiated features select indirect/EVENT_IDX handling.
  SplitQueue(const memory::GuestMemory& mem, const QueueConfig& config, bool event_idx,
             bool indirect);

  // Checks the driver-chosen layout (see above).
  [[nodiscard]] static Status validate(const memory::GuestMemory& mem, const QueueConfig& config,
                                       bool event_idx);

  // The next available chain, or nullopt when the driver has not made more available.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop();
  // Puts the last `count` popped chains back (the device could not use them yet: rate
  // limited, or pending when the device stops). Only for chains not returned by add_used().
  void undo_pop(uint16_t count = 1) { next_avail_ = static_cast<uint16_t>(next_avail_ - count); }
  // Returns a chain to the driver with `len_bytes` written into its writable buffers.
  [[nodiscard]] Status add_used(uint16_t head, uint32_t len_bytes) {
    const UsedElement element{head, len_bytes};
    return add_used(std::span(&element, 1));
  }
  // Returns several chains at once: the driver sees all of them or none (one index store),
  // as virtio-net's merged receive buffers require.
  [[nodiscard]] Status add_used(std::span<const UsedElement> elements);
  // After one or more add_used(): whether the driver asked to be interrupted (§2.7.7.2,
  // EVENT_IDX: vring_need_event(used_event, new, old)). Resets the batch.
  [[nodiscard]] Result<bool> needs_interrupt();
  // Asks the driver to notify (enable = true) or not to (§2.7.10). With EVENT_IDX, enabling
  // publishes avail_event = next index we will pop. Returns whether chains are available
  // right now, so the caller re-checks before sleeping (no lost wake-ups).
  [[nodiscard]] Result<bool> set_notifications(bool enable);
  // Whether the driver made chains available that pop() has not returned yet (polling).
  [[nodiscard]] Result<bool> has_available() const {
    return KUMO_TRY(avail_idx()) != next_avail_;
  }

  [[nodiscard]] uint16_t size() const { return config_.size; }
  [[nodiscard]] uint16_t next_avail() const { return next_avail_; }
  [[nodiscard]] uint16_t next_used() const { return next_used_; }

 private:
  [[nodiscard]] Result<uint16_t> avail_idx() const;

  const memory::GuestMemory* mem_;
  QueueConfig config_;
  bool event_idx_;
  bool indirect_;
  uint16_t next_avail_ = 0;
  uint16_t next_used_ = 0;
  uint16_t signalled_used_ = 0;  // used idx at the last needs_interrupt() decision
};

}  // namespace kumo::virtio
