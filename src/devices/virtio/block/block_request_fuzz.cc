// libFuzzer target for the virtio-blk request parser: the input describes a descriptor chain
// (buffer offsets, lengths, directions) over a guest RAM image that the rest of the input fills.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "devices/virtio/block/block_request.h"

using kumo::memory::GuestAddress;
using kumo::memory::GuestMemory;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* mem = [] {
    auto m = GuestMemory::create({{GuestAddress(0), 0x10000}});
    return new GuestMemory(std::move(*m));
  }();
  if (size < 2) return 0;
  const size_t n = data[0] % 8;
  const uint8_t flags = data[1];
  data += 2;
  size -= 2;
  if (size < n * 4) return 0;
  kumo::virtio::DescriptorChain chain;
  for (size_t i = 0; i < n; ++i) {
    uint16_t off = 0, len = 0;
    std::memcpy(&off, data + 4 * i, 2);
    std::memcpy(&len, data + 4 * i + 2, 2);
    len = static_cast<uint16_t>(len % 0x1000);
    const uint64_t addr = off % (0x10000 - len + 1);
    const bool writable = (i > 0 && (data[4 * i] & 1)) || !chain.writable.empty();
    if (len == 0) continue;
    (writable ? chain.writable : chain.readable).push_back({GuestAddress(addr), len});
    (writable ? chain.writable_bytes : chain.readable_bytes) += len;
  }
  data += n * 4;
  size -= n * 4;
  (void)mem->fill(GuestAddress(0), 0, 0x10000);
  (void)mem->write(GuestAddress(0), std::span(data, size < 0x10000 ? size : 0x10000));
  kumo::devices::virtio::block::BlockLimits limits{
      .capacity_sectors = (flags & 0x80) ? ~uint64_t{0} : 2048,
      .read_only = (flags & 1) != 0,
      .max_discard_segments = 1u + (flags >> 4 & 3),
      .max_write_zeroes_segments = 1};
  auto req = kumo::devices::virtio::block::parse_block_request(*mem, chain, limits);
  if (req) {
    uint64_t total = 0;
    for (const auto& b : req->data) total += b.len;
    if (total != req->data_bytes && req->type != kumo::devices::virtio::block::RequestType::kFlush)
      __builtin_trap();
    if (!mem->contains(req->status, 1)) __builtin_trap();
  }
  return 0;
}
