#include "block/thread_pool_engine.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "block/io_uring_engine.h"

namespace kumo::block {

int64_t execute_sync(int fd, const EngineRequest& r) {
  switch (r.op) {
    case IoOp::kRead:
    case IoOp::kWrite: {
      // Loop over short transfers; an iovec array may be consumed partially.
      std::vector<iovec> iov(r.iov, r.iov + r.iov_count);
      size_t first = 0;
      int64_t total = 0;
      uint64_t off = r.offset_bytes;
      while (first < iov.size()) {
        const int cnt = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
        const ssize_t n = r.op == IoOp::kRead
                              ? ::preadv(fd, &iov[first], cnt, static_cast<off_t>(off))
                              : ::pwritev(fd, &iov[first], cnt, static_cast<off_t>(off));
        if (n < 0) {
          if (errno == EINTR) {
            continue;
          }
          return -errno;
        }
        if (n == 0) {
          if (r.op == IoOp::kRead) {  // end of file: rest reads as zeros
            for (size_t i = first; i < iov.size(); ++i) {
              std::memset(iov[i].iov_base, 0, iov[i].iov_len);
              total += static_cast<int64_t>(iov[i].iov_len);
            }
            return total;
          }
          return -EIO;
        }
        total += n;
        off += static_cast<uint64_t>(n);
        size_t left = static_cast<size_t>(n);
        while (first < iov.size() && left >= iov[first].iov_len) {
          left -= iov[first].iov_len;
          ++first;
        }
        if (left > 0) {
          iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
          iov[first].iov_len -= left;
        }
      }
      return total;
    }
    case IoOp::kFlush:
      return ::fdatasync(fd) == 0 ? 0 : -errno;
    case IoOp::kDiscard:
      if (::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                      static_cast<off_t>(r.offset_bytes), static_cast<off_t>(r.len_bytes)) != 0) {
        return -errno;
      }
      return static_cast<int64_t>(r.len_bytes);
    case IoOp::kWriteZeroes:
      if (::fallocate(fd, FALLOC_FL_ZERO_RANGE, static_cast<off_t>(r.offset_bytes),
                      static_cast<off_t>(r.len_bytes)) != 0) {
        return -errno;
      }
      return static_cast<int64_t>(r.len_bytes);
  }
  return -EINVAL;
}

Result<std::unique_ptr<ThreadPoolEngine>> ThreadPoolEngine::create(int fd, size_t capacity,
                                                                   unsigned threads,
                                                                   int shared_event_fd) {
  UniqueFd efd;
  if (shared_event_fd < 0) {
    efd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!efd) {
      return host_error("eventfd");
    }
  }
  std::unique_ptr<ThreadPoolEngine> e(new ThreadPoolEngine(fd, capacity, std::move(efd)));
  e->shared_event_fd_ = shared_event_fd;
  e->thread_count_ = threads;  // started on the first submit()
  return e;
}

ThreadPoolEngine::~ThreadPoolEngine() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : threads_) {
    t.join();
  }
}

void ThreadPoolEngine::signal() {
  const uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(completion_fd(), &one, sizeof(one));
}

bool ThreadPoolEngine::has_pending() const {
  std::lock_guard lock(mu_);
  return !done_.empty();
}

Status ThreadPoolEngine::submit(const EngineRequest& request) {
  if (threads_.empty()) {
    for (unsigned i = 0; i < thread_count_; ++i) {
      threads_.emplace_back([this] { worker_loop(); });
    }
  }
  {
    std::lock_guard lock(mu_);
    if (in_flight_ >= capacity_) {
      return host_error_errno(EAGAIN, "thread-pool engine: {} requests in flight", in_flight_);
    }
    ++in_flight_;
    queue_.push_back(request);
  }
  work_cv_.notify_one();
  return {};
}

void ThreadPoolEngine::post(uint64_t cookie, int64_t result) {
  {
    std::lock_guard lock(mu_);
    done_.push_back(IoCompletion{cookie, result});
  }
  signal();
}

