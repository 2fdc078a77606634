#include "devices/virtio/block/block_request.h"

#include <fmt/format.h>

#include "devices/virtio/block/block_config.h"
#include "virtio/buffers.h"

namespace kumo::devices::virtio::block {
namespace {

using kumo::virtio::GuestBuffer;

struct Header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(Header) == 16);

tl::unexpected<BlockRequestError> fail(uint8_t status, std::optional<memory::GuestAddress> at,
                                       std::string reason) {
  return tl::unexpected(BlockRequestError{status, at, std::move(reason)});
}

bool range_ok(uint64_t sector, uint64_t sectors, uint64_t capacity) {
  uint64_t end = 0;
  return !__builtin_add_overflow(sector, sectors, &end) && end <= capacity;
}

}  // namespace

tl::expected<BlockRequest, BlockRequestError> parse_block_request(
    const memory::GuestMemory& mem, const kumo::virtio::DescriptorChain& chain,
    const BlockLimits& limits) {
  if (chain.writable_bytes == 0) {
    return fail(kStatusIoErr, std::nullopt, "request has no device-writable status byte");
  }
  const GuestBuffer& last = chain.writable.back();
  BlockRequest req;
  req.status = last.addr.unchecked_add(last.len - 1);  // inside a walker-checked buffer
  const auto at = std::optional(req.status);
  if (chain.readable_bytes < sizeof(Header)) {
    return fail(kStatusIoErr, at,
                fmt::format("request header is {} readable bytes, need 16", chain.readable_bytes));
  }
  Header header{};
  if (!kumo::virtio::read_buffers(mem, chain.readable, 0,
                                  std::span(reinterpret_cast<uint8_t*>(&header), sizeof(header)))) {
    return fail(kStatusIoErr, at, "request header is unreadable");
  }
  req.sector = header.sector;
  const uint64_t readable_data = chain.readable_bytes - sizeof(Header);
  const uint64_t writable_data = chain.writable_bytes - 1;
  switch (header.type) {
    case static_cast<uint32_t>(RequestType::kIn):
    case static_cast<uint32_t>(RequestType::kOut): {
      const bool is_in = header.type == static_cast<uint32_t>(RequestType::kIn);
      req.type = is_in ? RequestType::kIn : RequestType::kOut;
      if (!is_in && limits.read_only) {
        return fail(kStatusIoErr, at, "write to a read-only disk");
      }
      req.data_bytes = is_in ? writable_data : readable_data;
      if (is_in && readable_data != 0) {
        return fail(kStatusIoErr, at, "read request carries device-readable data");
      }
      if (!is_in && writable_data != 0) {
        return fail(kStatusIoErr, at, "write request carries device-writable data");
      }
      if (req.data_bytes % kSectorBytes != 0) {
        return fail(kStatusIoErr, at,
                    fmt::format("data length {} is not a multiple of 512", req.data_bytes));
      }
      if (!range_ok(req.sector, req.data_bytes / kSectorBytes, limits.capacity_sectors)) {
        return fail(kStatusIoErr, at,
                    fmt::format("sectors {}+{} beyond capacity {}", req.sector,
                                req.data_bytes / kSectorBytes, limits.capacity_sectors));
      }
      req.data = is_in ? kumo::virtio::slice_buffers(chain.writable, 0, writable_data)
                       : kumo::virtio::slice_buffers(chain.readable, sizeof(Header), readable_data);
      return req;
    }
    case static_cast<uint32_t>(RequestType::kFlush):
      req.type = RequestType::kFlush;
      return req;
    case static_cast<uint32_t>(RequestType::kGetId):
      req.type = RequestType::kGetId;
      req.data_bytes = std::min<uint64_t>(writable_data, kIdBytes);
      req.data = kumo::virtio::slice_buffers(chain.writable, 0, req.data_bytes);
      return req;
    case static_cast<uint32_t>(RequestType::kDiscard):
    case static_cast<uint32_t>(RequestType::kWriteZeroes): {
      const bool discard = header.type == static_cast<uint32_t>(RequestType::kDiscard);
      req.type = discard ? RequestType::kDiscard : RequestType::kWriteZeroes;
      if (limits.read_only) {
        return fail(kStatusIoErr, at, "discard or write-zeroes on a read-only disk");
      }
      const uint32_t max = discard ? limits.max_discard_segments : limits.max_write_zeroes_segments;
      if (readable_data == 0 || readable_data % sizeof(DiscardSegment) != 0 ||
          readable_data / sizeof(DiscardSegment) > max) {
        return fail(kStatusIoErr, at,
                    fmt::format("{} bytes of segments (max {} segments)", readable_data, max));
      }
      for (uint64_t off = 0; off < readable_data; off += sizeof(DiscardSegment)) {
        DiscardSegment seg{};
        if (!kumo::virtio::read_buffers(
                mem, chain.readable, sizeof(Header) + off,
                std::span(reinterpret_cast<uint8_t*>(&seg), sizeof(seg)))) {
          return fail(kStatusIoErr, at, "segment is unreadable");
        }
        if (discard && (seg.flags & 1) != 0) {
          return fail(kStatusUnsupported, at, "discard with the unmap flag");
        }
        if ((seg.flags & ~uint32_t{1}) != 0) {
          return fail(kStatusUnsupported, at, fmt::format("reserved segment flags {:#x}", seg.flags));
        }
        if (!range_ok(seg.sector, seg.num_sectors, limits.capacity_sectors)) {
          return fail(kStatusIoErr, at,
                      fmt::format("segment {}+{} beyond capacity {}", seg.sector, seg.num_sectors,
                                  limits.capacity_sectors));
        }
        req.segments.push_back(seg);
      }
      return req;
    }
    default:
      return fail(kStatusUnsupported, at, fmt::format("unsupported request type {}", header.type));
  }
}

}  // namespace kumo::devices::virtio::block
