#include "net/tap.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <sys/wait.h>

#include <cstdlib>
#include <thread>

namespace kumo::net {
namespace {

// Runs `fn` on a thread inside a fresh network namespace (the namespace lives while fds
// created in it stay open).
template <typename Fn>
void in_fresh_netns(Fn&& fn) {
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      GTEST_SKIP() << "cannot create a network namespace";
    }
    fn();
  });
  t.join();
}

bool can_create_taps() { return ::geteuid() == 0 && ::access("/dev/net/tun", R_OK | W_OK) == 0; }

TEST(Tap, CreatesATapWithVnetHeaders) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto tap = Tap::create("kumotest0");
    ASSERT_TRUE(tap) << tap.error().to_string();
    EXPECT_EQ(tap->name(), "kumotest0");
    EXPECT_TRUE(tap->set_offloads({.csum = true, .tso4 = true, .tso6 = true}));
    EXPECT_TRUE(tap->set_offloads({}));
    iovec iov{nullptr, 0};
    auto n = tap->read_frame(std::span(&iov, 1));
    ASSERT_TRUE(n);
    EXPECT_EQ(*n, 0u);  // nothing waiting
  });
}

TEST(Tap, MultiQueueTapHasOneFdPerQueueThatCanBeDetached) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto taps = Tap::create_multiqueue("", 3);
    ASSERT_TRUE(taps) << taps.error().to_string();
    ASSERT_EQ(taps->size(), 3u);
    for (const Tap& t : *taps) EXPECT_EQ(t.name(), taps->front().name());
    EXPECT_NE((*taps)[1].fd(), (*taps)[2].fd());
    EXPECT_TRUE((*taps)[2].set_enabled(false));
    EXPECT_TRUE((*taps)[2].set_enabled(true));
    EXPECT_TRUE(wait_until_running(taps->front().name(), std::chrono::milliseconds(0)));
  });
}

TEST(Tap, QueuesOnASingleQueueTapOrOutOfRangeAreRefused) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    ASSERT_EQ(std::system("ip tuntap add kumosq0 mode tap vnet_hdr"), 0);
    auto r = Tap::create_multiqueue("kumosq0", 2);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(r.error().message.find("multi-queue"), std::string::npos) << r.error().message;
    EXPECT_EQ(Tap::create_multiqueue("kumosq1", 0).error().kind, ErrorKind::kInvalidInput);
    EXPECT_EQ(Tap::create_multiqueue("kumosq1", Tap::kMaxQueues + 1).error().kind,
              ErrorKind::kInvalidInput);
  });
}

TEST(Tap, IsRunningWhenCreateReturns) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto tap = Tap::create("kumotest0");
    ASSERT_TRUE(tap) << tap.error().to_string();
    // Not waited for, the first frames the host sends the guest would hit a noop qdisc.
    EXPECT_TRUE(wait_until_running(tap->name(), std::chrono::milliseconds(0)));
  });
}

TEST(Tap, WaitingForAnInterfaceThatStaysDownTimesOut) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto r = wait_until_running("lo", std::chrono::milliseconds(5));  // lo is down in a new netns
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("did not come up"), std::string::npos);
  });
}

TEST(Tap, KernelChoosesANameWhenEmpty) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto tap = Tap::create("");
    ASSERT_TRUE(tap) << tap.error().to_string();
    EXPECT_EQ(tap->name().rfind("kumo", 0), 0u);
  });
}

TEST(Tap, MissingBridgeIsAClearError) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto tap = Tap::create("kumotest1");
    ASSERT_TRUE(tap);
    auto st = attach_to_bridge(tap->name(), "nosuchbr0");
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("bridge 'nosuchbr0' does not exist"), std::string::npos);
    auto notbr = attach_to_bridge(tap->name(), "lo");
    ASSERT_FALSE(notbr);
    EXPECT_NE(notbr.error().message.find("not a bridge"), std::string::npos);
  });
}

TEST(Tap, AttachesToAnExistingBridge) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    if (std::system("ip link add kumobr0 type bridge 2>/dev/null") != 0) {
      GTEST_SKIP() << "cannot create a bridge (ip from iproute2 needed)";
    }
    auto tap = Tap::create("kumotest2");
    ASSERT_TRUE(tap);
    EXPECT_TRUE(attach_to_bridge(tap->name(), "kumobr0"));
    // sysfs shows the host's namespace; ask iproute2, which runs in this one.
    EXPECT_EQ(std::system("ip link show kumotest2 | grep -q 'master kumobr0'"), 0);
  });
}

TEST(Tap, DuplicateMacIsDetected) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    ASSERT_EQ(std::system("ip link add kumod0 address 52:54:00:aa:bb:cc type veth peer name kumod1"),
              0);
    auto st = check_mac_unused(*parse_mac("52:54:00:aa:bb:cc"));
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("kumod0"), std::string::npos);
    EXPECT_TRUE(check_mac_unused(*parse_mac("52:54:00:aa:bb:cd")));
  });
}

TEST(Tap, NameOfANonTapInterfaceIsInvalidInput) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto tap = Tap::create("lo");
    ASSERT_FALSE(tap);
    EXPECT_EQ(tap.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(tap.error().message.find("'lo' exists and is not a tap"), std::string::npos)
        << tap.error().message;
  });
}

TEST(Tap, TapHeldByAnotherOpenerIsInvalidInput) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root and /dev/net/tun";
  in_fresh_netns([] {
    auto first = Tap::create("kumotest5");
    ASSERT_TRUE(first) << first.error().to_string();
    auto second = Tap::create("kumotest5");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(second.error().message.find("in use"), std::string::npos) << second.error().message;
  });
}

// Runs `check(Tap::create(name))` in a child process that has dropped to uid 65534 in a fresh
// network namespace; returns the child's exit status (0: check passed).
template <typename Check>
int as_unprivileged(const char* name, Check check) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0 || ::setuid(65534) != 0) ::_exit(3);
    auto tap = Tap::create(name);
    if (tap) ::_exit(1);
    ::_exit(check(tap.error()) ? 0 : 2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Tap, NoPermissionIsInvalidInput) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root to drop privileges";
  EXPECT_EQ(as_unprivileged("kumotest4",
                            [](const Error& e) { return e.kind == ErrorKind::kInvalidInput; }),
            0);
}

TEST(Tap, NoPermissionWithoutANameNamesNoEmptyTap) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root to drop privileges";
  EXPECT_EQ(as_unprivileged("", [](const Error& e) {
              return e.message.find("''") == std::string::npos &&
                     e.message.find("CAP_NET_ADMIN") != std::string::npos;
            }),
            0);
}

TEST(Tap, NoPermissionIsAClearError) {
  if (!can_create_taps()) GTEST_SKIP() << "needs root to drop privileges";
  // Drop CAP_NET_ADMIN by switching to an unprivileged uid in a child process.
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0 || ::setuid(65534) != 0) ::_exit(3);
    auto tap = Tap::create("kumotest3");
    if (tap) ::_exit(1);
    const bool clear = tap.error().message.find("CAP_NET_ADMIN") != std::string::npos ||
                       tap.error().message.find("permission") != std::string::npos;
    ::_exit(clear ? 0 : 2);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace kumo::net
