// The asynchronous path of Qcow2Image (submit/reap), which virtio-blk and kumo img bench use:
// every answer is checked against the synchronous path or against known data.

#include <gtest/gtest.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

#include "block/aligned_buffer.h"
#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::pattern;
using testing::ScratchDir;
using testing::wait_completions;

constexpr uint64_t kCluster = 65536;

// A page-aligned buffer (O_DIRECT accepts it), filled with one byte.
class Buffer {
 public:
  explicit Buffer(size_t len, uint8_t fill) : mem_(len) {
    EXPECT_TRUE(mem_);
    std::memset(mem_.data(), fill, len);
  }
  [[nodiscard]] uint8_t* data() { return mem_.data(); }
  [[nodiscard]] std::vector<uint8_t> bytes() const {
    return std::vector<uint8_t>(mem_.data(), mem_.data() + mem_.size());
  }

 private:
  AlignedBuffer mem_;
};

struct AsyncCase {
  EngineKind engine;
  CacheMode cache;
  bool read_only;  // read-only opens get the plain io_uring engine, read-write the hybrid one
};

class Qcow2Async : public ::testing::TestWithParam<AsyncCase> {
 protected:
  OpenOptions options() const {
    return {.read_only = GetParam().read_only, .cache = GetParam().cache,
            .io = GetParam().engine};
  }
  std::unique_ptr<Qcow2Image> open(const std::string& path, OpenOptions o) {
    auto r = Qcow2Image::open(path, o);
    EXPECT_TRUE(r) << r.error().to_string();
    return r ? std::move(*r) : nullptr;
  }
  // One request through submit/reap; returns its completion result.
  int64_t run(Qcow2Image& img, IoOp op, uint64_t offset, std::span<const iovec> iov,
              uint64_t cookie = 42) {
    auto st = img.submit({.op = op, .offset_bytes = offset, .iov = iov, .cookie = cookie});
    EXPECT_TRUE(st) << st.error().to_string();
    auto done = wait_completions(img, 1);
    EXPECT_EQ(done.size(), 1u);
    if (done.size() != 1) {
      return INT64_MIN;
    }
    EXPECT_EQ(done[0].cookie, cookie);
    return done[0].result;
  }
  // Reads [offset, +len) asynchronously as two iovecs split at `split` bytes.
  std::vector<uint8_t> async_read(Qcow2Image& img, uint64_t offset, size_t len, size_t split) {
    Buffer buf(len, 0xee);
    iovec v[2] = {{buf.data(), split}, {buf.data() + split, len - split}};
    EXPECT_EQ(run(img, IoOp::kRead, offset, std::span<const iovec>(v, split == len ? 1 : 2)),
              static_cast<int64_t>(len));
    return buf.bytes();
  }
  std::vector<uint8_t> sync_read(Qcow2Image& img, uint64_t offset, size_t len) {
    std::vector<uint8_t> out(len);
    EXPECT_TRUE(img.read(offset, out));
    return out;
  }
  // Closes `img`, then reopens `path` read-only: it reads `expect` from offset 0 and checks
  // without corruption or leaks.
  void expect_persisted(Qcow2Image& img, const std::string& path,
                        const std::vector<uint8_t>& expect) {
    ASSERT_TRUE(img.close());
    auto again = open(path, {.read_only = true});
    ASSERT_NE(again, nullptr);
    EXPECT_EQ(sync_read(*again, 0, expect.size()), expect);
    auto report = again->check(RepairMode::kNone);
    ASSERT_TRUE(report);
    EXPECT_EQ(report->corruptions, 0u);
    EXPECT_EQ(report->leaks, 0u);
  }
};

