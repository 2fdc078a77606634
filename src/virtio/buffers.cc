#include "virtio/buffers.h"

#include <algorithm>

namespace kumo::virtio {

uint64_t total_bytes(std::span<const GuestBuffer> buffers) {
  uint64_t total = 0;
  for (const auto& b : buffers) total += b.len;
  return total;
}

std::vector<GuestBuffer> slice_buffers(std::span<const GuestBuffer> buffers, uint64_t offset,
                                       uint64_t len) {
  std::vector<GuestBuffer> out;
  for (const auto& b : buffers) {
    if (len == 0) break;
    if (offset >= b.len) {
      offset -= b.len;
      continue;
    }
    const uint64_t take = std::min<uint64_t>(b.len - offset, len);
    out.push_back(GuestBuffer{b.addr.unchecked_add(offset), static_cast<uint32_t>(take)});
    len -= take;
    offset = 0;
  }
  return out;
}

namespace {
template <typename Fn>
Status for_each_piece(std::span<const GuestBuffer> buffers, uint64_t offset, uint64_t len,
                      Fn&& fn) {
  uint64_t done = 0;
  for (const auto& piece : slice_buffers(buffers, offset, len)) {
    KUMO_TRY(fn(piece, done));
    done += piece.len;
  }
  if (done != len) {
    return guest_error("descriptor buffers hold {} bytes at offset {}, need {}", done, offset,
                       len);
  }
  return {};
}
}  // namespace

Status read_buffers(const memory::GuestMemory& mem, std::span<const GuestBuffer> buffers,
                    uint64_t offset, std::span<uint8_t> out) {
  return for_each_piece(buffers, offset, out.size(), [&](const GuestBuffer& p, uint64_t at) {
    return mem.read(p.addr, out.subspan(at, p.len));
  });
}

Status write_buffers(const memory::GuestMemory& mem, std::span<const GuestBuffer> buffers,
                     uint64_t offset, std::span<const uint8_t> in) {
  return for_each_piece(buffers, offset, in.size(), [&](const GuestBuffer& p, uint64_t at) {
    return mem.write(p.addr, in.subspan(at, p.len));
  });
}

Result<std::vector<iovec>> host_iovecs(const memory::GuestMemory& mem,
                                       std::span<const GuestBuffer> buffers) {
  std::vector<iovec> iov;
  iov.reserve(buffers.size());
  for (const auto& b : buffers) {
    auto span = KUMO_TRY(mem.host_span(b.addr, b.len));
    iov.push_back(iovec{span.data(), span.size()});
  }
  return iov;
}

}  // namespace kumo::virtio
