#pragma once
// Helpers over the buffer lists of a DescriptorChain, treating them as one byte stream
// (virtio 1.2 §2.6.4 Message Framing: devices must not assume a particular split).
// Buffers were range-checked by the walker, but every access goes through GuestMemory
// again. Pure functions; thread-safe.

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace kumo::virtio {

[[nodiscard]] uint64_t total_bytes(std::span<const GuestBuffer> buffers);
// The sub-list covering bytes [offset, offset+len) of the stream, clamped to its end.
[[nodiscard]] std::vector<GuestBuffer> slice_buffers(std::span<const GuestBuffer> buffers,
                                                     uint64_t offset, uint64_t len);
// Copies out.size() bytes from stream offset `offset`; kGuest error if the stream is short.
[[nodiscard]] Status read_buffers(const memory::GuestMemory& mem,
                                  std::span<const GuestBuffer> buffers, uint64_t offset,
                                  std::span<uint8_t> out);
[[nodiscard]] Status write_buffers(const memory::GuestMemory& mem,
                                   std::span<const GuestBuffer> buffers, uint64_t offset,
                                   std::span<const uint8_t> in);
// Host iovecs for zero-copy I/O through GuestMemory::host_span.
// SAFETY: the iovecs point into guest RAM; valid while `mem` lives; the guest may change
// the bytes concurrently, so nothing read through them may be trusted for validation.
[[nodiscard]] Result<std::vector<iovec>> host_iovecs(const memory::GuestMemory& mem,
                                                     std::span<const GuestBuffer> buffers);

}  // namespace kumo::virtio