// Image layout used by several tests (64 KiB clusters, 1 MiB disk):
//   cluster 0, 1: data; 2: unallocated; 3: zero cluster (v3); 4: compressed; 5, 6: data.
// With extended L2 entries the zero cluster is 32 zero subclusters.
std::vector<uint8_t> make_mixed_image(const std::string& path,
                                      const std::string& backing = "",
                                      bool extended_l2 = false) {
  Qcow2CreateOptions c{.size_bytes = 1 << 20, .extended_l2 = extended_l2};
  if (!backing.empty()) {
    c.backing_file = backing;
    c.backing_format = "qcow2";
  }
  EXPECT_TRUE(create_qcow2(path, c));
  auto img = Qcow2Image::open(path, {});
  EXPECT_TRUE(img);
  auto data = pattern(1 << 20, 9);
  EXPECT_TRUE((*img)->write(0, std::span(data).first(2 * kCluster)));
  EXPECT_TRUE((*img)->write(5 * kCluster, std::span(data).subspan(5 * kCluster, 2 * kCluster)));
  EXPECT_TRUE((*img)->write_zeroes(3 * kCluster, kCluster));
  std::vector<uint8_t> compressible(kCluster);
  for (size_t i = 0; i < compressible.size(); ++i) {
    compressible[i] = static_cast<uint8_t>(i / 300);
  }
  EXPECT_TRUE((*img)->write_compressed(4 * kCluster, compressible));
  std::memcpy(data.data() + 4 * kCluster, compressible.data(), kCluster);
  EXPECT_TRUE((*img)->close());
  return data;
}

// A 1 MiB qcow2 base holding `data` everywhere (for overlays over a full base).
void make_full_base(const std::string& path, const std::vector<uint8_t>& data) {
  ASSERT_TRUE(create_qcow2(path, {.size_bytes = 1 << 20}));
  auto img = Qcow2Image::open(path, {});
  ASSERT_TRUE(img);
  ASSERT_TRUE((*img)->write(0, data));
  ASSERT_TRUE((*img)->close());
}

TEST_P(Qcow2Async, ReadInsideOneDataClusterReturnsItsBytes) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  const auto data = make_mixed_image(p);
  auto img = open(p, options());
  EXPECT_EQ(async_read(*img, kCluster + 8192, 4096, 4096),
            std::vector<uint8_t>(data.begin() + kCluster + 8192,
                                 data.begin() + kCluster + 12288));
  // Two iovecs, one request inside one cluster.
  EXPECT_EQ(async_read(*img, 4096, 16384, 8192),
            std::vector<uint8_t>(data.begin() + 4096, data.begin() + 20480));
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, EveryClusterKindReadsAsTheSynchronousPathDoes) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  make_mixed_image(p);
  auto img = open(p, options());
  for (uint64_t c = 0; c < 8; ++c) {
    EXPECT_EQ(async_read(*img, c * kCluster + 4096, 4096, 4096),
              sync_read(*img, c * kCluster + 4096, 4096))
        << "cluster " << c;
  }
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, RequestsSpanningClustersOfMixedKindsReadEveryPiece) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  make_mixed_image(p);
  auto img = open(p, options());
  // [1.5, 2.5) data → unallocated; [2.5, 4.5) unallocated → zero → compressed;
  // [0.5, 1.5) data → data; the whole disk in one request.
  for (auto [start, len] : {std::pair<uint64_t, size_t>{kCluster + 32768, kCluster},
                            {2 * kCluster + 32768, 2 * kCluster},
                            {32768, kCluster},
                            {0, 1 << 20}}) {
    EXPECT_EQ(async_read(*img, start, len, 4096 * 3), sync_read(*img, start, len))
        << "start " << start;
  }
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, UnallocatedClustersShowTheBackingFileAndZeroClustersHideIt) {
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2");
  const std::string top = dir.file("top.qcow2");
  const auto under = pattern(1 << 20, 3);
  ASSERT_NO_FATAL_FAILURE(make_full_base(base, under));
  const auto data = make_mixed_image(top, "base.qcow2");
  auto img = open(top, options());
  // Cluster 2 is unallocated in the overlay: the base's bytes.
  EXPECT_EQ(async_read(*img, 2 * kCluster + 4096, 4096, 4096),
            std::vector<uint8_t>(under.begin() + 2 * kCluster + 4096,
                                 under.begin() + 2 * kCluster + 8192));
  // Cluster 3 is a zero cluster: zeros, not the base's bytes.
  EXPECT_EQ(async_read(*img, 3 * kCluster, 4096, 4096), std::vector<uint8_t>(4096, 0));
  // Across overlay data, backing data and the zero cluster.
  EXPECT_EQ(async_read(*img, kCluster + 4096, 2 * kCluster, 4096),
            sync_read(*img, kCluster + 4096, 2 * kCluster));
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, WritesLandInEveryClusterKindAndReadBack) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2");
  const std::string top = dir.file("top.qcow2");
  ASSERT_NO_FATAL_FAILURE(make_full_base(base, pattern(1 << 20, 4)));
  make_mixed_image(top, "base.qcow2");
  auto img = open(top, options());
  auto expect = sync_read(*img, 0, 1 << 20);
  const auto in = pattern(1 << 20, 5);
  uint64_t cookie = 1;
  // Inside one cluster of each kind, then spanning all kinds at once.
  for (auto [start, len] : {std::pair<uint64_t, size_t>{4096, 4096},
                            {2 * kCluster + 8192, 4096},
                            {3 * kCluster + 8192, 4096},
                            {4 * kCluster + 8192, 4096},
                            {kCluster + 61440, 5 * kCluster}}) {
    Buffer buf(len, 0);
    std::memcpy(buf.data(), in.data() + start, len);
    iovec v{buf.data(), len};
    EXPECT_EQ(run(*img, IoOp::kWrite, start, std::span<const iovec>(&v, 1), cookie++),
              static_cast<int64_t>(len));
    std::memcpy(expect.data() + start, in.data() + start, len);
  }
  EXPECT_EQ(async_read(*img, 0, 1 << 20, 65536), expect);
  expect_persisted(*img, top, expect);
}

