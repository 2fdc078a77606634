#include "block/qcow2/qcow2_image.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "block/qcow2/format.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::run_command;
using testing::ScratchDir;

std::unique_ptr<Qcow2Image> open_rw(const std::string& path, OpenOptions o = {}) {
  auto r = Qcow2Image::open(path, o);
  EXPECT_TRUE(r) << r.error().to_string();
  return r ? std::move(*r) : nullptr;
}

void expect_qemu_clean(const std::string& path) {
  if (!testing::have_qemu_img()) {
    return;
  }
  auto r = run_command("qemu-img check " + path);
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

std::vector<uint8_t> pattern(size_t len, uint32_t seed) {
  std::vector<uint8_t> v(len);
  std::mt19937 rng(seed);
  for (auto& b : v) {
    b = static_cast<uint8_t>(rng());
  }
  return v;
}

TEST(Qcow2Image, CreateWriteReadRoundTripsAcrossReopen) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 64 << 20}));
  const auto data = pattern(200000, 1);
  {
    auto img = open_rw(p);
    ASSERT_TRUE(img->write(12345, data));
    ASSERT_TRUE(img->close());
  }
  auto img = open_rw(p, {.read_only = true});
  std::vector<uint8_t> out(data.size());
  ASSERT_TRUE(img->read(12345, out));
  EXPECT_EQ(out, data);
  std::vector<uint8_t> zeros(4096);
  ASSERT_TRUE(img->read(50 << 20, zeros));
  EXPECT_EQ(zeros, std::vector<uint8_t>(4096, 0));
  expect_qemu_clean(p);
}

TEST(Qcow2Image, EveryRefcountWidthStaysCheckClean) {
  ScratchDir dir;
  for (uint32_t bits : {1u, 2u, 4u, 8u, 16u, 32u, 64u}) {
    const std::string p = dir.file("w" + std::to_string(bits) + ".qcow2");
    ASSERT_TRUE(create_qcow2(p, {.size_bytes = 8 << 20, .cluster_size = 512,
                                 .refcount_bits = bits}));
    const auto data = pattern(3 << 20, bits);
    {
      auto img = open_rw(p);
      ASSERT_TRUE(img->write(1 << 20, data));  // forces refcount table growth at 512 B
      ASSERT_TRUE(img->close());
    }
    auto img = open_rw(p, {.read_only = true});
    std::vector<uint8_t> out(data.size());
    ASSERT_TRUE(img->read(1 << 20, out));
    EXPECT_EQ(out, data) << bits;
    auto report = img->check(RepairMode::kNone);
    ASSERT_TRUE(report);
    EXPECT_EQ(report->corruptions, 0u) << bits;
    EXPECT_EQ(report->leaks, 0u) << bits;
    expect_qemu_clean(p);
  }
}

TEST(Qcow2Image, OverlayReadsBackingAndCopiesOnWrite) {
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2");
  const std::string top = dir.file("top.qcow2");
  ASSERT_TRUE(create_qcow2(base, {.size_bytes = 4 << 20}));
  const auto data = pattern(4 << 20, 7);
  {
    auto b = open_rw(base);
    ASSERT_TRUE(b->write(0, data));
    ASSERT_TRUE(b->close());
  }
  ASSERT_TRUE(create_qcow2(top, {.size_bytes = 4 << 20, .backing_file = "base.qcow2",
                                 .backing_format = "qcow2"}));
  auto t = open_rw(top);
  std::vector<uint8_t> w(100, 0xee);
  ASSERT_TRUE(t->write(70000, w));
  std::vector<uint8_t> out(4 << 20);
  ASSERT_TRUE(t->read(0, out));
  auto expect = data;
  std::memcpy(expect.data() + 70000, w.data(), w.size());
  EXPECT_EQ(out, expect);
  ASSERT_TRUE(t->discard(0, 65536));  // v3 + backing: zero cluster, not the backing data
  ASSERT_TRUE(t->read(0, std::span(out).first(65536)));
  EXPECT_EQ(std::vector<uint8_t>(out.begin(), out.begin() + 65536),
            std::vector<uint8_t>(65536, 0));
  ASSERT_TRUE(t->close());
  expect_qemu_clean(top);
  expect_qemu_clean(base);
}

