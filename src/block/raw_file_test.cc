#include "block/raw_file.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "block/aligned_buffer.h"
#include "block/open_backend.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::ScratchDir;
using testing::wait_completions;

std::string make_file(const ScratchDir& dir, const std::string& name, uint64_t size) {
  const std::string p = dir.file(name);
  HostFile f = *HostFile::create(p);
  EXPECT_TRUE(f.truncate(size));
  return p;
}

std::unique_ptr<BlockBackend> open_ok(const std::string& path, OpenOptions o = {}) {
  auto r = open_block_backend(path, o);
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? std::move(*r) : nullptr;
}

TEST(RawFile, WriteThenReadRoundTrips) {
  ScratchDir dir;
  auto disk = open_ok(make_file(dir, "a.raw", 1 << 20));
  std::vector<uint8_t> in(4096, 0xab), out(4096);
  ASSERT_TRUE(disk->write(8192, in));
  ASSERT_TRUE(disk->read(8192, out));
  EXPECT_EQ(in, out);
  EXPECT_EQ(disk->size_bytes(), 1u << 20);
}

TEST(RawFile, AccessPastEndIsInvalidInput) {
  ScratchDir dir;
  auto disk = open_ok(make_file(dir, "a.raw", 4096));
  std::vector<uint8_t> buf(512);
  auto st = disk->read(4096 - 256, buf);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kInvalidInput);
  EXPECT_FALSE(disk->write(UINT64_MAX - 10, buf));
  EXPECT_FALSE(disk->discard(0, 8192));
}

TEST(RawFile, MissingFileIsInvalidInputNamingTheFile) {
  ScratchDir dir;
  auto r = open_block_backend(dir.file("nope.raw"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("nope.raw"), std::string::npos);
  EXPECT_NE(r.error().message.find("no such file"), std::string::npos);
}

TEST(RawFile, DirectoryIsInvalidInput) {
  ScratchDir dir;
  auto r = open_block_backend(dir.path(), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("directory"), std::string::npos);
}

TEST(RawFile, NoPermissionIsInvalidInput) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root bypasses file permissions";
  }
  ScratchDir dir;
  const std::string p = make_file(dir, "locked.raw", 4096);
  ASSERT_EQ(::chmod(p.c_str(), 0), 0);
  auto r = open_block_backend(p, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("permission denied"), std::string::npos);
}

TEST(RawFile, ReadOnlyRefusesWrites) {
  ScratchDir dir;
  auto disk = open_ok(make_file(dir, "a.raw", 4096), {.read_only = true});
  std::vector<uint8_t> buf(512);
  EXPECT_TRUE(disk->read(0, buf));
  EXPECT_FALSE(disk->write(0, buf));
  ASSERT_TRUE(disk->submit({.op = IoOp::kWrite, .offset_bytes = 0, .cookie = 7}));
  auto c = wait_completions(*disk, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].result, -EROFS);
}

TEST(RawFile, WriteZeroesAndDiscardReadBackZeros) {
  ScratchDir dir;
  auto disk = open_ok(make_file(dir, "a.raw", 1 << 20));
  std::vector<uint8_t> in(1 << 20, 0x5a), out(1 << 20);
  ASSERT_TRUE(disk->write(0, in));
  ASSERT_TRUE(disk->write_zeroes(4096, 8192));
  ASSERT_TRUE(disk->discard(65536, 65536));
  ASSERT_TRUE(disk->read(0, out));
  for (size_t i = 0; i < out.size(); ++i) {
    const bool zero = (i >= 4096 && i < 12288) || (i >= 65536 && i < 131072);
    ASSERT_EQ(out[i], zero ? 0 : 0x5a) << "byte " << i;
  }
}

class RawAsync : public ::testing::TestWithParam<std::tuple<EngineKind, CacheMode>> {};