TEST_P(Qcow2Async, SubclustersTakeWritesInPlaceAndByAllocation) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2");
  const std::string top = dir.file("top.qcow2");
  ASSERT_NO_FATAL_FAILURE(make_full_base(base, pattern(1 << 20, 4)));
  make_mixed_image(top, "base.qcow2", true);
  auto img = open(top, options());
  auto expect = sync_read(*img, 0, 1 << 20);
  const auto in = pattern(1 << 20, 6);
  uint64_t cookie = 1;
  // A written cluster, two subclusters of an unallocated one (allocated, then rewritten in
  // place, then their neighbours), zero subclusters, the compressed cluster, all at once.
  for (auto [start, len] : {std::pair<uint64_t, size_t>{4096, 4096},
                            {2 * kCluster + 8192, 4096},
                            {2 * kCluster + 8192, 4096},
                            {2 * kCluster + 4096, 16384},
                            {3 * kCluster + 8192, 4096},
                            {4 * kCluster + 8192, 4096},
                            {kCluster + 61440, 5 * kCluster}}) {
    Buffer buf(len, 0);
    std::memcpy(buf.data(), in.data() + start + cookie, len);
    iovec v{buf.data(), len};
    EXPECT_EQ(run(*img, IoOp::kWrite, start, std::span<const iovec>(&v, 1), cookie),
              static_cast<int64_t>(len));
    std::memcpy(expect.data() + start, in.data() + start + cookie, len);
    ++cookie;
  }
  EXPECT_EQ(async_read(*img, 0, 1 << 20, 65536), expect);
  expect_persisted(*img, top, expect);
}

