// libFuzzer target for the virtio-net transmit parser: a chain of readable buffers over a
// guest RAM image plus the negotiated feature word.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/net/net_header.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x20000}});
    return new GuestMemory(std::move(*m));
  }();
  if (size < 9) return 0;
  uint64_t features = 0;
  std::memcpy(&features, data, 8);
  const size_t n = data[8] % 6;
  data += 9;
  size -= 9;
  if (size < n * 4) return 0;
  kumo::virtio::DescriptorChain chain;
  for (size_t i = 0; i < n; ++i) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, data + 4 * i, 2);
    std::memcpy(&len, data + 4 * i + 2, 2);
    if (len == 0) continue;
    const bool writable = (off & 1) && i + 1 == n;
    (writable ? chain.writable : chain.readable).push_back({GuestAddress(off), len});
    (writable ? chain.writable_bytes : chain.readable_bytes) += len;
  }
  data += n * 4;
  size -= n * 4;
  (void)mem->fill(GuestAddress(0), 0, 0x20000);
  (void)mem->write(GuestAddress(0), std::span(data, size < 0x20000 ? size : 0x20000));
  auto frame = kumo::devices::virtio::net::parse_tx_frame(*mem, chain, features);
  if (frame) {
    uint64_t total = 0;
    for (const auto& b : frame->payload) total += b.len;
    if (total != frame->payload_bytes) __builtin_trap();
    if (frame->header.flags & 1) {
      if (uint64_t{frame->header.csum_start} + frame->header.csum_offset + 2 > total)
        __builtin_trap();
    }
  }
  return 0;
}