TEST_P(RawAsync, ManyRequestsInFlightCompleteWithTheirCookies) {
  ScratchDir dir;
  const auto [engine, cache] = GetParam();
  auto disk = open_ok(make_file(dir, "a.raw", 1 << 22), {.cache = cache, .io = engine});
  constexpr size_t kReqs = 64;
  constexpr size_t kLen = 4096;
  AlignedBuffer buf(kReqs * kLen);  // O_DIRECT accepts it
  ASSERT_TRUE(buf);
  for (size_t i = 0; i < kReqs * kLen; ++i) {
    buf.data()[i] = static_cast<uint8_t>(i / kLen + 1);
  }
  std::vector<iovec> iov(kReqs);
  for (size_t i = 0; i < kReqs; ++i) {
    iov[i] = {buf.data() + i * kLen, kLen};
    ASSERT_TRUE(disk->submit({.op = IoOp::kWrite,
                              .offset_bytes = i * 2 * kLen,
                              .iov = std::span<const iovec>(&iov[i], 1),
                              .cookie = 1000 + i}));
  }
  auto done = wait_completions(*disk, kReqs);
  ASSERT_EQ(done.size(), kReqs);
  std::vector<bool> seen(kReqs);
  for (const IoCompletion& c : done) {
    ASSERT_GE(c.cookie, 1000u);
    EXPECT_EQ(c.result, static_cast<int64_t>(kLen));
    seen[c.cookie - 1000] = true;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(kReqs));

  // Read everything back asynchronously, then flush.
  std::memset(buf.data(), 0, kReqs * kLen);
  for (size_t i = 0; i < kReqs; ++i) {
    ASSERT_TRUE(disk->submit({.op = IoOp::kRead,
                              .offset_bytes = i * 2 * kLen,
                              .iov = std::span<const iovec>(&iov[i], 1),
                              .cookie = i}));
  }
  ASSERT_EQ(wait_completions(*disk, kReqs).size(), kReqs);
  for (size_t i = 0; i < kReqs * kLen; ++i) {
    ASSERT_EQ(buf.data()[i], static_cast<uint8_t>(i / kLen + 1));
  }
  ASSERT_TRUE(disk->submit({.op = IoOp::kFlush, .cookie = 99}));
  auto f = wait_completions(*disk, 1);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].result, 0);
}

TEST_P(RawAsync, MisalignedRequestsWorkInEveryCacheMode) {
  ScratchDir dir;
  const auto [engine, cache] = GetParam();
  auto disk = open_ok(make_file(dir, "a.raw", 1 << 16), {.cache = cache, .io = engine});
  std::vector<uint8_t> data(1000, 0x77);
  iovec v{data.data() + 1, 999};
  ASSERT_TRUE(disk->submit({.op = IoOp::kWrite,
                            .offset_bytes = 513,
                            .iov = std::span<const iovec>(&v, 1),
                            .cookie = 1}));
  auto c = wait_completions(*disk, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].result, 999);
  std::vector<uint8_t> out(999);
  ASSERT_TRUE(disk->read(513, out));
  EXPECT_EQ(out, std::vector<uint8_t>(999, 0x77));
}

TEST_P(RawAsync, OutOfRangeRequestCompletesWithEinval) {
  ScratchDir dir;
  const auto [engine, cache] = GetParam();
  auto disk = open_ok(make_file(dir, "a.raw", 4096), {.cache = cache, .io = engine});
  ASSERT_TRUE(
      disk->submit({.op = IoOp::kDiscard, .offset_bytes = 4096, .len_bytes = 1, .cookie = 5}));
  auto c = wait_completions(*disk, 1);
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].cookie, 5u);
  EXPECT_EQ(c[0].result, -EINVAL);
}

TEST_P(RawAsync, PluggedBatchIsSubmittedAtUnplug) {
  ScratchDir dir;
  const auto [engine, cache] = GetParam();
  auto disk = open_ok(make_file(dir, "a.raw", 1 << 20), {.cache = cache, .io = engine});
  constexpr size_t kReqs = 16;
  constexpr size_t kLen = 4096;
  AlignedBuffer buf(kReqs * kLen);  // O_DIRECT accepts it
  ASSERT_TRUE(buf);
  std::memset(buf.data(), 0x3c, kReqs * kLen);
  std::vector<iovec> iov(kReqs);
  disk->plug();
  for (size_t i = 0; i < kReqs; ++i) {
    iov[i] = {buf.data() + i * kLen, kLen};
    ASSERT_TRUE(disk->submit({.op = IoOp::kWrite,
                              .offset_bytes = i * kLen,
                              .iov = std::span<const iovec>(&iov[i], 1),
                              .cookie = 1 + i}));
  }
  disk->unplug();
  auto done = wait_completions(*disk, kReqs);
  ASSERT_EQ(done.size(), kReqs);
  for (const IoCompletion& c : done) {
    EXPECT_EQ(c.result, static_cast<int64_t>(kLen)) << "cookie " << c.cookie;
  }
  std::vector<uint8_t> out(kReqs * kLen);
  ASSERT_TRUE(disk->read(0, out));
  EXPECT_EQ(out, std::vector<uint8_t>(kReqs * kLen, 0x3c));
}

