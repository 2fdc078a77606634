#pragma once
// Fuzz input -> a descriptor chain over a guest RAM image, for the request-parser fuzzers
// that take a chain as the walker hands it over. Test-only.
//
// Consumes `entries` records of (u16 offset, u16 length) from the front of `in`: zero-length
// records are skipped, and from the first record with an odd offset on, buffers are
// device-writable (the walker's guarantee: readable buffers come first). The rest of `in`
// fills `mem` from address 0, zeros after it. nullopt when `in` is shorter than the records.

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace kumo::virtio::testing {

inline std::optional<DescriptorChain> chain_from_fuzz_input(const memory::GuestMemory& mem,
                                                            uint64_t mem_bytes,
                                                            std::span<const uint8_t> in,
                                                            size_t entries) {
  if (in.size() < entries * 4) return std::nullopt;
  DescriptorChain chain;
  for (size_t i = 0; i < entries; ++i) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, in.data() + 4 * i, 2);
    std::memcpy(&len, in.data() + 4 * i + 2, 2);
    if (len == 0) continue;
    const bool writable = (off & 1) != 0 || !chain.writable.empty();
    (writable ? chain.writable : chain.readable).push_back({memory::GuestAddress(off), len});
    (writable ? chain.writable_bytes : chain.readable_bytes) += len;
  }
  in = in.subspan(entries * 4);
  (void)mem.fill(memory::GuestAddress(0), 0, mem_bytes);
  (void)mem.write(memory::GuestAddress(0), in.first(in.size() < mem_bytes ? in.size() : mem_bytes));
  return chain;
}

}  // namespace kumo::virtio::testing
