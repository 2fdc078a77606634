#include "base/event_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace kumo {

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
  if (thread_.joinable()) {
    return invalid_input("event loop {} already running", name);
  }
  thread_ = std::thread([this, name = std::move(name)] {
    ::pthread_setname_np(::pthread_self(), name.substr(0, 15).c_str());
    run();
  });
  return {};
}

void EventLoop::stop() {
  if (!thread_.joinable()) {
    return;
  }
  signal_eventfd(stop_.get());
  thread_.join();
  drain_eventfd(stop_.get());
}

void EventLoop::run() {
  std::array<epoll_event, 16> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;
    }
    for (int i = 0; i < n; ++i) {
      if (events[static_cast<size_t>(i)].data.ptr == nullptr) {
        return;
      }
    }
    for (int i = 0; i < n; ++i) {
      (*static_cast<Handler*>(events[static_cast<size_t>(i)].data.ptr))();
    }
  }
}

}  // namespace kumo
