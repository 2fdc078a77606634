#pragma once
// IoEngine: asynchronous positional I/O on one host file descriptor.
//
// Two implementations: IoUringEngine (io_uring, many requests in flight, the default) and
// ThreadPoolEngine (a few worker threads doing preadv/pwritev; the fallback where io_uring is
// unavailable). Both signal completions through an eventfd (completion_fd()).
//
// Thread-safety: submit(), reap(), post() and drain() are called from one thread (the owner);
// the engine may complete work on its own threads or in the kernel.
// Lifetime: iovecs and buffers passed to submit() must stay valid until reaped.

#include <sys/uio.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

#include "base/result.h"
#include "block/block_backend.h"

namespace kumo::block {

// Total byte length of an iovec array.
[[nodiscard]] inline uint64_t iov_length(std::span<const iovec> iov) {
  uint64_t total = 0;
  for (const iovec& v : iov) {
    total += v.iov_len;
  }
  return total;
}
// Copies between a contiguous buffer and an iovec array; `buf` holds iov_length(iov) bytes.
inline void gather_iovecs(std::span<const iovec> iov, std::span<uint8_t> buf) {
  size_t pos = 0;
  for (const iovec& v : iov) {
    std::memcpy(buf.data() + pos, v.iov_base, v.iov_len);
    pos += v.iov_len;
  }
}
inline void scatter_iovecs(std::span<const uint8_t> buf, std::span<const iovec> iov) {
  size_t pos = 0;
  for (const iovec& v : iov) {
    std::memcpy(v.iov_base, buf.data() + pos, v.iov_len);
    pos += v.iov_len;
  }
}

struct EngineRequest {
  IoOp op = IoOp::kRead;
  uint64_t offset_bytes = 0;
  const iovec* iov = nullptr;
  int iov_count = 0;
  uint64_t len_bytes = 0;  // discard / write-zeroes
  uint64_t cookie = 0;
};

enum class EngineKind { kIoUring, kThreadPool };

class IoEngine {
 public:
  virtual ~IoEngine() = default;

  // Queues a request; fails with errno EAGAIN when `capacity()` requests are in flight.
  [[nodiscard]] virtual Status submit(const EngineRequest& request) = 0;
  // Queues a completion produced without I/O (e.g. served from memory); signals the fd.
  virtual void post(uint64_t cookie, int64_t result) = 0;
  // Makes completion_fd() readable (the owner holds completions of its own to hand out).
  virtual void signal() = 0;
  [[nodiscard]] virtual int completion_fd() const = 0;
  // Moves up to out.size() completions into out. When it returns fewer than out.size() the
  // fd's readiness is cleared; otherwise the fd stays readable.
  [[nodiscard]] virtual size_t reap(std::span<IoCompletion> out) = 0;
  // Blocks until every submitted request has completed (completions stay reapable).
  virtual void drain() = 0;
  // Batching (see BlockBackend::plug): while plugged, submit() may only queue requests;
  // unplug() (or drain()) hands them to the kernel. Defaults: no-ops.
  virtual void plug() {}
  virtual void unplug() {}
  [[nodiscard]] virtual size_t in_flight() const = 0;
  [[nodiscard]] virtual size_t capacity() const = 0;
};

// Creates an engine on `fd` (not owned; must outlive the engine). kIoUring falls back to
// kThreadPool when the kernel refuses io_uring.
[[nodiscard]] Result<std::unique_ptr<IoEngine>> make_io_engine(EngineKind kind, int fd,
                                                               size_t capacity);

}  // namespace kumo::block
