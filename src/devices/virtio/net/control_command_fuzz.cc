// libFuzzer target for the virtio-net control request parser: a chain of readable buffers
// and writable buffers over a guest RAM image, then the decision for a 4-pair device.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/net/control_command.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x20000}});
    return new GuestMemory(std::move(*m));
  }();
  if (size < 2) return 0;
  const bool mq = data[0] & 1;
  const size_t n = data[1] % 6;
  data += 2;
  size -= 2;
  if (size < n * 4) return 0;
  kumo::virtio::DescriptorChain chain;
  for (size_t i = 0; i < n; ++i) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, data + 4 * i, 2);
    std::memcpy(&len, data + 4 * i + 2, 2);
    if (len == 0) continue;
    // Readable buffers first, as the chain walker guarantees.
    const bool writable = (off & 1) != 0 || !chain.writable.empty();
    (writable ? chain.writable : chain.readable).push_back({GuestAddress(off), len});
    (writable ? chain.writable_bytes : chain.readable_bytes) += len;
  }
  data += n * 4;
  size -= n * 4;
  (void)mem->fill(GuestAddress(0), 0, 0x20000);
  (void)mem->write(GuestAddress(0), std::span(data, size < 0x20000 ? size : 0x20000));
  auto cmd = kumo::devices::virtio::net::parse_control_command(*mem, chain);
  if (cmd) {
    if (chain.writable_bytes < 1 || cmd->data.size() + 2 != chain.readable_bytes) {
      __builtin_trap();
    }
    const auto pairs = kumo::devices::virtio::net::requested_pairs(*cmd, mq, 4);
    if (pairs && (*pairs < 1 || *pairs > 4 || !mq)) __builtin_trap();
  }
  return 0;
}
