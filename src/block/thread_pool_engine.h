#pragma once
// ThreadPoolEngine: the synchronous/threaded fallback IoEngine. A fixed set of worker threads
// runs preadv/pwritev/fdatasync/fallocate; completions are queued and an eventfd signals them.

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "base/unique_fd.h"
#include "block/io_engine.h"

namespace kumo::block {

class ThreadPoolEngine final : public IoEngine {
 public:
  // shared_event_fd >= 0: signal that eventfd (not owned) instead of an own one.
  [[nodiscard]] static Result<std::unique_ptr<ThreadPoolEngine>> create(
      int fd, size_t capacity, unsigned threads, int shared_event_fd = -1);
  [[nodiscard]] bool has_pending() const;
  ~ThreadPoolEngine() override;
  ThreadPoolEngine(const ThreadPoolEngine&) = delete;
  ThreadPoolEngine& operator=(const ThreadPoolEngine&) = delete;

  [[nodiscard]] Status submit(const EngineRequest& request) override;
  void post(uint64_t cookie, int64_t result) override;
  void signal() override;
  [[nodiscard]] int completion_fd() const override {
    return shared_event_fd_ >= 0 ? shared_event_fd_ : event_fd_.get();
  }
  [[nodiscard]] size_t reap(std::span<IoCompletion> out) override;
  void drain() override;
  [[nodiscard]] size_t in_flight() const override;
  [[nodiscard]] size_t capacity() const override { return capacity_; }

 private:
  ThreadPoolEngine(int fd, size_t capacity, UniqueFd event_fd)
      : fd_(fd), capacity_(capacity), event_fd_(std::move(event_fd)) {}
  void worker_loop();

  int fd_;
  size_t capacity_;
  UniqueFd event_fd_;
  int shared_event_fd_ = -1;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<EngineRequest> queue_;
  std::deque<IoCompletion> done_;
  size_t in_flight_ = 0;  // submitted, not yet completed
  bool stopping_ = false;
  unsigned thread_count_ = 0;
  std::vector<std::thread> threads_;
};

// Executes one request synchronously on fd; returns bytes transferred or -errno.
int64_t execute_sync(int fd, const EngineRequest& request);

}  // namespace kumo::block
