#pragma once
// The descriptor-chain walker for split virtqueues (virtio 1.2 §2.7.5, §2.7.5.3 Indirect
// Descriptors): turns the chain starting at one head index into a validated list of guest
// buffers, or a kGuest error naming what was wrong.
//
// Everything it reads — the descriptor table, every addr/len/flags/next — is guest-controlled
// and may change while it runs, so each descriptor is copied once and validated from the copy.
// Guarantees on success:
//  - at most `queue_size` descriptors are followed in the table, and at most `queue_size`
//    in an indirect table (§2.7.5.3.1: a chain is never longer than the queue size), so a
//    cycle is reported after queue_size hops, never looped on;
//  - every `next` is < queue_size (or < the indirect table's entry count);
//  - at most one indirect table, reached from the head's chain, never nested, never combined
//    with NEXT on the same descriptor (§2.7.5.3.1), its length a non-zero multiple of 16
//    and the table inside guest RAM;
//  - every buffer [addr, addr+len) lies inside guest RAM (in one region);
//  - device-readable buffers all come before device-writable ones (§2.7.4.2);
//  - the readable and writable totals each fit in 32 bits (the used ring's len field).
// Zero-length buffers are accepted and dropped from the result.
//
// Thread-safety: pure function of its inputs; safe from any thread.

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::virtio {

struct GuestBuffer {
  memory::GuestAddress addr;
  uint32_t len = 0;
};

struct DescriptorChain {
  uint16_t head = 0;  // the index to return in the used ring
  std::vector<GuestBuffer> readable;  // device-readable, in chain order
  std::vector<GuestBuffer> writable;  // device-writable, in chain order
  uint64_t readable_bytes = 0;
  uint64_t writable_bytes = 0;
};

// `indirect_allowed` is whether VIRTIO_F_INDIRECT_DESC was negotiated.
[[nodiscard]] Result<DescriptorChain> walk_descriptor_chain(const memory::GuestMemory& mem,
                                                            memory::GuestAddress desc_table,
                                                            uint16_t queue_size, uint16_t head,
                                                            bool indirect_allowed);

}  // namespace kumo::virtio
