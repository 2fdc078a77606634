#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace kumo::memory {

// Names the backend in test output (found by argument-dependent lookup).
void PrintTo(Backend backend, std::ostream* os) {
  switch (backend) {
    case Backend::kAnonymous: *os << "anon"; return;
    case Backend::kMemfd: *os << "memfd"; return;
    case Backend::kHugetlb: *os << "hugetlb"; return;
  }
}

namespace {

GuestMemory two_regions() {
  return GuestMemory::create({{GuestAddress(0), 0x10000}, {GuestAddress(0x100000), 0x2000}})
      .value();
}

// The VmFlags line (with a trailing space) of the mapping that holds `host` in
// /proc/self/smaps; "" if none does.
std::string vm_flags_of(const uint8_t* host) {
  const auto address = reinterpret_cast<uintptr_t>(host);
  std::ifstream smaps("/proc/self/smaps");
  bool in_mapping = false;
  for (std::string line; std::getline(smaps, line);) {
    const std::string first_word = line.substr(0, line.find(' '));
    const size_t dash = first_word.find('-');
    if (dash != std::string::npos && !first_word.ends_with(':')) {
      const uintptr_t lo = std::stoull(first_word.substr(0, dash), nullptr, 16);
      const uintptr_t hi = std::stoull(first_word.substr(dash + 1), nullptr, 16);
      in_mapping = lo <= address && address < hi;
    } else if (in_mapping && line.starts_with("VmFlags:")) {
      return line + " ";
    }
  }
  return "";
}

uint64_t free_huge_pages() { return unreserved_huge_pages().value_or(0); }

TEST(GuestMemory, WriteThenReadRoundTrips) {
  GuestMemory mem = two_regions();
  ASSERT_TRUE(mem.write_obj<uint64_t>(GuestAddress(0x100008), 0x1122334455667788ull));
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x100008)).value(), 0x1122334455667788ull);
}

TEST(GuestMemory, AccessInHoleIsGuestError) {
  GuestMemory mem = two_regions();
  auto r = mem.read_obj<uint32_t>(GuestAddress(0x20000));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kGuest);
}

TEST(GuestMemory, AccessStraddlingRegionEndIsRejected) {
  GuestMemory mem = two_regions();
  EXPECT_FALSE(mem.read_obj<uint64_t>(GuestAddress(0xfffc)));
  EXPECT_TRUE(mem.read_obj<uint32_t>(GuestAddress(0xfffc)));
}

TEST(GuestMemory, WrappingRangeIsRejected) {
  GuestMemory mem = two_regions();
  EXPECT_FALSE(mem.host_span(GuestAddress(0x1000), UINT64_MAX));
  EXPECT_FALSE(mem.host_span(GuestAddress(UINT64_MAX - 1), 4));
}

TEST(GuestMemory, UnalignedOrOverlappingRegionsAreRejected) {
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0x100), 0x1000}}));
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0x2000}, {GuestAddress(0x1000), 0x1000}}));
  EXPECT_FALSE(GuestMemory::create({{GuestAddress(0), 0}}));
}

TEST(GuestMemory, DefaultBackingIsAnonymousWithoutMemfd) {
  GuestMemory mem = two_regions();
  EXPECT_EQ(mem.regions()[0].backend(), Backend::kAnonymous);
  EXPECT_EQ(mem.regions()[0].memfd(), -1);
  EXPECT_EQ(mem.read_obj<uint64_t>(GuestAddress(0x40)).value(), 0u);
  EXPECT_EQ(mem.total_bytes(), 0x12000u);
}

TEST(GuestMemory, AnonymousRamIsAdvisedForHugePagesAndStaysInCoreDumps) {
  if (!std::filesystem::exists("/sys/kernel/mm/transparent_hugepage")) {
    GTEST_SKIP() << "host kernel without transparent huge pages";
  }
  GuestMemory mem = two_regions();
  for (const GuestRegion& r : mem.regions()) {
    const std::string flags = vm_flags_of(r.host_base());
    ASSERT_FALSE(flags.empty()) << "no mapping holds the region's host address";
    EXPECT_NE(flags.find(" hg "), std::string::npos) << flags;  // MADV_HUGEPAGE
    EXPECT_EQ(flags.find(" dd "), std::string::npos) << flags;  // MADV_DONTDUMP
  }
}