TEST_P(Qcow2Async, WriteToAClusterSharedWithASnapshotCopiesIt) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string p = dir.file("s.qcow2");
  const auto data = make_mixed_image(p);
  {
    auto img = open(p, {});
    ASSERT_TRUE(img->snapshot_create("before"));
    ASSERT_TRUE(img->close());
  }
  auto img = open(p, options());
  Buffer buf(4096, 0x11);
  iovec v{buf.data(), 4096};
  EXPECT_EQ(run(*img, IoOp::kWrite, 8192, std::span<const iovec>(&v, 1)), 4096);
  auto expect = std::vector<uint8_t>(data.begin(), data.begin() + kCluster);
  std::memset(expect.data() + 8192, 0x11, 4096);
  EXPECT_EQ(async_read(*img, 0, kCluster, kCluster), expect);
  ASSERT_TRUE(img->snapshot_apply("before"));
  EXPECT_EQ(sync_read(*img, 0, kCluster),
            std::vector<uint8_t>(data.begin(), data.begin() + kCluster));
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, FlushAfterInPlaceWritesSyncsTheFile) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  make_mixed_image(p);
  auto img = open(p, options());
  Buffer buf(4096, 0x22);
  iovec v{buf.data(), 4096};
  ASSERT_EQ(run(*img, IoOp::kWrite, 4096, std::span<const iovec>(&v, 1)), 4096);
  const uint64_t before = img->host_file_for_testing().syncs_issued();
  ASSERT_EQ(run(*img, IoOp::kFlush, 0, {}), 0);
  EXPECT_GT(img->host_file_for_testing().syncs_issued(), before);
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, DataClusterCutShortByEndOfFileReadsZerosPastIt) {
  ScratchDir dir;
  const std::string p = dir.file("t.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1 << 20}));
  uint64_t host = 0;
  {
    auto img = open(p, {});
    ASSERT_TRUE(img->write(0, pattern(kCluster, 6)));
    auto s = img->block_status(0, kCluster);
    ASSERT_TRUE(s && s->host_offset);
    host = *s->host_offset;
    ASSERT_TRUE(img->close());
  }
  {
    HostFile f = *HostFile::open(p, false, false);
    ASSERT_EQ(*f.size_bytes(), host + kCluster);  // the data cluster is the file's last
    ASSERT_TRUE(f.truncate(host + 8192));
  }
  auto img = open(p, options());
  EXPECT_EQ(async_read(*img, 8192, 4096, 4096), std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(async_read(*img, 4096, 8192, 4096), sync_read(*img, 4096, 8192));
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, PluggedRequestsAllCompleteAfterUnplug) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  const auto data = make_mixed_image(p);
  auto img = open(p, options());
  constexpr size_t kReqs = 48;  // more than one reap's worth in the test helper
  Buffer buf(kReqs * 4096, 0);
  std::vector<iovec> iov(kReqs);
  img->plug();
  for (size_t i = 0; i < kReqs; ++i) {
    iov[i] = {buf.data() + i * 4096, 4096};
    // Alternate between the two data clusters and the zero cluster.
    const uint64_t off = (i % 3 == 2 ? 3 * kCluster : (i % 2) * kCluster) + (i % 16) * 4096;
    ASSERT_TRUE(img->submit({.op = IoOp::kRead,
                             .offset_bytes = off,
                             .iov = std::span<const iovec>(&iov[i], 1),
                             .cookie = 100 + i}));
  }
  img->unplug();
  auto done = wait_completions(*img, kReqs);
  ASSERT_EQ(done.size(), kReqs);
  std::vector<bool> seen(kReqs);
  for (const IoCompletion& c : done) {
    ASSERT_GE(c.cookie, 100u);
    ASSERT_LT(c.cookie, 100u + kReqs);
    EXPECT_EQ(c.result, 4096);
    seen[c.cookie - 100] = true;
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), true), static_cast<long>(kReqs));
  for (size_t i = 0; i < kReqs; ++i) {
    const uint64_t off = (i % 3 == 2 ? 3 * kCluster : (i % 2) * kCluster) + (i % 16) * 4096;
    const auto want = i % 3 == 2 ? std::vector<uint8_t>(4096, 0)
                                 : std::vector<uint8_t>(data.begin() + static_cast<long>(off),
                                                        data.begin() + static_cast<long>(off) + 4096);
    EXPECT_EQ(std::vector<uint8_t>(buf.data() + i * 4096, buf.data() + (i + 1) * 4096), want)
        << "request " << i;
  }
  ASSERT_TRUE(img->close());
}

