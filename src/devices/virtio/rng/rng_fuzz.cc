// libFuzzer target for virtio-rng's request handling (fill_entropy over arbitrary chains).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/rng/rng_device.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x20000}});
    return new GuestMemory(std::move(*m));
  }();
  kumo::virtio::DescriptorChain chain;
  for (size_t i = 0; i + 4 <= size && i < 32; i += 4) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, data + i, 2);
    std::memcpy(&len, data + i + 2, 2);
    if (len == 0) continue;
    chain.writable.push_back({GuestAddress(off), len});
    chain.writable_bytes += len;
  }
  auto n = kumo::devices::virtio::rng::fill_entropy(*mem, chain);
  if (n && *n > kumo::devices::virtio::rng::kMaxRequestBytes) __builtin_trap();
  return 0;
}
