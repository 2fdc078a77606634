#pragma once
// BlockBackend: the one interface between block consumers (virtio-blk, `kumo img`) and image
// formats (raw, qcow2). Back ends know nothing of virtio: they take buffers and byte offsets.
//
// Two ways in:
//  - synchronous calls (kumo img, tests): read/write/flush/discard/write_zeroes;
//  - asynchronous requests (virtio-blk worker): submit() many requests, wait on
//    completion_fd() (readable when completions are pending), then reap().
// An object is used from one thread at a time (the device worker, or the img tool);
// the async path may run work on internal threads or io_uring, never on the caller's vCPU.
// Offsets and lengths may come from a guest: implementations check them against size and
// return kInvalidInput / -EINVAL rather than touching anything out of range.

#include <sys/uio.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "base/result.h"

namespace kumo::block {

enum class IoOp { kRead, kWrite, kFlush, kDiscard, kWriteZeroes };

struct IoRequest {
  IoOp op = IoOp::kRead;
  uint64_t offset_bytes = 0;
  // Read/write data; the iovecs and the memory they point at must stay valid until the
  // completion for `cookie` has been reaped.
  std::span<const iovec> iov{};
  uint64_t len_bytes = 0;  // for discard and write-zeroes
  uint64_t cookie = 0;     // returned unchanged in the completion
};

struct IoCompletion {
  uint64_t cookie = 0;
  int64_t result = 0;  // bytes transferred (>= 0) or -errno
};

// Allocation status of a range in one layer of a backing chain (kumo img map / convert).
struct BlockStatus {
  uint64_t len_bytes = 0;   // how far this status extends from the queried offset
  bool allocated = false;   // this layer defines the content (else: the backing file does)
  bool zero = false;        // reads as zeros
  bool data = false;        // backed by data in this layer's file
  bool compressed = false;
  std::optional<uint64_t> host_offset;  // where the data lives in this layer's file
};

class BlockBackend {
 public:
  virtual ~BlockBackend() = default;

  [[nodiscard]] virtual uint64_t size_bytes() const = 0;
  [[nodiscard]] virtual bool read_only() const = 0;

  [[nodiscard]] virtual Status read(uint64_t offset_bytes, std::span<uint8_t> out) = 0;
  [[nodiscard]] virtual Status write(uint64_t offset_bytes, std::span<const uint8_t> in) = 0;
  [[nodiscard]] virtual Status flush() = 0;
  [[nodiscard]] virtual Status discard(uint64_t offset_bytes, uint64_t len_bytes) = 0;
  [[nodiscard]] virtual Status write_zeroes(uint64_t offset_bytes, uint64_t len_bytes) = 0;

  // Asynchronous path. submit() fails only when the request cannot be queued (queue full:
  // EAGAIN); I/O errors arrive as a negative completion result.
  [[nodiscard]] virtual Status submit(const IoRequest& request) = 0;
  [[nodiscard]] virtual int completion_fd() const = 0;
  // Moves up to out.size() completions into out; returns how many. Clears the fd's readiness
  // when it returns fewer than out.size().
  [[nodiscard]] virtual size_t reap(std::span<IoCompletion> out) = 0;
  // Batching hints for the asynchronous path: between plug() and unplug() a back end may
  // hold submitted requests and hand them to the host together at unplug() (one io_uring
  // system call, one host block-layer plug), like Linux's blk_start_plug; whether it does
  // is its own choice (io_uring: buffered files only). Defaults: no-ops.
  virtual void plug() {}
  virtual void unplug() {}

  // Introspection (kumo img); defaults describe a plain file.
  [[nodiscard]] virtual std::string_view format_name() const { return "raw"; }
  // Status of [offset, offset + max_len) in this layer; never longer than max_len.
  [[nodiscard]] virtual Result<BlockStatus> block_status(uint64_t offset_bytes,
                                                         uint64_t max_len_bytes) {
    return BlockStatus{max_len_bytes, true, false, true, false, offset_bytes};
  }
  // The next image in the backing chain, or nullptr. Owned by this back end.
  [[nodiscard]] virtual BlockBackend* backing() { return nullptr; }
  // Flushes and releases; later calls fail. The destructor closes too, ignoring errors.
  [[nodiscard]] virtual Status close() { return flush(); }
};

}  // namespace kumo::block
