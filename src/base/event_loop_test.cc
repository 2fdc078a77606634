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

// Polls `cond` for up to five seconds.
template <typename Cond>
bool eventually(Cond cond) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!cond() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return cond();
}

TEST(EventLoop, WithoutAPollWindowTheLoopPollsOnceAndPreparesToSleepAfterEachWakeUp) {
  auto loop = *EventLoop::create();
  auto fd = *make_eventfd();
  std::atomic<int> handled{0}, polls{0}, sleeps{0};
  ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&] {
    drain_eventfd(fd.get());
    ++handled;
  }));
  loop->set_poller(0, [&] { ++polls; return false; }, [&] { ++sleeps; return false; });
  ASSERT_TRUE(loop->start("test"));
  ASSERT_TRUE(eventually([&] { return sleeps.load() == 1; }));  // before the first sleep
  signal_eventfd(fd.get());
  ASSERT_TRUE(eventually([&] { return sleeps.load() == 2; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  loop->stop();
  EXPECT_EQ(handled.load(), 1);
  EXPECT_EQ(polls.load(), 1);
  EXPECT_EQ(sleeps.load(), 2);
}

TEST(EventLoop, WithinThePollWindowTheLoopKeepsPollingWithoutSleeping) {
  auto loop = *EventLoop::create();
  auto fd = *make_eventfd();
  std::atomic<int> polls{0}, sleeps{0};
  ASSERT_TRUE(loop->add(fd.get(), EPOLLIN, [&] { drain_eventfd(fd.get()); }));
  // 10 ms of polling after the wake-up, then sleep.
  loop->set_poller(10'000'000, [&] { ++polls; return false; }, [&] { ++sleeps; return false; });
  ASSERT_TRUE(loop->start("test"));
  ASSERT_TRUE(eventually([&] { return sleeps.load() == 1; }));
  signal_eventfd(fd.get());
  ASSERT_TRUE(eventually([&] { return sleeps.load() == 2; }));
  loop->stop();
  EXPECT_GT(polls.load(), 1);  // polled again and again before sleeping once more
}

TEST(EventLoop, WorkFoundWhilePreparingToSleepIsPolledInsteadOfSlept) {
  auto loop = *EventLoop::create();
  std::atomic<int> polls{0}, sleeps{0}, pending{3};
  // prepare_sleep reports work three times; poll consumes it each time.
  loop->set_poller(
      0,
      [&] {
        ++polls;
        if (pending.load() == 0) return false;
        --pending;
        return true;
      },
      [&] {
        ++sleeps;
        return pending.load() > 0;
      });
  ASSERT_TRUE(loop->start("test"));
  ASSERT_TRUE(eventually([&] { return pending.load() == 0 && sleeps.load() >= 4; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  loop->stop();
  EXPECT_EQ(sleeps.load(), 4);  // three times work, then the real sleep
  EXPECT_EQ(polls.load(), 3);
}

TEST(EventLoop, ManualModePollsAQuietLoopAndPreparesItToSleep) {
  ManualMode manual;
  auto loop = *EventLoop::create();
  int work = 2, polls = 0, sleeps = 0;
  loop->set_poller(
      1'000'000,
      [&] {
        ++polls;
        if (work == 0) return false;
        --work;
        return true;
      },
      [&] {
        ++sleeps;
        return false;
      });
  ASSERT_TRUE(loop->start("test"));
  EXPECT_TRUE(EventLoop::run_manual_loops_for_testing(100));
  EXPECT_EQ(work, 0);   // polled until the work was done,
  EXPECT_GE(polls, 3);  // then once more finding nothing,
  EXPECT_GE(sleeps, 1);  // and then it would sleep
  loop->stop();
}

}  // namespace
}  // namespace kumo
