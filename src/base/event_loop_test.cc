#include "base/event_loop.h"

#include <sys/epoll.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace kumo {
namespace {

// Restores threaded mode when a test ends.
class ManualMode {
 public:
  ManualMode() { EventLoop::set_manual_mode_for_testing(true); }
  ~ManualMode() { EventLoop::set_manual_mode_for_testing(false); }
  ManualMode(const ManualMode&) = delete;
  ManualMode& operator=(const ManualMode&) = delete;
};

TEST(EventLoop, ThreadedLoopRunsHandlersOnItsThread) {
  auto loop = *EventLoop::create();
  auto fd = *make_eventfd();
  std::atomic<bool> ran{false};
  std::thread::id handler_thread;
  ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&] {
    drain_eventfd(fd.get());
    handler_thread = std::this_thread::get_id();
    ran.store(true);
  }));
  ASSERT_TRUE(loop->start("test"));
  signal_eventfd(fd.get());
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!ran.load() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  loop->stop();
  EXPECT_TRUE(ran.load());
  EXPECT_NE(handler_thread, std::this_thread::get_id());
  EXPECT_FALSE(loop->running());
}

TEST(EventLoop, ManualModeRunsHandlersOnlyWhenPumped) {
  ManualMode manual;
  auto loop = *EventLoop::create();
  auto fd = *make_eventfd();
  int runs = 0;
  std::thread::id handler_thread;
  ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&] {
    drain_eventfd(fd.get());
    handler_thread = std::this_thread::get_id();
    ++runs;
  }));
  ASSERT_TRUE(loop->start("test"));
  EXPECT_TRUE(loop->running());
  EXPECT_EQ(EventLoop::manual_loops_for_testing(), 1u);
  signal_eventfd(fd.get());
  std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(runs, 0);
  EXPECT_TRUE(EventLoop::run_manual_loops_for_testing(100));
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(handler_thread, std::this_thread::get_id());
  loop->stop();
  EXPECT_FALSE(loop->running());
  EXPECT_EQ(EventLoop::manual_loops_for_testing(), 0u);
  signal_eventfd(fd.get());
  EXPECT_TRUE(EventLoop::run_manual_loops_for_testing(100));
  EXPECT_EQ(runs, 1);  // a stopped loop is not pumped
}

TEST(EventLoop, ManualModeReportsALoopThatKeepsItselfBusy) {
  ManualMode manual;
  auto loop = *EventLoop::create();
  auto fd = *make_eventfd();
  int runs = 0;
  ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&] { ++runs; }));  // never drains: always ready
  ASSERT_TRUE(loop->start("test"));
  signal_eventfd(fd.get());
  EXPECT_FALSE(EventLoop::run_manual_loops_for_testing(50));
  EXPECT_EQ(runs, 50);
}

TEST(EventLoop, ManualModeHandlerMayStopItsLoop) {
  ManualMode manual;
  auto loop = *EventLoop::create();
  auto a = *make_eventfd();
  auto b = *make_eventfd();
  int runs = 0;
  ASSERT_TRUE(loop->add(a.get(), EPOLLIN, [&] {
    ++runs;
    loop->stop();
  }));
  ASSERT_TRUE(loop->add(b.get(), EPOLLIN, [&] {
    ++runs;
    loop->stop();
  }));
  ASSERT_TRUE(loop->start("test"));
  signal_eventfd(a.get());
  signal_eventfd(b.get());
  EXPECT_TRUE(EventLoop::run_manual_loops_for_testing(100));
  EXPECT_EQ(runs, 1);
}

}  // namespace
}  // namespace kumo
