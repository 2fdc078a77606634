#include "virtio/descriptor_chain.h"

#include <limits>

#include "virtio/virtio_spec.h"

namespace kumo::virtio {
namespace {

using memory::GuestAddress;

Result<Descriptor> read_descriptor(const memory::GuestMemory& mem, GuestAddress table,
                                   uint32_t index) {
  const auto at = table.checked_add(uint64_t{index} * sizeof(Descriptor));
  if (!at) {
    return guest_error("descriptor {} address wraps", index);
  }
  return mem.read_obj<Descriptor>(*at);
}

// Appends one buffer, enforcing ordering and totals.
Status add_buffer(const memory::GuestMemory& mem, const Descriptor& d, DescriptorChain& chain) {
  const bool writable = (d.flags & kDescFlagWrite) != 0;
  if (!writable && !chain.writable.empty()) {
    return guest_error("device-readable descriptor after a device-writable one");
  }
  if (d.len == 0) {
    return {};
  }
  if (!mem.contains(GuestAddress(d.addr), d.len)) {
    return guest_error("descriptor buffer {:#x}+{:#x} is outside guest RAM", d.addr, d.len);
  }
  uint64_t& total = writable ? chain.writable_bytes : chain.readable_bytes;
  total += d.len;  // at most 2 * 32768 * 2^32: cannot overflow 64 bits
  if (total > std::numeric_limits<uint32_t>::max()) {
    return guest_error("descriptor chain is longer than 4 GiB");
  }
  (writable ? chain.writable : chain.readable).push_back(GuestBuffer{GuestAddress(d.addr), d.len});
  return {};
}

Status walk_indirect(const memory::GuestMemory& mem, const Descriptor& table_desc,
                     uint16_t queue_size, DescriptorChain& chain) {
  if (table_desc.len == 0 || table_desc.len % sizeof(Descriptor) != 0) {
    return guest_error("indirect table length {} is not a non-zero multiple of 16",
                       table_desc.len);
  }
  const uint32_t entries = table_desc.len / static_cast<uint32_t>(sizeof(Descriptor));
  if (entries > queue_size) {
    return guest_error("indirect table of {} entries exceeds queue size {}", entries,
                       queue_size);
  }
  const GuestAddress table(table_desc.addr);
  if (!mem.contains(table, table_desc.len)) {
    return guest_error("indirect table {:#x}+{:#x} is outside guest RAM", table_desc.addr,
                       table_desc.len);
  }
  uint32_t index = 0;
  for (uint32_t hops = 0;; ++hops) {
    if (hops >= entries) {
      return guest_error("indirect descriptor chain loops (more than {} hops)", entries);
    }
    const Descriptor d = KUMO_TRY(read_descriptor(mem, table, index));
    if ((d.flags & kDescFlagIndirect) != 0) {
      return guest_error("nested indirect descriptor");
    }
    KUMO_TRY(add_buffer(mem, d, chain));
    if ((d.flags & kDescFlagNext) == 0) {
      return {};
    }
    if (d.next >= entries) {
      return guest_error("indirect descriptor next {} out of range ({} entries)", d.next,
                         entries);
    }
    index = d.next;
  }
}

}  // namespace

Result<DescriptorChain> walk_descriptor_chain(const memory::GuestMemory& mem,
                                              GuestAddress desc_table, uint16_t queue_size,
                                              uint16_t head, bool indirect_allowed) {
  if (head >= queue_size) {
    return guest_error("descriptor head {} out of range (queue size {})", head, queue_size);
  }
  DescriptorChain chain;
  chain.head = head;
  uint16_t index = head;
  for (uint32_t hops = 0;; ++hops) {
    if (hops >= queue_size) {
      return guest_error("descriptor chain loops (more than {} hops)", queue_size);
    }
    const Descriptor d = KUMO_TRY(read_descriptor(mem, desc_table, index));
    if ((d.flags & kDescFlagIndirect) != 0) {
      if (!indirect_allowed) {
        return guest_error("indirect descriptor without VIRTIO_F_INDIRECT_DESC");
      }
      if ((d.flags & kDescFlagNext) != 0) {
        return guest_error("indirect descriptor also has NEXT set");
      }
      // §2.7.5.3.1: an indirect descriptor is alone in its chain or last in it.
      KUMO_TRY(walk_indirect(mem, d, queue_size, chain));
      return chain;
    }
    KUMO_TRY(add_buffer(mem, d, chain));
    if ((d.flags & kDescFlagNext) == 0) {
      return chain;
    }
    if (d.next >= queue_size) {
      return guest_error("descriptor next {} out of range (queue size {})", d.next, queue_size);
    }
    index = d.next;
  }
}

}  // namespace kumo::virtio
