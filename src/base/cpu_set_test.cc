#include "base/cpu_set.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <thread>

namespace kumo {
namespace {

TEST(CpuList, ParsesCpusAndRangesSortedAndUnique) {
  auto l = parse_cpu_list("6,0-3,2", "--x");
  ASSERT_TRUE(l) << l.error().message;
  EXPECT_EQ(*l, (CpuList{0, 1, 2, 3, 6}));
  EXPECT_EQ(format_cpu_list(*l), "0-3,6");
  EXPECT_EQ(*parse_cpu_list("1023", "--x"), CpuList{1023});
}

TEST(CpuList, MalformedListsNameTheOption) {
  for (const char* bad : {"", ",", "1,", "a", "3-1", "1-", "-1", "1024", "0x1", " 1", "1--2"}) {
    auto l = parse_cpu_list(bad, "--io-cpus");
    ASSERT_FALSE(l) << "'" << bad << "'";
    EXPECT_EQ(l.error().kind, ErrorKind::kInvalidInput);
    EXPECT_NE(l.error().message.find("--io-cpus"), std::string::npos);
  }
}

TEST(CpuList, CpusOutsideTheProcessAffinityAreRefused) {
  cpu_set_t set;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
  unsigned first = 0;
  while (!CPU_ISSET(first, &set)) ++first;
  EXPECT_TRUE(check_cpus_allowed({first}, "--vcpu-cpus"));
  auto r = check_cpus_allowed({kMaxCpu}, "--vcpu-cpus");  // no test host has 1024 CPUs
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("CPU 1023 is not available"), std::string::npos)
      << r.error().message;
}

TEST(CpuList, PinThreadRestrictsTheCaller) {
  cpu_set_t set;
  ASSERT_EQ(::sched_getaffinity(0, sizeof(set), &set), 0);
  unsigned first = 0;
  while (!CPU_ISSET(first, &set)) ++first;
  std::thread t([&] {
    ASSERT_TRUE(pin_thread(pthread_self(), {first}));
    cpu_set_t now;
    ASSERT_EQ(::sched_getaffinity(0, sizeof(now), &now), 0);
    EXPECT_EQ(CPU_COUNT(&now), 1);
    EXPECT_TRUE(CPU_ISSET(first, &now));
  });
  t.join();
}

}  // namespace
}  // namespace kumo
