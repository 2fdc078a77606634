// libFuzzer target for the virtio-net control request parser: a chain of readable and then
// writable buffers over a guest RAM image (chain_from_fuzz_input), then the decision for a
// 4-pair device.
#include <cstddef>
#include <cstdint>

#include "devices/virtio/net/control_command.h"
#include "virtio/testing/fuzz_chain.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x20000}});
    return new GuestMemory(std::move(*m));
  }();
  if (size < 2) return 0;
  const bool mq = data[0] & 1;
  auto chain = kumo::virtio::testing::chain_from_fuzz_input(*mem, 0x20000,
                                                            std::span(data + 2, size - 2),
                                                            data[1] % 6);
  if (!chain) return 0;
  auto cmd = kumo::devices::virtio::net::parse_control_command(*mem, *chain);
  if (cmd) {
    if (chain->writable_bytes < 1 || cmd->data.size() + 2 != chain->readable_bytes) {
      __builtin_trap();
    }
    const auto pairs = kumo::devices::virtio::net::requested_pairs(*cmd, mq, 4);
    if (pairs && (*pairs < 1 || *pairs > 4 || !mq)) __builtin_trap();
  }
  return 0;
}