TEST(GuestMemory, AtomicLoadAndStoreRoundTripAndRejectMisalignment) {
  auto mem = two_regions();
  ASSERT_TRUE(mem.store_atomic<uint16_t>(GuestAddress(0x100002), 0xbeef));
  EXPECT_EQ(*mem.load_atomic<uint16_t>(GuestAddress(0x100002)), 0xbeef);
  ASSERT_TRUE(mem.store_atomic<uint64_t>(GuestAddress(0x8), 0x0123456789abcdefULL));
  EXPECT_EQ(*mem.read_obj<uint64_t>(GuestAddress(0x8)), 0x0123456789abcdefULL);
  EXPECT_EQ(mem.load_atomic<uint16_t>(GuestAddress(0x101)).error().kind, ErrorKind::kGuest);
  EXPECT_EQ(mem.store_atomic<uint32_t>(GuestAddress(0x102), 1).error().kind, ErrorKind::kGuest);
  EXPECT_FALSE(mem.load_atomic<uint16_t>(GuestAddress(0x20000)));  // in the hole
}

// The bug this guards against: a virtio device read the driver's 16-bit available index with
// a byte copy and saw 0x13ff while the driver moved it from 0x12ff to 0x1300, took it for
// 256 new buffers and declared the ring broken.
TEST(GuestMemory, AtomicLoadNeverTearsAValueTheGuestIsChanging) {
  auto mem = two_regions();
  const GuestAddress idx(0x1002);
  std::atomic<bool> stop{false};
  std::thread guest([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      (void)mem.store_atomic<uint16_t>(idx, 0x12ff);
      (void)mem.store_atomic<uint16_t>(idx, 0x1300);
    }
  });
  for (int i = 0; i < 2'000'000; ++i) {
    const uint16_t v = *mem.load_atomic<uint16_t>(idx);
    if (v != 0x12ff && v != 0x1300 && v != 0) {
      stop = true;
      guest.join();
      FAIL() << "torn read " << std::hex << v;
    }
  }
  stop = true;
  guest.join();
}

TEST(GuestMemory, AnonymousRamIsNotInheritedByAChildProcess) {
  GuestMemory mem = two_regions();
  const std::string flags = vm_flags_of(mem.regions()[0].host_base());
  EXPECT_NE(flags.find(" dc "), std::string::npos) << flags;  // MADV_DONTFORK
}

TEST(GuestMemory, RegionStartsOnHugePageBoundaryWhateverItsSize) {
  GuestMemory mem = GuestMemory::create({{GuestAddress(0), 0x3000},
                                         {GuestAddress(0x200000), 3 * kHugePageBytes},
                                         {GuestAddress(0x1000000), kHugePageBytes + 0x1000}})
                        .value();
  for (const GuestRegion& r : mem.regions()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.host_base()) % kHugePageBytes, 0u)
        << "region at " << r.start().raw();
  }
}

TEST(GuestMemory, HugetlbNeedsWholeHugePages) {
  auto r = GuestMemory::create({{GuestAddress(0), 0x10000}}, Backend::kHugetlb);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("2 MiB"), std::string::npos) << r.error().message;
}

TEST(GuestMemory, HugetlbBeyondThePoolIsInvalidInput) {
  const uint64_t available = free_huge_pages();
  if (available > 4096) GTEST_SKIP() << available << " free huge pages: too many to exhaust";
  const uint64_t bytes = (available + 1) * kHugePageBytes;
  auto r = GuestMemory::create({{GuestAddress(0), bytes}}, Backend::kHugetlb);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("vm.nr_hugepages"), std::string::npos) << r.error().message;
}