// A plugged batch of first writes into an overlay (copy-on-write in parallel), with a second
// write and a read of a cluster whose copy is still in flight, and writes over a raw and a
// qcow2 layer: every request completes once, and the image reads and checks as expected.
TEST_P(Qcow2Async, PluggedCopyOnWritesOverlapAndLandWhole) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string raw = dir.file("base.raw");
  const std::string mid = dir.file("mid.qcow2");
  const std::string top = dir.file("top.qcow2");
  constexpr uint64_t kSize = 16 * kCluster;
  const auto under = pattern(kSize, 30);
  {
    auto f = HostFile::create(raw);
    ASSERT_TRUE(f);
    ASSERT_TRUE(f->pwrite_full(0, under));
  }
  ASSERT_TRUE(create_qcow2(mid, {.size_bytes = kSize, .backing_file = "base.raw",
                                 .backing_format = "raw"}));
  auto expect = under;
  {
    auto m = open(mid, {});
    const auto mid_data = pattern(4 * kCluster, 31);  // clusters 8..11 in the middle layer
    ASSERT_TRUE(m->write(8 * kCluster, mid_data));
    std::memcpy(expect.data() + 8 * kCluster, mid_data.data(), mid_data.size());
    ASSERT_TRUE(m->close());
  }
  ASSERT_TRUE(create_qcow2(top, {.size_bytes = kSize, .backing_file = "mid.qcow2",
                                 .backing_format = "qcow2"}));
  auto img = open(top, options());
  // 32 writes of 1 KiB at varying offsets: two per cluster (the second one finds the first's
  // copy in flight), then a read of cluster 5 inside the same batch.
  constexpr size_t kWrites = 32;
  const auto in = pattern(kWrites * 1024, 32);
  Buffer wbuf(kWrites * 1024, 0);
  std::memcpy(wbuf.data(), in.data(), in.size());
  std::vector<iovec> iov(kWrites + 1);
  Buffer rbuf(4096, 0xee);
  img->plug();
  for (size_t i = 0; i < kWrites; ++i) {
    const uint64_t off = (i % 16) * kCluster + (i / 16) * 30000 + 512 * (i % 3);
    iov[i] = {wbuf.data() + i * 1024, 1024};
    ASSERT_TRUE(img->submit({.op = IoOp::kWrite,
                             .offset_bytes = off,
                             .iov = std::span<const iovec>(&iov[i], 1),
                             .cookie = 200 + i}));
    std::memcpy(expect.data() + off, in.data() + i * 1024, 1024);
  }
  iov[kWrites] = {rbuf.data(), 4096};
  ASSERT_TRUE(img->submit({.op = IoOp::kRead,
                           .offset_bytes = 5 * kCluster + 28672,
                           .iov = std::span<const iovec>(&iov[kWrites], 1),
                           .cookie = 200 + kWrites}));
  img->unplug();
  auto done = wait_completions(*img, kWrites + 1);
  ASSERT_EQ(done.size(), kWrites + 1);
  std::vector<int> seen(kWrites + 1);
  for (const IoCompletion& c : done) {
    ASSERT_GE(c.cookie, 200u);
    ASSERT_LT(c.cookie, 200u + kWrites + 1);
    EXPECT_EQ(c.result, c.cookie == 200 + kWrites ? 4096 : 1024) << "cookie " << c.cookie;
    ++seen[c.cookie - 200];
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(kWrites + 1));
  // The read overlaps the batch's second write into cluster 5; it finds the cluster's copy in
  // flight, so it waits for the engine to settle and sees both writes.
  const auto read_at = static_cast<long>(5 * kCluster + 28672);
  EXPECT_EQ(rbuf.bytes(),
            std::vector<uint8_t>(expect.begin() + read_at, expect.begin() + read_at + 4096));
  EXPECT_EQ(async_read(*img, 0, kSize, 4096), expect);
  expect_persisted(*img, top, expect);
}

// First writes into an empty overlay over every kind of backing cluster (data, unallocated,
// zero, compressed): each new cluster gets the old bytes around the new ones (head and tail,
// written with the caller's three iovecs as one write), all in one plugged batch.
TEST_P(Qcow2Async, CopyOnWriteTakesTheOldBytesOfEveryKindOfBackingCluster) {
  if (GetParam().read_only) {
    GTEST_SKIP() << "writes need a read-write open";
  }
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2");
  const std::string top = dir.file("top.qcow2");
  auto expect = make_mixed_image(base);
  std::memset(expect.data() + 2 * kCluster, 0, kCluster);  // unallocated, no backing: zeros
  std::memset(expect.data() + 3 * kCluster, 0, kCluster);  // the zero cluster
  std::fill(expect.begin() + 7 * kCluster, expect.end(), 0);  // past the data written
  ASSERT_TRUE(create_qcow2(top, {.size_bytes = 1 << 20, .backing_file = "base.qcow2",
                                 .backing_format = "qcow2"}));
  auto img = open(top, options());
  constexpr size_t kClusters = 8;
  constexpr size_t kLen = 3 * 4096;
  const auto in = pattern(kClusters * kLen, 41);
  Buffer wbuf(in.size(), 0);
  std::memcpy(wbuf.data(), in.data(), in.size());
  std::vector<iovec> iov;
  for (size_t i = 0; i < kClusters * 3; ++i) {
    iov.push_back({wbuf.data() + i * 4096, 4096});
  }
  img->plug();
  for (size_t i = 0; i < kClusters; ++i) {
    // At the start, in the middle and at the end of a cluster (no head, both, no tail).
    const uint64_t off = i * kCluster + (i % 3) * (kCluster - kLen) / 2 / 4096 * 4096;
    ASSERT_TRUE(img->submit({.op = IoOp::kWrite,
                             .offset_bytes = off,
                             .iov = std::span<const iovec>(&iov[i * 3], 3),
                             .cookie = i}));
    std::memcpy(expect.data() + off, in.data() + i * kLen, kLen);
  }
  img->unplug();
  auto done = wait_completions(*img, kClusters);
  ASSERT_EQ(done.size(), kClusters);
  for (const IoCompletion& c : done) {
    EXPECT_EQ(c.result, static_cast<int64_t>(kLen)) << "cookie " << c.cookie;
  }
  EXPECT_EQ(async_read(*img, 0, 1 << 20, 4096), expect);
  expect_persisted(*img, top, expect);
}

