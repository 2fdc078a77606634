// libFuzzer target for virtio-console's transmit parser over arbitrary readable chains.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/console/console_device.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x20000}});
    return new GuestMemory(std::move(*m));
  }();
  kumo::virtio::DescriptorChain chain;
  size_t i = 0;
  for (; i + 4 <= size && i < 32; i += 4) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, data + i, 2);
    std::memcpy(&len, data + i + 2, 2);
    if (len == 0) continue;
    chain.readable.push_back({GuestAddress(off), len});
    chain.readable_bytes += len;
  }
  (void)mem->write(GuestAddress(0), std::span(data + i, size - i < 0x20000 ? size - i : 0x20000));
  auto bytes = kumo::devices::virtio::console::transmit_bytes(*mem, chain);
  if (bytes && bytes->size() > kumo::devices::virtio::console::kMaxTransmitBytes) __builtin_trap();
  return 0;
}
