#pragma once
// The virtio-blk request parser (virtio 1.2 §5.2.6): turns a validated descriptor chain into
// a typed request, or into the status byte the device must answer with. Pure: reads guest
// memory, writes nothing; fuzzed by block_request_fuzz.cc.
//
// Layout (framing-independent, §2.6.4): the first 16 device-readable bytes are the header
// {le32 type, le32 reserved, le64 sector}; the last device-writable byte is the status;
// data is the rest (readable for OUT/DISCARD/WRITE_ZEROES, writable for IN/GET_ID).
// Every field is guest-controlled; checks: header present and readable, status byte
// present, IN/OUT length a multiple of 512 and within capacity (overflow-checked), discard
// and write-zeroes segments a non-zero multiple of 16 bytes, at most the advertised count,
// each within capacity, unmap flag refused for discard; writes to a read-only disk refused.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <tl/expected.hpp>

#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace kumo::devices::virtio::block {

// §5.2.6 request types and status values.
enum class RequestType : uint32_t {
  kIn = 0,
  kOut = 1,
  kFlush = 4,
  kGetId = 8,
  kDiscard = 11,
  kWriteZeroes = 13,
};
inline constexpr uint8_t kStatusOk = 0;
inline constexpr uint8_t kStatusIoErr = 1;
inline constexpr uint8_t kStatusUnsupported = 2;

struct DiscardSegment {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;  // bit 0: unmap
};
static_assert(sizeof(DiscardSegment) == 16);

struct BlockRequest {
  RequestType type = RequestType::kIn;
  uint64_t sector = 0;
  std::vector<kumo::virtio::GuestBuffer> data;
  uint64_t data_bytes = 0;
  std::vector<DiscardSegment> segments;
  memory::GuestAddress status;
};

struct BlockRequestError {
  uint8_t status = kStatusIoErr;
  std::optional<memory::GuestAddress> status_addr;  // nullopt: the chain has no status byte
  std::string reason;
};

struct BlockLimits {
  uint64_t capacity_sectors = 0;
  bool read_only = false;
  uint32_t max_discard_segments = 1;
  uint32_t max_write_zeroes_segments = 1;
};

[[nodiscard]] tl::expected<BlockRequest, BlockRequestError> parse_block_request(
    const memory::GuestMemory& mem, const kumo::virtio::DescriptorChain& chain,
    const BlockLimits& limits);

}  // namespace kumo::devices::virtio::block