void ThreadPoolEngine::worker_loop() {
  for (;;) {
    EngineRequest r;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) {
        return;
      }
      r = queue_.front();
      queue_.pop_front();
    }
    const int64_t result = execute_sync(fd_, r);
    {
      std::lock_guard lock(mu_);
      done_.push_back(IoCompletion{r.cookie, result});
      --in_flight_;
    }
    done_cv_.notify_all();
    signal();
  }
}

size_t ThreadPoolEngine::reap(std::span<IoCompletion> out) {
  uint64_t counter = 0;
  [[maybe_unused]] const ssize_t n = ::read(completion_fd(), &counter, sizeof(counter));
  std::lock_guard lock(mu_);
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

void ThreadPoolEngine::drain() {
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return in_flight_ == 0; });
}

size_t ThreadPoolEngine::in_flight() const {
  std::lock_guard lock(mu_);
  return in_flight_;
}

namespace {

// Page-cache mode: io_uring for everything except buffered writes, which io_uring would punt
// to io-wq workers serialized per inode; those go to a small thread pool instead. Both signal
// the ring's eventfd.
class HybridEngine final : public IoEngine {
 public:
  HybridEngine(int fd, std::unique_ptr<IoUringEngine> ring, std::unique_ptr<ThreadPoolEngine> pool)
      : fd_(fd), ring_(std::move(ring)), pool_(std::move(pool)) {}
  Status submit(const EngineRequest& r) override {
    if (in_flight() >= capacity()) {
      return host_error_errno(EAGAIN, "engine: {} requests in flight", in_flight());
    }
    if (r.op != IoOp::kWrite) {
      return ring_->submit(r);
    }
    // Alone, a page-cache copy now beats a hand-off to a thread.
    if (in_flight() == 0) {
      ring_->post(r.cookie, execute_sync(fd_, r));
      return {};
    }
    return pool_->submit(r);
  }
  void post(uint64_t cookie, int64_t result) override { ring_->post(cookie, result); }
  void signal() override { ring_->signal(); }
  int completion_fd() const override { return ring_->completion_fd(); }
  size_t reap(std::span<IoCompletion> out) override {
    size_t got = ring_->reap(out);
    if (got < out.size()) {
      got += pool_->reap(out.subspan(got));
    }
    if (ring_->has_pending() || pool_->has_pending()) {
      signal();  // more to hand out, or a completion raced the clears above
    }
    return got;
  }
  void drain() override {
    pool_->drain();
    ring_->drain();
  }
  void plug() override { ring_->plug(); }
  void unplug() override { ring_->unplug(); }
  size_t in_flight() const override { return ring_->in_flight() + pool_->in_flight(); }
  size_t capacity() const override { return ring_->capacity(); }

 private:
  int fd_;
  std::unique_ptr<IoUringEngine> ring_;
  std::unique_ptr<ThreadPoolEngine> pool_;
};

}  // namespace

Result<std::unique_ptr<IoEngine>> make_io_engine(EngineKind kind, int fd, size_t capacity) {
  if (kind == EngineKind::kIoUring) {
    auto ring = IoUringEngine::create(fd, capacity);
    if (ring) {
      const int flags = ::fcntl(fd, F_GETFL);
      if (flags >= 0 && (flags & O_DIRECT) == 0 && (flags & O_ACCMODE) != O_RDONLY) {
        const int efd = (*ring)->completion_fd();
        auto pool = KUMO_TRY(ThreadPoolEngine::create(fd, capacity, 4, efd));
        return std::unique_ptr<IoEngine>(
            std::make_unique<HybridEngine>(fd, std::move(*ring), std::move(pool)));
      }
      return std::unique_ptr<IoEngine>(std::move(*ring));
    }
    // Kernel without io_uring (or forbidden by seccomp): fall back to threads.
  }
  auto pool = KUMO_TRY(ThreadPoolEngine::create(fd, capacity, 4));
  return std::unique_ptr<IoEngine>(std::move(pool));
}

}  // namespace kumo::block
