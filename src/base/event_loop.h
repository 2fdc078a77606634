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
// Busy polling (optional, set_poller): after the handlers of a wake-up ran, the loop keeps
// calling `poll` and checking its fds without sleeping, for up to `window_ns` after the last
// time an fd or `poll` found work (the virtqueue polling of QEMU's poll-max-ns and of SPDK: a
// busy device worker sees new requests and completions without the guest's notification exit
// and without being woken from idle). Before it sleeps it calls `prepare_sleep`, which turns
// the driver's notifications back on and returns true when work appeared meanwhile (the loop
// then polls again instead of sleeping). A window of 0 sleeps as soon as no fd is ready, but
// still calls prepare_sleep first, so a worker has one code path for both. A polling round
// that found nothing yields the CPU (sched_yield), so a polling worker gives way at once to
// any other runnable thread on its CPU (another VM's vCPU, the process at the far end of a
// tap).
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
  // Before start(). `poll` returns whether it found work; see "Busy polling" above.
  void set_poller(uint64_t window_ns, std::function<bool()> poll,
                  std::function<bool()> prepare_sleep);
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
  // Runs the handlers of the ready fds (at most events.size()); false on the stop event.
  // `timeout_ms` as for epoll_wait. Sets `worked` when a handler ran.
  [[nodiscard]] bool dispatch(int timeout_ms, bool& worked);
  // Manual mode: one quiet step of the poller (poll, else prepare_sleep); true if it worked.
  [[nodiscard]] bool poll_manually();

  UniqueFd epoll_;
  UniqueFd stop_;
  std::vector<std::unique_ptr<Handler>> handlers_;
  std::vector<int> fds_;
  uint64_t poll_window_ns_ = 0;
  std::function<bool()> poll_;
  std::function<bool()> prepare_sleep_;
  std::thread thread_;
  bool manual_started_ = false;
};

// eventfd helpers.
[[nodiscard]] Result<UniqueFd> make_eventfd();
void signal_eventfd(int fd);
// Reads and discards the counter (non-blocking eventfds).
void drain_eventfd(int fd);

}  // namespace kumo
