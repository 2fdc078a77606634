#pragma once
// EventLoop: one worker thread waiting on file descriptors with epoll (device workers:
// virtqueue eventfds, back-end completion fds, tap fds, rate-limiter timers).
//
// Handlers are registered before start() and run on the worker thread only, one at a time.
// stop() wakes the thread through an internal eventfd and joins it; after stop() returns no
// handler is running or will run. The destructor stops. Move-only through unique_ptr.
//
// Thread-safety: add() and start() from the owner before the thread runs; stop() from any
// thread except the worker itself; wake() from any thread.
//
// Manual mode (tests and fuzzers only; kumo itself never enables it): start() runs no
// thread and the handlers of every started loop run on the thread that calls
// run_manual_loops_for_testing(), so a test drives device workers deterministically, without
// threads. Enable it before any loop starts; then create, start, stop and pump loops from one
// thread only.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace kumo {

class EventLoop final {
 public:
  using Handler = std::function<void()>;

  [[nodiscard]] static Result<std::unique_ptr<EventLoop>> create();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Level-triggered interest in `events` (EPOLLIN/EPOLLOUT) on `fd`; the fd stays owned by
  // the caller and must outlive the loop's thread.
  [[nodiscard]] Status add(int fd, uint32_t events, Handler handler);
  // Changes the interest set of an added fd (e.g. drop EPOLLIN while throttled). Worker
  // thread or before start().
  [[nodiscard]] Status modify(int fd, uint32_t events);
  [[nodiscard]] Status start(std::string name);
  void stop();
  [[nodiscard]] bool running() const { return thread_.joinable() || manual_started_; }

  static void set_manual_mode_for_testing(bool manual);
  // Runs ready handlers of the started loops, one at a time, until no fd of any loop is
  // ready (returns true) or `max_handlers` handlers ran (returns false: a loop kept itself
  // busy).
  [[nodiscard]] static bool run_manual_loops_for_testing(size_t max_handlers);
  // Loops started and not yet stopped in manual mode.
  [[nodiscard]] static size_t manual_loops_for_testing();

 private:
  EventLoop(UniqueFd epoll, UniqueFd stop) : epoll_(std::move(epoll)), stop_(std::move(stop)) {}
  void run();

  UniqueFd epoll_;
  UniqueFd stop_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<int> fds_;
  std::thread thread_;
  bool manual_started_ = false;
};

// eventfd helpers.
[[nodiscard]] Result<UniqueFd> make_eventfd();
void signal_eventfd(int fd);
// Reads and discards the counter (non-blocking eventfds).
void drain_eventfd(int fd);

}  // namespace kumo