TEST(GuestMemory, MovedFromMemoryHasNoRegions) {
  GuestMemory a = two_regions();
  ASSERT_TRUE(a.write_obj<uint32_t>(GuestAddress(0x10), 7));
  GuestMemory b = std::move(a);
  EXPECT_TRUE(a.regions().empty());  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  EXPECT_EQ(a.total_bytes(), 0u);    // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(a.read_obj<uint32_t>(GuestAddress(0x10)));  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.read_obj<uint32_t>(GuestAddress(0x10)).value(), 7u);
}

TEST(GuestRegion, MovedFromRegionOwnsNothing) {
  void* host = ::mmap(nullptr, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(host, MAP_FAILED);
  GuestRegion a(GuestAddress(0x1000), 0x1000, Backend::kMemfd, UniqueFd(::memfd_create("region-test", MFD_CLOEXEC)),
                static_cast<uint8_t*>(host));
  GuestRegion b(std::move(a));
  EXPECT_EQ(a.host_base(), nullptr);  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  EXPECT_EQ(a.size_bytes(), 0u);      // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(a.memfd(), -1);           // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(a.discard());           // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.host_base(), host);
  EXPECT_EQ(b.size_bytes(), 0x1000u);
  EXPECT_GE(b.memfd(), 0);
}

// --- Behaviour every backend shares -------------------------------------------------------

class EveryBackend : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (GetParam() == Backend::kHugetlb && free_huge_pages() < 2) {
      GTEST_SKIP() << "fewer than 2 free 2 MiB hugetlb pages (sysctl vm.nr_hugepages)";
    }
    mem_.emplace(GuestMemory::create({{GuestAddress(0), kHugePageBytes},
                                      {GuestAddress(0x800000), kHugePageBytes}},
                                     GetParam())
                     .value());
  }
  std::optional<GuestMemory> mem_;
};

TEST_P(EveryBackend, MemoryIsZeroInitially) {
  EXPECT_EQ(mem_->read_obj<uint64_t>(GuestAddress(0x40)).value(), 0u);
  EXPECT_EQ(mem_->read_obj<uint64_t>(GuestAddress(0x9ffff8)).value(), 0u);
}

TEST_P(EveryBackend, HostMappingIsHugePageAligned) {
  for (const GuestRegion& r : mem_->regions()) {
    EXPECT_EQ(r.backend(), GetParam());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(r.host_base()) % kHugePageBytes, 0u);
  }
}

TEST_P(EveryBackend, DiscardAllZeroesEveryRegion) {
  ASSERT_TRUE(mem_->write_obj<uint64_t>(GuestAddress(0x10), ~0ull));
  ASSERT_TRUE(mem_->write_obj<uint64_t>(GuestAddress(0x801000), ~0ull));
  ASSERT_TRUE(mem_->discard_all());
  EXPECT_EQ(mem_->read_obj<uint64_t>(GuestAddress(0x10)).value(), 0u);
  EXPECT_EQ(mem_->read_obj<uint64_t>(GuestAddress(0x801000)).value(), 0u);
}

TEST_P(EveryBackend, MemfdHoldsTheGuestBytesUnlessAnonymous) {
  ASSERT_TRUE(mem_->write_obj<uint64_t>(GuestAddress(0x801000), 0x0123456789abcdefull));
  const int fd = mem_->regions()[1].memfd();
  if (GetParam() == Backend::kAnonymous) {
    EXPECT_EQ(fd, -1);
    return;
  }
  ASSERT_GE(fd, 0);
  uint64_t value = 0;
  ASSERT_EQ(::pread(fd, &value, sizeof(value), 0x1000), static_cast<ssize_t>(sizeof(value)));
  EXPECT_EQ(value, 0x0123456789abcdefull);
}

INSTANTIATE_TEST_SUITE_P(Backends, EveryBackend,
                         ::testing::Values(Backend::kAnonymous, Backend::kMemfd,
                                           Backend::kHugetlb),
                         [](const ::testing::TestParamInfo<Backend>& param_info) {
                           return ::testing::PrintToString(param_info.param);
                         });

}  // namespace
}  // namespace kumo::memory
