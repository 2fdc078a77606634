// libFuzzer target for the descriptor-chain walker: the input is a guest RAM image (the
// descriptor table at 0, data after it) plus the queue size and head the driver chose.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "virtio/descriptor_chain.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) {
    return 0;
  }
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x10000}});
    return new GuestMemory(std::move(*m));
  }();
  uint16_t queue_size = 0;
  uint16_t head = 0;
  std::memcpy(&queue_size, data, 2);
  std::memcpy(&head, data + 2, 2);
  queue_size = static_cast<uint16_t>((queue_size % 256) + 1);
  const bool indirect = (head & 0x8000) != 0;
  head = static_cast<uint16_t>(head & 0x7fff);
  data += 4;
  size -= 4;
  const size_t copy = size < 0x10000 ? size : 0x10000;
  (void)mem->fill(GuestAddress(0), 0, 0x10000);
  (void)mem->write(GuestAddress(0), std::span(data, copy));
  auto chain = kumo::virtio::walk_descriptor_chain(*mem, GuestAddress(0), queue_size, head,
                                                   indirect);
  if (chain) {
    uint64_t total = 0;
    for (const auto& b : chain->readable) total += b.len;
    if (total != chain->readable_bytes || total > 0xffff'ffffULL) __builtin_trap();
    if (chain->readable.size() + chain->writable.size() > 2U * queue_size) __builtin_trap();
  }
  return 0;
}
