#include "block/io_uring_engine.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "block/thread_pool_engine.h"

namespace kumo::block {

Result<std::unique_ptr<IoUringEngine>> IoUringEngine::create(int fd, size_t capacity) {
  UniqueFd efd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!efd) {
    return host_error("eventfd");
  }
  std::unique_ptr<IoUringEngine> e(new IoUringEngine(fd, capacity, std::move(efd)));
  const int rc = io_uring_queue_init(static_cast<unsigned>(capacity), &e->ring_, 0);
  if (rc < 0) {
    return host_error_errno(-rc, "io_uring_queue_init({})", capacity);
  }
  e->ring_ready_ = true;
  const int flags = ::fcntl(fd, F_GETFL);
  e->buffered_ = flags >= 0 && (flags & O_DIRECT) == 0;
  const int rrc = io_uring_register_eventfd(&e->ring_, e->event_fd_.get());
  if (rrc < 0) {
    return host_error_errno(-rrc, "io_uring_register_eventfd");
  }
  return e;
}

IoUringEngine::~IoUringEngine() {
  if (ring_ready_) {
    drain();
    io_uring_queue_exit(&ring_);
  }
}

Status IoUringEngine::submit(const EngineRequest& r) {
  if (in_flight_ >= capacity_) {
    return host_error_errno(EAGAIN, "io_uring engine: {} requests in flight", in_flight_);
  }
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr && flush_sq()) {  // full of plugged requests: hand those over first
    sqe = io_uring_get_sqe(&ring_);
  }
  if (sqe == nullptr) {
    return host_error_errno(EAGAIN, "io_uring engine: submission queue full");
  }
  switch (r.op) {
    case IoOp::kRead:
      io_uring_prep_readv(sqe, fd_, r.iov, static_cast<unsigned>(r.iov_count), r.offset_bytes);
      if (buffered_ && in_flight_ > 0 &&
          iov_length(std::span(r.iov, static_cast<size_t>(r.iov_count))) >= kAsyncReadBytes) {
        sqe->flags |= IOSQE_ASYNC;
      }
      break;
    case IoOp::kWrite:
      io_uring_prep_writev(sqe, fd_, r.iov, static_cast<unsigned>(r.iov_count), r.offset_bytes);
      break;
    case IoOp::kFlush:
      io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
      break;
    case IoOp::kDiscard:
      io_uring_prep_fallocate(sqe, fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(r.offset_bytes),
                              static_cast<off_t>(r.len_bytes));
      break;
    case IoOp::kWriteZeroes:
      io_uring_prep_fallocate(sqe, fd_, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(r.offset_bytes),
                              static_cast<off_t>(r.len_bytes));
      break;
  }
  io_uring_sqe_set_data64(sqe, r.cookie);
  // From here on the request belongs to the ring: once io_uring_submit has published the SQE it
  // cannot be withdrawn, so a failed io_uring_enter must not fail the request (its completion
  // would arrive later for a cookie the owner may have reused). It stays queued instead.
  ++in_flight_;
  if (r.op == IoOp::kDiscard || r.op == IoOp::kWriteZeroes) {
    fallocate_len_.emplace(r.cookie, r.len_bytes);
  }
  if (!plugged_ && !flush_sq()) {
    signal();  // the owner's next reap() retries the submission
  }
  return {};
}

void IoUringEngine::post(uint64_t cookie, int64_t result) {
  // While done_ holds completions the fd is already readable (reap() signals again when it
  // leaves some behind), so only the first one needs the system call.
  const bool first = done_.empty();
  done_.push_back(IoCompletion{cookie, result});
  if (first) {
    signal();
  }
}

void IoUringEngine::signal() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(event_fd_.get(), &one, sizeof(one));
}

bool IoUringEngine::harvest(bool wait) {
  io_uring_cqe* cqe = nullptr;
  while (in_flight_ > 0) {
    const int rc = wait ? io_uring_wait_cqe(&ring_, &cqe) : io_uring_peek_cqe(&ring_, &cqe);
    if (rc == -EINTR) {
      continue;
    }
    if (rc < 0 || cqe == nullptr) {
      return !wait;
    }
    const uint64_t cookie = io_uring_cqe_get_data64(cqe);
    int64_t result = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --in_flight_;
    if (!fallocate_len_.empty()) {
      auto it = fallocate_len_.find(cookie);
      if (it != fallocate_len_.end()) {
        if (result == 0) {
          result = static_cast<int64_t>(it->second);
        }
        fallocate_len_.erase(it);
      }
    }
    done_.push_back(IoCompletion{cookie, result});
    wait = false;
  }
  return true;
}

size_t IoUringEngine::reap(std::span<IoCompletion> out) {
  uint64_t counter = 0;
  [[maybe_unused]] const ssize_t n = ::read(event_fd_.get(), &counter, sizeof(counter));
  harvest(false);
  if (!plugged_ && !flush_sq()) {
    signal();  // still refused: try again on the next reap()
  }
  size_t got = 0;
  while (got < out.size() && !done_.empty()) {
    out[got++] = done_.front();
    done_.pop_front();
  }
  if (!done_.empty()) {
    signal();
  }
  return got;
}

bool IoUringEngine::flush_sq() {
  if (io_uring_sq_ready(&ring_) == 0) {
    return true;
  }
  int rc = 0;
  do {
    rc = io_uring_submit(&ring_);
  } while (rc == -EINTR);
  // On failure (EAGAIN/EBUSY: the kernel is short of memory or completion space) the SQEs
  // stay in the ring and go with the next submission, unplug() or drain().
  return rc >= 0;
}

void IoUringEngine::unplug() {
  plugged_ = false;
  (void)flush_sq();
}

void IoUringEngine::drain() {
  while (in_flight_ > 0) {
    const bool submitted = flush_sq();
    const size_t in_kernel = in_flight_ - io_uring_sq_ready(&ring_);
    if (in_kernel > 0) {
      if (!harvest(true)) {
        return;
      }
    } else if (!submitted) {
      ::usleep(1000);  // the kernel refused every queued request (short of memory): retry
    }
  }
}

}  // namespace kumo::block
