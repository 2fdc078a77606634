#pragma once
// IoUringEngine: IoEngine on io_uring (liburing). Requests are submitted as soon as they are
// queued, or, on a buffered file between plug() and unplug(), together at unplug() (one
// io_uring_enter for the batch); completions are signalled through an eventfd registered
// with the ring. On an O_DIRECT file plug() is ignored: there every request waits for a
// device, and handing the first one over at once lets the device start while the rest are
// prepared, where a batch reaches it only after its last request went through the host
// block layer (one plug there too): 4 KiB random reads at QD32 +12-22%, 1 MiB reads and
// writes at QD8 +10% (docs/benchmarks.md, sixth session). A buffered request is CPU work
// (a page-cache copy), where saving system calls wins (QD32 page-cache reads: batched 1.15x).
// Read/write map to IORING_OP_READV/WRITEV, flush to IORING_OP_FSYNC (datasync), discard and
// write-zeroes to IORING_OP_FALLOCATE (punch hole / zero range). Cookies must be unique among
// requests in flight.
// Buffered (page-cache) reads run inline in io_uring_enter, one after the other on the
// submitting thread; a large one (kAsyncReadBytes or more) submitted while others are in
// flight goes to io_uring's worker threads instead (IOSQE_ASYNC), so that the memory copies
// of a deep queue of large reads run on every CPU (1 MiB reads at QD4: 1.6x).

#include <liburing.h>

#include <deque>
#include <unordered_map>

#include "base/unique_fd.h"
#include "block/io_engine.h"

namespace kumo::block {

class IoUringEngine final : public IoEngine {
 public:
  [[nodiscard]] static Result<std::unique_ptr<IoUringEngine>> create(int fd, size_t capacity);
  ~IoUringEngine() override;
  IoUringEngine(const IoUringEngine&) = delete;
  IoUringEngine& operator=(const IoUringEngine&) = delete;

  [[nodiscard]] Status submit(const EngineRequest& request) override;
  void post(uint64_t cookie, int64_t result) override;
  void signal() override;
  [[nodiscard]] int completion_fd() const override { return event_fd_.get(); }
  [[nodiscard]] size_t reap(std::span<IoCompletion> out) override;
  void drain() override;
  void plug() override { plugged_ = buffered_; }
  void unplug() override;
  [[nodiscard]] size_t in_flight() const override { return in_flight_; }
  [[nodiscard]] size_t capacity() const override { return capacity_; }
  [[nodiscard]] bool has_pending() { return !done_.empty() || io_uring_cq_ready(&ring_) > 0; }

  // Below this size an inline copy beats the hand-off to a worker (measured: 128 KiB reads
  // at QD4 are a little slower async, 256 KiB ones faster).
  static constexpr uint64_t kAsyncReadBytes = 256 * 1024;

 private:
  IoUringEngine(int fd, size_t capacity, UniqueFd event_fd)
      : fd_(fd), capacity_(capacity), event_fd_(std::move(event_fd)) {}
  // Moves kernel completions to done_; returns false when waiting failed.
  bool harvest(bool wait);
  // Hands queued SQEs to the kernel; false (SQEs kept for a retry) when io_uring_enter failed.
  bool flush_sq();

  int fd_;
  bool buffered_ = false;  // fd_ is not O_DIRECT
  size_t capacity_;
  UniqueFd event_fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  size_t in_flight_ = 0;
  bool plugged_ = false;
  std::deque<IoCompletion> done_;
  // fallocate completes with 0; completions report the length, like the other ops.
  std::unordered_map<uint64_t, uint64_t> fallocate_len_;
};

}  // namespace kumo::block