// First writes into an overlay copy the rest of the cluster from wherever the chain holds it:
// a raw file two layers down (copied in the kernel), a middle layer's allocated, zero or
// compressed cluster, or past the end of a shorter base (zeroes).
TEST(Qcow2Image, CopyOnWriteTakesEachClustersBytesFromTheRightLayer) {
  ScratchDir dir;
  constexpr uint64_t kCluster = 65536;
  const std::string base = dir.file("base.raw");
  const std::string mid = dir.file("mid.qcow2");
  const std::string top = dir.file("top.qcow2");
  const auto base_data = pattern(6 * kCluster + 1000, 11);  // ends inside cluster 6
  {
    auto f = HostFile::create(base);
    ASSERT_TRUE(f) << f.error().to_string();
    ASSERT_TRUE(f->pwrite_full(0, base_data));
  }
  ASSERT_TRUE(create_qcow2(mid, {.size_bytes = 8 * kCluster, .backing_file = "base.raw",
                                 .backing_format = "raw"}));
  std::vector<uint8_t> expect(8 * kCluster, 0);
  std::memcpy(expect.data(), base_data.data(), base_data.size());
  {
    auto m = open_rw(mid);
    const auto mid_data = pattern(kCluster, 12);
    ASSERT_TRUE(m->write(2 * kCluster, mid_data));  // cluster 2: the middle layer's data
    std::memcpy(expect.data() + 2 * kCluster, mid_data.data(), kCluster);
    ASSERT_TRUE(m->write_zeroes(3 * kCluster, kCluster));  // cluster 3: a zero cluster
    std::memset(expect.data() + 3 * kCluster, 0, kCluster);
    std::vector<uint8_t> repetitive(kCluster);
    for (size_t i = 0; i < repetitive.size(); ++i) {
      repetitive[i] = static_cast<uint8_t>(i / 100);
    }
    ASSERT_TRUE(m->write_compressed(5 * kCluster, repetitive));  // cluster 5: compressed
    std::memcpy(expect.data() + 5 * kCluster, repetitive.data(), kCluster);
    ASSERT_TRUE(m->close());
  }
  ASSERT_TRUE(create_qcow2(top, {.size_bytes = 8 * kCluster, .backing_file = "mid.qcow2",
                                 .backing_format = "qcow2"}));
  auto t = open_rw(top);
  // Head only, tail only, the middle, a whole cluster, across the base's end, past it.
  const std::pair<uint64_t, size_t> writes[] = {
      {0, 100}, {kCluster + kCluster - 100, 100}, {2 * kCluster + 5000, 3000},
      {3 * kCluster + 1, 10}, {4 * kCluster, kCluster}, {5 * kCluster + 9, 9},
      {6 * kCluster + 500, 1000},
      {7 * kCluster + 4096, 4096}};
  uint32_t seed = 20;
  for (const auto& [off, len] : writes) {
    const auto w = pattern(len, seed++);
    ASSERT_TRUE(t->write(off, w));
    std::memcpy(expect.data() + off, w.data(), len);
  }
  std::vector<uint8_t> out(expect.size());
  ASSERT_TRUE(t->read(0, out));
  for (long c = 0; c < 8; ++c) {
    const long at = c * static_cast<long>(kCluster);
    EXPECT_TRUE(std::equal(out.begin() + at, out.begin() + at + static_cast<long>(kCluster),
                           expect.begin() + at))
        << "cluster " << c;
  }
  ASSERT_TRUE(t->close());
  expect_qemu_clean(top);
}

