#include "virtio/queue.h"

#include <atomic>
#include <bit>

#include "virtio/virtio_spec.h"

namespace kumo::virtio {
namespace {

using memory::GuestAddress;

// Ring layouts (§2.7.6, §2.7.8): flags(2) idx(2) ring[size] then the event field.
constexpr uint64_t kRingHeaderBytes = 4;
uint64_t avail_ring_bytes(uint16_t size) { return kRingHeaderBytes + 2ULL * size + 2; }
uint64_t used_ring_bytes(uint16_t size) {
  return kRingHeaderBytes + sizeof(UsedElement) * uint64_t{size} + 2;
}

}  // namespace

SplitQueue::SplitQueue(const memory::GuestMemory& mem, const QueueConfig& config,
                       bool event_idx, bool indirect)
    : mem_(&mem), config_(config), event_idx_(event_idx), indirect_(indirect) {}

Status SplitQueue::validate(const memory::GuestMemory& mem, const QueueConfig& config,
                            bool /*event_idx*/) {
  if (config.size == 0 || config.size > kMaxQueueSize || !std::has_single_bit(config.size)) {
    return guest_error("queue size {} is not a power of two in 1..32768", config.size);
  }
  if (config.desc_table.raw() % 16 != 0 || config.avail_ring.raw() % 2 != 0 ||
      config.used_ring.raw() % 4 != 0) {
    return guest_error("queue rings are misaligned (desc {:#x}, avail {:#x}, used {:#x})",
                       config.desc_table.raw(), config.avail_ring.raw(), config.used_ring.raw());
  }
  if (!mem.contains(config.desc_table, sizeof(Descriptor) * uint64_t{config.size}) ||
      !mem.contains(config.avail_ring, avail_ring_bytes(config.size)) ||
      !mem.contains(config.used_ring, used_ring_bytes(config.size))) {
    return guest_error("queue rings lie outside guest RAM");
  }
  return {};
}

Result<uint16_t> SplitQueue::avail_idx() const {
  const uint16_t idx = KUMO_TRY(mem_->load_atomic<uint16_t>(config_.avail_ring.unchecked_add(2)));
  // §2.7.13.3.1: read the index before the ring entries it covers.
  std::atomic_thread_fence(std::memory_order_acquire);
  return idx;
}

Result<std::optional<DescriptorChain>> SplitQueue::pop() {
  const uint16_t avail = KUMO_TRY(avail_idx());
  const auto pending = static_cast<uint16_t>(avail - next_avail_);
  if (pending == 0) {
    return std::optional<DescriptorChain>();
  }
  if (pending > config_.size) {
    return guest_error("available index moved by {} entries, queue size {}", pending,
                       config_.size);
  }
  const uint64_t slot = next_avail_ % config_.size;
  const uint16_t head =
      KUMO_TRY(mem_->load_atomic<uint16_t>(config_.avail_ring.unchecked_add(4 + 2 * slot)));
  auto chain = KUMO_TRY(
      walk_descriptor_chain(*mem_, config_.desc_table, config_.size, head, indirect_));
  next_avail_ = static_cast<uint16_t>(next_avail_ + 1);
  return std::optional<DescriptorChain>(std::move(chain));
}

Status SplitQueue::add_used(std::span<const UsedElement> elements) {
  for (const UsedElement& element : elements) {
    const uint64_t slot = next_used_ % config_.size;
    KUMO_TRY(mem_->write_obj(config_.used_ring.unchecked_add(4 + sizeof(UsedElement) * slot),
                             element));
    next_used_ = static_cast<uint16_t>(next_used_ + 1);
  }
  // §2.7.8.2: the elements must be visible before the index that publishes them.
  std::atomic_thread_fence(std::memory_order_release);
  return mem_->store_atomic(config_.used_ring.unchecked_add(2), next_used_);
}

Result<bool> SplitQueue::needs_interrupt() {
  // The used index store must be ordered before reading the driver's suppression state.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t old = signalled_used_;
  signalled_used_ = next_used_;
  if (event_idx_) {
    const uint16_t used_event = KUMO_TRY(
        mem_->load_atomic<uint16_t>(config_.avail_ring.unchecked_add(4 + 2ULL * config_.size)));
    // vring_need_event (§2.7.10): notify when used_event lies in (old, new].
    return static_cast<uint16_t>(next_used_ - used_event - 1) <
           static_cast<uint16_t>(next_used_ - old);
  }
  const uint16_t flags = KUMO_TRY(mem_->load_atomic<uint16_t>(config_.avail_ring));
  return (flags & kAvailFlagNoInterrupt) == 0;
}

Result<bool> SplitQueue::set_notifications(bool enable) {
  if (event_idx_) {
    if (enable) {
      KUMO_TRY(mem_->store_atomic(
          config_.used_ring.unchecked_add(4 + sizeof(UsedElement) * uint64_t{config_.size}),
          next_avail_));
    }
  } else {
    const uint16_t flags = enable ? 0 : kUsedFlagNoNotify;
    KUMO_TRY(mem_->store_atomic(config_.used_ring, flags));
  }
  // Publish the request before re-reading avail.idx (§2.7.10's race with the driver).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  const uint16_t avail = KUMO_TRY(avail_idx());
  return avail != next_avail_;
}

}  // namespace kumo::virtio
