#pragma once
// MemoryBackend: an in-memory BlockBackend for virtio-blk tests. The asynchronous path runs
// each request immediately (or holds completions until release() when `hold` is set, to
// test many requests in flight) and signals an eventfd. Test-only.

#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <vector>

#include "base/event_loop.h"
#include "block/block_backend.h"

namespace kumo::devices::virtio::block::testing {

class MemoryBackend final : public kumo::block::BlockBackend {
 public:
  explicit MemoryBackend(uint64_t size_bytes, bool read_only = false)
      : data_(size_bytes), read_only_(read_only), fd_(*make_eventfd()) {}

  uint64_t size_bytes() const override { return data_.size(); }
  bool read_only() const override { return read_only_; }
  Status read(uint64_t off, std::span<uint8_t> out) override {
    std::memcpy(out.data(), data_.data() + off, out.size());
    return {};
  }
  Status write(uint64_t off, std::span<const uint8_t> in) override {
    std::memcpy(data_.data() + off, in.data(), in.size());
    return {};
  }
  Status flush() override { return {}; }
  Status discard(uint64_t, uint64_t) override { return {}; }
  Status write_zeroes(uint64_t off, uint64_t len) override {
    std::fill_n(data_.begin() + static_cast<ptrdiff_t>(off), len, uint8_t{0});
    return {};
  }

  Status submit(const kumo::block::IoRequest& r) override {
    std::lock_guard lock(mutex_);
    if (max_in_flight != 0 && held_.size() >= max_in_flight) {
      return host_error_errno(EAGAIN, "memory backend queue full");
    }
    submitted++;
    held_.push_back(run(r));
    if (!hold) flush_locked();
    return {};
  }
  int completion_fd() const override { return fd_.get(); }
  size_t reap(std::span<kumo::block::IoCompletion> out) override {
    std::lock_guard lock(mutex_);
    drain_eventfd(fd_.get());
    size_t n = 0;
    while (n < out.size() && !ready_.empty()) {
      out[n++] = ready_.front();
      ready_.pop_front();
    }
    if (!ready_.empty()) signal_eventfd(fd_.get());
    return n;
  }
  // Completes everything held.
  void release() {
    std::lock_guard lock(mutex_);
    flush_locked();
  }
  size_t held() {
    std::lock_guard lock(mutex_);
    return held_.size();
  }

  std::vector<uint8_t> data_;
  bool hold = false;
  size_t max_in_flight = 0;  // 0 = unlimited
  int fail_errno = 0;        // completes requests with -fail_errno when set
  std::vector<kumo::block::IoOp> ops;
  int submitted = 0;

 private:
  kumo::block::IoCompletion run(const kumo::block::IoRequest& r) {
    ops.push_back(r.op);
    if (fail_errno != 0) return {r.cookie, -fail_errno};
    int64_t moved = 0;
    uint64_t off = r.offset_bytes;
    switch (r.op) {
      case kumo::block::IoOp::kRead:
        for (const iovec& v : r.iov) {
          std::memcpy(v.iov_base, data_.data() + off, v.iov_len);
          off += v.iov_len;
          moved += static_cast<int64_t>(v.iov_len);
        }
        break;
      case kumo::block::IoOp::kWrite:
        for (const iovec& v : r.iov) {
          std::memcpy(data_.data() + off, v.iov_base, v.iov_len);
          off += v.iov_len;
          moved += static_cast<int64_t>(v.iov_len);
        }
        break;
      case kumo::block::IoOp::kWriteZeroes:
        std::fill_n(data_.begin() + static_cast<ptrdiff_t>(off), r.len_bytes, uint8_t{0});
        break;
      default:
        break;
    }
    return {r.cookie, moved};
  }
  void flush_locked() {
    for (auto& c : held_) ready_.push_back(c);
    held_.clear();
    signal_eventfd(fd_.get());
  }

  bool read_only_;
  UniqueFd fd_;
  std::mutex mutex_;
  std::deque<kumo::block::IoCompletion> held_;
  std::deque<kumo::block::IoCompletion> ready_;
};

}  // namespace kumo::devices::virtio::block::testing
