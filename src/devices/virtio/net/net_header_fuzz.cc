// libFuzzer target for the virtio-net transmit parser: a chain over a guest RAM image
// (chain_from_fuzz_input; a writable suffix must be refused) plus the negotiated features.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/net/net_header.h"
#include "virtio/testing/fuzz_chain.h"

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
  auto chain = kumo::virtio::testing::chain_from_fuzz_input(*mem, 0x20000,
                                                            std::span(data + 9, size - 9),
                                                            data[8] % 6);
  if (!chain) return 0;
  auto frame = kumo::devices::virtio::net::parse_tx_frame(*mem, *chain, features);
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