TEST(Qcow2Image, SnapshotCreateApplyDeleteKeepsDataAndRefcounts) {
  ScratchDir dir;
  const std::string p = dir.file("s.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 8 << 20}));
  auto img = open_rw(p);
  const auto a = pattern(1 << 20, 1);
  const auto b = pattern(1 << 20, 2);
  ASSERT_TRUE(img->write(0, a));
  ASSERT_TRUE(img->snapshot_create("one"));
  ASSERT_TRUE(img->write(4096, b));
  ASSERT_TRUE(img->snapshot_create("two"));
  ASSERT_FALSE(img->snapshot_create("two"));
  ASSERT_TRUE(img->write_zeroes(0, 1 << 20));
  ASSERT_TRUE(img->snapshot_apply("one"));
  std::vector<uint8_t> out(1 << 20);
  ASSERT_TRUE(img->read(0, out));
  EXPECT_EQ(out, a);
  ASSERT_TRUE(img->snapshot_delete("one"));
  ASSERT_TRUE(img->snapshot_apply("2"));  // by ID
  ASSERT_TRUE(img->read(4096, out));
  EXPECT_EQ(out, b);
  auto report = img->check(RepairMode::kNone);
  ASSERT_TRUE(report);
  for (const auto& m : report->messages) {
    ADD_FAILURE() << m;
  }
  ASSERT_TRUE(img->close());
  expect_qemu_clean(p);
}

TEST(Qcow2Image, CompressedWriteReadsBackAndIsCheckClean) {
  ScratchDir dir;
  const std::string p = dir.file("c.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1 << 20}));
  auto img = open_rw(p);
  std::vector<uint8_t> cluster(65536);
  for (size_t i = 0; i < cluster.size(); ++i) {
    cluster[i] = static_cast<uint8_t>(i / 100);
  }
  for (uint64_t c = 0; c < 16; c += 2) {
    ASSERT_TRUE(img->write_compressed(c * 65536, cluster));
  }
  ASSERT_TRUE(img->close());
  img = open_rw(p);
  std::vector<uint8_t> out(65536);
  for (uint64_t c = 0; c < 16; ++c) {
    ASSERT_TRUE(img->read(c * 65536, out));
    EXPECT_EQ(out, c % 2 == 0 ? cluster : std::vector<uint8_t>(65536, 0)) << c;
  }
  // Overwriting a compressed cluster copies it out.
  ASSERT_TRUE(img->write(100, std::vector<uint8_t>(10, 1)));
  ASSERT_TRUE(img->close());
  expect_qemu_clean(p);
}

TEST(Qcow2Image, DirtyImageWithStaleRefcountsIsRepairedOnOpen) {
  ScratchDir dir;
  const std::string p = dir.file("l.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 8 << 20, .lazy_refcounts = true}));
  const auto data = pattern(300000, 3);
  {
    auto img = open_rw(p);
    ASSERT_TRUE(img->write(0, data));
    ASSERT_TRUE(img->flush());
    EXPECT_TRUE(img->dirty_bit());
    ASSERT_TRUE(img->close());
    EXPECT_FALSE(img->dirty_bit());
  }
  // What a crash with lazy refcounts leaves: the dirty bit, refcounts that miss clusters.
  {
    HostFile f = *HostFile::open(p, false, false);
    uint8_t hdr[8];
    qcow2::store_be64(hdr, qcow2::kIncompatDirty);
    ASSERT_TRUE(f.pwrite_full(72, hdr));
    std::vector<uint8_t> zero_block(65536, 0);
    ASSERT_TRUE(f.pwrite_full(0x20000, zero_block));  // first refcount block
  }
  if (testing::have_qemu_img()) {
    EXPECT_NE(run_command("qemu-img check " + p).exit_code, 0);
  }
  auto img = open_rw(p);  // repairs
  EXPECT_FALSE(img->dirty_bit());
  std::vector<uint8_t> out(data.size());
  ASSERT_TRUE(img->read(0, out));
  EXPECT_EQ(out, data);
  ASSERT_TRUE(img->write(1 << 20, data));
  ASSERT_TRUE(img->close());
  expect_qemu_clean(p);
}

TEST(Qcow2Image, CorruptBitAllowsReadOnlyOpenOnly) {
  ScratchDir dir;
  const std::string p = dir.file("c.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1 << 20}));
  {
    HostFile f = *HostFile::open(p, false, false);
    uint8_t hdr[8];
    qcow2::store_be64(hdr, qcow2::kIncompatCorrupt);
    ASSERT_TRUE(f.pwrite_full(72, hdr));
  }
  auto rw = Qcow2Image::open(p, {});
  ASSERT_FALSE(rw);
  EXPECT_EQ(rw.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(rw.error().message.find("corrupt"), std::string::npos);
  EXPECT_TRUE(Qcow2Image::open(p, {.read_only = true}));
}

}  // namespace
}  // namespace kumo::block
