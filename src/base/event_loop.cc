#include "base/event_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <mutex>

#include "base/cpu_set.h"

namespace kumo {
namespace {

// Manual mode (tests only): the started loops, pumped by run_manual_loops_for_testing().
std::atomic<bool> g_manual{false};
std::mutex g_manual_mutex;
std::vector<EventLoop*> g_manual_loops;

uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

bool manual_loop_started(EventLoop* loop) {
  std::lock_guard lock(g_manual_mutex);
  return std::find(g_manual_loops.begin(), g_manual_loops.end(), loop) != g_manual_loops.end();
}

}  // namespace

Result<UniqueFd> make_eventfd() {
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!fd) {
    return host_error("eventfd");
  }
  return fd;
}

void signal_eventfd(int fd) {
  const uint64_t one = 1;
  // EAGAIN means the counter is saturated: the reader will wake up anyway.
  (void)!::write(fd, &one, sizeof(one));
}

void drain_eventfd(int fd) {
  uint64_t value = 0;
  (void)!::read(fd, &value, sizeof(value));
}

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) {
    return host_error("epoll_create1");
  }
  auto stop = KUMO_TRY(make_eventfd());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;  // the stop event
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, stop.get(), &ev) != 0) {
    return host_error("epoll_ctl add stop eventfd");
  }
  return std::unique_ptr<EventLoop>(new EventLoop(std::move(epoll), std::move(stop)));
}

EventLoop::~EventLoop() { stop(); }

Status EventLoop::add(int fd, uint32_t events, Handler handler) {
  handlers_.push_back(std::make_unique<Handler>(std::move(handler)));
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handlers_.back().get();
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    handlers_.pop_back();
    return host_error("epoll_ctl add fd {}", fd);
  }
  fds_.push_back(fd);
  return {};
}

Status EventLoop::modify(int fd, uint32_t events) {
  for (size_t i = 0; i < fds_.size(); ++i) {
    if (fds_[i] == fd) {
      epoll_event ev{};
      ev.events = events;
      ev.data.ptr = handlers_[i].get();
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) {
        return host_error("epoll_ctl mod fd {}", fd);
      }
      return {};
    }
  }
  return invalid_input("fd {} is not in the event loop", fd);
}

Status EventLoop::start(std::string name) {
  if (running()) {
    return invalid_input("event loop {} already running", name);
  }
  if (g_manual.load()) {
    std::lock_guard lock(g_manual_mutex);
    g_manual_loops.push_back(this);
    manual_started_ = true;
    return {};
  }
  thread_ = std::thread([this, name = std::move(name)] {
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    (void)pin_thread(::pthread_self(), worker_cpus());  // checked when they were set
    run();
  });
  return {};
}

void EventLoop::stop() {
  if (manual_started_) {
    std::lock_guard lock(g_manual_mutex);
    std::erase(g_manual_loops, this);
    manual_started_ = false;
    return;
  }
  if (!thread_.joinable()) {
    return;
  }
  signal_eventfd(stop_.get());
  thread_.join();
  drain_eventfd(stop_.get());
}

void EventLoop::set_poller(uint64_t window_ns, std::function<bool()> poll,
                           std::function<bool()> prepare_sleep) {
  poll_window_ns_ = window_ns;
  poll_ = std::move(poll);
  prepare_sleep_ = std::move(prepare_sleep);
}

bool EventLoop::dispatch(int timeout_ms, bool& worked) {
  std::array<epoll_event, 16> events{};
  const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
  if (n < 0) {
    return errno == EINTR;
  }
  for (int i = 0; i < n; ++i) {
    if (events[static_cast<size_t>(i)].data.ptr == nullptr) {
      return false;
    }
  }
  for (int i = 0; i < n; ++i) {
    (*static_cast<Handler*>(events[static_cast<size_t>(i)].data.ptr))();
    worked = true;
  }
  return true;
}

void EventLoop::run() {
  uint64_t poll_until_ns = 0;  // busy polling while the clock is before this
  for (;;) {
    bool polling = poll_ && monotonic_ns() < poll_until_ns;
    if (poll_ && !polling && prepare_sleep_()) {
      polling = true;  // work arrived while notifications were turned on: no sleep
    }
    bool worked = false;
    if (!dispatch(polling ? 0 : -1, worked)) {
      return;
    }
    if (poll_ && (poll_() || worked)) {
      poll_until_ns = monotonic_ns() + poll_window_ns_;
    } else if (polling) {
      ::sched_yield();
    }
  }
}

bool EventLoop::poll_manually() { return poll_ && (poll_() || prepare_sleep_()); }

void EventLoop::set_manual_mode_for_testing(bool manual) { g_manual.store(manual); }

size_t EventLoop::manual_loops_for_testing() {
  std::lock_guard lock(g_manual_mutex);
  return g_manual_loops.size();
}

bool EventLoop::run_manual_loops_for_testing(size_t max_handlers) {
  size_t ran = 0;
  for (;;) {
    std::vector<EventLoop*> loops;
    {
      std::lock_guard lock(g_manual_mutex);
      loops = g_manual_loops;
    }
    bool any = false;
    for (EventLoop* loop : loops) {
      // One event per epoll_wait: a handler may stop another loop (or have its own stopped
      // through a device reset), so each step re-checks that the loop is still started.
      while (manual_loop_started(loop)) {
        epoll_event event{};
        const bool ready = ::epoll_wait(loop->epoll_.get(), &event, 1, 0) == 1;
        if (ready && event.data.ptr == nullptr) {
          break;
        }
        if (!ready && !loop->poll_manually()) {
          break;  // quiet, and the poller found nothing before it would sleep
        }
        if (ran == max_handlers) {
          return false;
        }
        if (ready) {
          (*static_cast<Handler*>(event.data.ptr))();
        }
        ++ran;
        any = true;
      }
    }
    if (!any) {
      return true;
    }
  }
}

}  // namespace kumo