TEST_P(Qcow2Async, SplitRequestsReapedOneAtATimeEachCompleteOnce) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  const auto data = make_mixed_image(p);
  auto img = open(p, options());
  constexpr size_t kReqs = 20;
  constexpr size_t kLen = 8192;
  Buffer buf(kReqs * kLen, 0);
  std::vector<iovec> iov(kReqs);
  for (size_t i = 0; i < kReqs; ++i) {
    iov[i] = {buf.data() + i * kLen, kLen};
    // Each request straddles the boundary of clusters 0 and 1 (two engine requests) or of
    // clusters 5 and 6.
    const uint64_t off = (i % 2 == 0 ? kCluster : 6 * kCluster) - 4096;
    ASSERT_TRUE(img->submit({.op = IoOp::kRead,
                             .offset_bytes = off,
                             .iov = std::span<const iovec>(&iov[i], 1),
                             .cookie = i}));
  }
  std::vector<int> seen(kReqs);
  for (size_t got = 0; got < kReqs;) {
    pollfd pfd{img->completion_fd(), POLLIN, 0};
    ASSERT_GT(::poll(&pfd, 1, 5000), 0) << got << " of " << kReqs;
    IoCompletion one[1];
    while (img->reap(one) == 1) {
      ASSERT_LT(one[0].cookie, kReqs);
      EXPECT_EQ(one[0].result, static_cast<int64_t>(kLen));
      ++seen[one[0].cookie];
      ++got;
    }
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<long>(kReqs));
  for (size_t i = 0; i < kReqs; ++i) {
    const uint64_t off = (i % 2 == 0 ? kCluster : 6 * kCluster) - 4096;
    EXPECT_EQ(std::vector<uint8_t>(buf.data() + i * kLen, buf.data() + (i + 1) * kLen),
              std::vector<uint8_t>(data.begin() + static_cast<long>(off),
                                   data.begin() + static_cast<long>(off + kLen)));
  }
  ASSERT_TRUE(img->close());
}

TEST_P(Qcow2Async, RequestsOutsideTheDiskCompleteWithEinval) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  make_mixed_image(p);
  auto img = open(p, options());
  Buffer buf(8192, 0);
  iovec v{buf.data(), 8192};
  EXPECT_EQ(run(*img, IoOp::kRead, (1 << 20) - 4096, std::span<const iovec>(&v, 1)), -EINVAL);
  ASSERT_TRUE(img->close());
}

INSTANTIATE_TEST_SUITE_P(
    Engines, Qcow2Async,
    ::testing::Values(AsyncCase{EngineKind::kIoUring, CacheMode::kWriteback, false},
                      AsyncCase{EngineKind::kIoUring, CacheMode::kWriteback, true},
                      AsyncCase{EngineKind::kIoUring, CacheMode::kNone, false},
                      AsyncCase{EngineKind::kThreadPool, CacheMode::kWriteback, false}),
    [](const ::testing::TestParamInfo<AsyncCase>& param_info) {
      return std::string(param_info.param.engine == EngineKind::kIoUring ? "IoUring" : "Threads") +
             (param_info.param.cache == CacheMode::kNone ? "Direct" : "Writeback") +
             (param_info.param.read_only ? "ReadOnly" : "ReadWrite");
    });

}  // namespace
}  // namespace kumo::block
