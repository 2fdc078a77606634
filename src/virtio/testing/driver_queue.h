#pragma once
// DriverQueue: a test utility that plays the virtio driver for one split virtqueue. It lays
// out the rings in GuestMemory, writes descriptors and the available ring, and reads the
// used ring — exactly what a guest driver does — so device code is tested from the outside.
// It also hands out data buffers from a bump area, and can write arbitrary (malformed)
// descriptors for negative tests. Test-only; not thread-safe.

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

namespace kumo::virtio::testing {

struct Segment {
  uint64_t gpa = 0;
  uint32_t len = 0;
  bool writable = false;
};

class DriverQueue {
 public:
  // Rings at `ring_base` (needs size*16 + size*2+6 + size*8+6 plus alignment slack); data
  // buffers are carved from [data_base, data_base + data_len).
  DriverQueue(const memory::GuestMemory& mem, uint64_t ring_base, uint16_t size,
              uint64_t data_base, uint64_t data_len)
      : mem_(mem), size_(size), data_next_(data_base), data_end_(data_base + data_len) {
    config_.size = size;
    config_.ready = true;
    config_.desc_table = memory::GuestAddress(ring_base);
    const uint64_t avail = ring_base + 16ULL * size;
    config_.avail_ring = memory::GuestAddress(avail);
    const uint64_t used = (avail + 6 + 2ULL * size + 3) & ~uint64_t{3};
    config_.used_ring = memory::GuestAddress(used);
    (void)mem_.fill(memory::GuestAddress(ring_base), 0, used + 6 + 8ULL * size - ring_base);
  }

  [[nodiscard]] const QueueConfig& config() const { return config_; }

  // A fresh data buffer of `len` bytes (16-byte aligned), optionally filled.
  uint64_t alloc(uint64_t len, std::span<const uint8_t> contents = {}) {
    const uint64_t at = (data_next_ + 15) & ~uint64_t{15};
    data_next_ = at + len;
    if (data_next_ > data_end_) {
      std::abort();  // test bug: data area too small
    }
    (void)mem_.fill(memory::GuestAddress(at), 0, len);
    if (!contents.empty()) {
      (void)mem_.write(memory::GuestAddress(at), contents);
    }
    return at;
  }
  uint64_t alloc_string(const std::string& s) {
    return alloc(s.size(), std::span(reinterpret_cast<const uint8_t*>(s.data()), s.size()));
  }

  // Writes one raw descriptor into the table (no checks: for malformed-chain tests).
  void write_descriptor(uint16_t index, const Descriptor& d) {
    (void)mem_.write_obj(config_.desc_table.unchecked_add(16ULL * index), d);
  }
  // Writes a descriptor table anywhere (for indirect tables).
  void write_table(uint64_t gpa, std::span<const Descriptor> table) {
    for (size_t i = 0; i < table.size(); ++i) {
      (void)mem_.write_obj(memory::GuestAddress(gpa + 16 * i), table[i]);
    }
  }

  // Chains `segments` through free descriptors and makes the chain available.
  uint16_t add_chain(const std::vector<Segment>& segments) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < segments.size(); ++i) {
      const uint16_t index = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      uint16_t flags = segments[i].writable ? kDescFlagWrite : 0;
      if (i + 1 < segments.size()) {
        flags |= kDescFlagNext;
      }
      write_descriptor(index, Descriptor{segments[i].gpa, segments[i].len, flags, next_desc_});
    }
    publish(head);
    return head;
  }
  // Puts one indirect descriptor pointing at a table built from `segments`.
  uint16_t add_indirect_chain(const std::vector<Segment>& segments) {
    std::vector<Descriptor> table;
    for (size_t i = 0; i < segments.size(); ++i) {
      uint16_t flags = segments[i].writable ? kDescFlagWrite : 0;
      if (i + 1 < segments.size()) {
        flags |= kDescFlagNext;
      }
      table.push_back(Descriptor{segments[i].gpa, segments[i].len, flags,
                                 static_cast<uint16_t>(i + 1)});
    }
    const uint64_t gpa = alloc(16 * table.size());
    write_table(gpa, table);
    const uint16_t head = next_desc_;
    next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
    write_descriptor(head, Descriptor{gpa, static_cast<uint32_t>(16 * table.size()),
                                      kDescFlagIndirect, 0});
    publish(head);
    return head;
  }

  // Makes `head` available: ring entry, then (after a fence) the index.
  void publish(uint16_t head) {
    (void)mem_.write_obj(config_.avail_ring.unchecked_add(4 + 2ULL * (avail_idx_ % size_)), head);
    avail_idx_ = static_cast<uint16_t>(avail_idx_ + 1);
    set_avail_idx(avail_idx_);
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    (void)mem_.write_obj(config_.avail_ring.unchecked_add(2), idx);
  }
  void set_avail_flags(uint16_t flags) { (void)mem_.write_obj(config_.avail_ring, flags); }
  void set_used_event(uint16_t v) {
    (void)mem_.write_obj(config_.avail_ring.unchecked_add(4 + 2ULL * size_), v);
  }

  [[nodiscard]] uint16_t used_idx() const {
    return *mem_.read_obj<uint16_t>(config_.used_ring.unchecked_add(2));
  }
  [[nodiscard]] uint16_t used_flags() const { return *mem_.read_obj<uint16_t>(config_.used_ring); }
  [[nodiscard]] uint16_t avail_event() const {
    return *mem_.read_obj<uint16_t>(config_.used_ring.unchecked_add(4 + 8ULL * size_));
  }
  // The next used element the driver has not consumed yet.
  std::optional<UsedElement> pop_used() {
    if (used_idx() == last_used_) {
      return std::nullopt;
    }
    const auto e = *mem_.read_obj<UsedElement>(
        config_.used_ring.unchecked_add(4 + 8ULL * (last_used_ % size_)));
    last_used_ = static_cast<uint16_t>(last_used_ + 1);
    return e;
  }

  std::vector<uint8_t> read(uint64_t gpa, size_t len) const {
    std::vector<uint8_t> out(len);
    (void)mem_.read(memory::GuestAddress(gpa), out);
    return out;
  }
  void write(uint64_t gpa, std::span<const uint8_t> data) const {
    (void)mem_.write(memory::GuestAddress(gpa), data);
  }

 private:
  const memory::GuestMemory& mem_;
  uint16_t size_;
  QueueConfig config_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
  uint16_t last_used_ = 0;
  uint64_t data_next_;
  uint64_t data_end_;
};

}  // namespace kumo::virtio::testing