// io_uring holds plugged requests of a buffered file until unplug() (one system call for the
// batch of page-cache copies) but hands those of an O_DIRECT file to the kernel at once (the
// device starts on the first while the rest are queued; IoUringEngine's header).
TEST(RawIoUring, PlugHoldsBufferedRequestsButNotDirectOnes) {
  for (const CacheMode cache : {CacheMode::kWriteback, CacheMode::kNone}) {
    ScratchDir dir;
    auto disk = open_ok(make_file(dir, "a.raw", 1 << 16), {.cache = cache, .io = EngineKind::kIoUring});
    AlignedBuffer buf(4096);
    ASSERT_TRUE(buf);
    iovec v{buf.data(), 4096};
    disk->plug();
    ASSERT_TRUE(disk->submit({.op = IoOp::kRead,
                              .offset_bytes = 0,
                              .iov = std::span<const iovec>(&v, 1),
                              .cookie = 7}));
    pollfd pfd{disk->completion_fd(), POLLIN, 0};
    const bool direct = cache == CacheMode::kNone;
    EXPECT_EQ(::poll(&pfd, 1, direct ? 5000 : 100), direct ? 1 : 0)
        << (direct ? "O_DIRECT: not submitted before unplug" : "buffered: submitted while plugged");
    disk->unplug();
    auto done = wait_completions(*disk, 1);
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].result, 4096);
  }
}

// A batch of large reads (the io_uring engine hands all but the first to its worker threads
// in page-cache mode), each of two iovecs: every read gets its own bytes and cookie.
TEST_P(RawAsync, BatchOfLargeReadsReadsTheRightBytes) {
  ScratchDir dir;
  const auto [engine, cache] = GetParam();
  constexpr size_t kReqs = 8;
  constexpr size_t kLen = 1 << 20;
  const std::string path = make_file(dir, "a.raw", kReqs * kLen);
  std::vector<uint8_t> data(kReqs * kLen);
  std::mt19937 rng(7);
  for (uint8_t& b : data) {
    b = static_cast<uint8_t>(rng());
  }
  ASSERT_TRUE(open_ok(path)->write(0, data));
  auto disk = open_ok(path, {.read_only = true, .cache = cache, .io = engine});
  AlignedBuffer buf(kReqs * kLen);  // O_DIRECT accepts it
  ASSERT_TRUE(buf);
  std::memset(buf.data(), 0xee, kReqs * kLen);
  std::vector<iovec> iov(2 * kReqs);
  disk->plug();
  for (size_t i = 0; i < kReqs; ++i) {
    // Request i reads block (i * 3) % kReqs into slot i: a wrong offset or slot shows.
    uint8_t* slot = buf.data() + i * kLen;
    iov[2 * i] = {slot, kLen / 4};
    iov[2 * i + 1] = {slot + kLen / 4, kLen - kLen / 4};
    ASSERT_TRUE(disk->submit({.op = IoOp::kRead,
                              .offset_bytes = (i * 3) % kReqs * kLen,
                              .iov = std::span<const iovec>(&iov[2 * i], 2),
                              .cookie = 10 + i}));
  }
  disk->unplug();
  auto done = wait_completions(*disk, kReqs);
  ASSERT_EQ(done.size(), kReqs);
  for (const IoCompletion& c : done) {
    EXPECT_EQ(c.result, static_cast<int64_t>(kLen)) << "cookie " << c.cookie;
  }
  for (size_t i = 0; i < kReqs; ++i) {
    const size_t from = (i * 3) % kReqs * kLen;
    ASSERT_EQ(std::memcmp(buf.data() + i * kLen, data.data() + from, kLen), 0) << "read " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Engines, RawAsync,
    ::testing::Combine(::testing::Values(EngineKind::kIoUring, EngineKind::kThreadPool),
                       ::testing::Values(CacheMode::kWriteback, CacheMode::kNone)));

TEST(HostFile, WriteBudgetDropsLaterWrites) {
  ScratchDir dir;
  HostFile f = *HostFile::create(dir.file("x"));
  std::vector<uint8_t> a(16, 1), b(16, 2), out(16);
  f.set_write_budget(1);
  ASSERT_TRUE(f.pwrite_full(0, a));
  ASSERT_TRUE(f.pwrite_full(0, b));  // dropped
  ASSERT_TRUE(f.pread_full(0, out));
  EXPECT_EQ(out, a);
}

TEST(HostFile, MoveEmptiesSource) {
  ScratchDir dir;
  HostFile f = *HostFile::create(dir.file("x"));
  HostFile g(std::move(f));
  EXPECT_EQ(f.fd(), -1);  // NOLINT(bugprone-use-after-move): the moved-from state is the test
  EXPECT_GE(g.fd(), 0);
}

}  // namespace
}  // namespace kumo::block
