#include "block/qcow2/qcow2_image.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "block/qcow2/format.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::run_command;
using testing::pattern;
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

TEST(Qcow2Image, SizesThatAreNotWholeSectorsAreRefused) {
  ScratchDir dir;
  const std::string p = dir.file("a.qcow2");
  auto bad = create_qcow2(p, {.size_bytes = 1000});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(bad.error().to_string().find("multiple of 512"), std::string::npos);
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1024}));
  auto img = open_rw(p);
  auto grown = img->resize(3000, false);
  ASSERT_FALSE(grown);
  EXPECT_NE(grown.error().to_string().find("multiple of 512"), std::string::npos);
  EXPECT_EQ(img->size_bytes(), 1024u);
  ASSERT_TRUE(img->resize(3072, false));
  EXPECT_EQ(img->size_bytes(), 3072u);
  ASSERT_TRUE(img->close());
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

// 64 KiB clusters with extended L2 entries: 2 KiB subclusters, over a 1 MiB qcow2 backing
// file full of data.
struct SubclusterOverlay {
  ScratchDir dir;
  std::vector<uint8_t> base_data = pattern(1 << 20, 11);
  std::string top = dir.file("top.qcow2");

  SubclusterOverlay() {
    const std::string base = dir.file("base.qcow2");
    EXPECT_TRUE(create_qcow2(base, {.size_bytes = 1 << 20}));
    auto b = open_rw(base);
    EXPECT_TRUE(b->write(0, base_data));
    EXPECT_TRUE(b->close());
    EXPECT_TRUE(create_qcow2(top, {.size_bytes = 1 << 20, .backing_file = "base.qcow2",
                                   .backing_format = "qcow2", .extended_l2 = true}));
  }
};

// What block_status says, extent by extent, over [offset, offset + len).
std::vector<std::pair<uint64_t, BlockStatus>> extents(BlockBackend& b, uint64_t offset,
                                                      uint64_t len) {
  std::vector<std::pair<uint64_t, BlockStatus>> out;
  for (uint64_t pos = offset; pos < offset + len;) {
    auto s = b.block_status(pos, offset + len - pos);
    EXPECT_TRUE(s);
    out.emplace_back(pos, *s);
    pos += s->len_bytes;
  }
  return out;
}

TEST(Qcow2Image, ExtendedL2WriteAllocatesOnlyTheSubclustersItTouches) {
  SubclusterOverlay o;
  auto t = open_rw(o.top);
  ASSERT_TRUE(t->write(65536 + 3000, std::vector<uint8_t>(3000, 0xab)));  // subclusters 1, 2
  const auto e = extents(*t, 65536, 65536);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_FALSE(e[0].second.allocated);
  EXPECT_EQ(e[0].second.len_bytes, 2048u);
  EXPECT_TRUE(e[1].second.allocated && e[1].second.data);
  EXPECT_EQ(e[1].second.len_bytes, 4096u);
  EXPECT_FALSE(e[2].second.allocated);
  // The untouched bytes of the two subclusters were copied from the backing file.
  std::vector<uint8_t> out(1 << 20);
  ASSERT_TRUE(t->read(0, out));
  auto expect = o.base_data;
  std::memset(expect.data() + 65536 + 3000, 0xab, 3000);
  EXPECT_EQ(out, expect);
  // A later write into an unallocated subcluster of the same cluster fills it in place.
  const uint64_t cluster_host = e[1].second.host_offset.value() - 2048;
  ASSERT_TRUE(t->write(65536 + 40000, std::vector<uint8_t>(10, 0xcd)));
  std::memset(expect.data() + 65536 + 40000, 0xcd, 10);
  EXPECT_EQ(extents(*t, 65536 + 40000, 1)[0].second.host_offset, cluster_host + 40000);
  ASSERT_TRUE(t->close());
  auto r = open_rw(o.top, {.read_only = true});
  ASSERT_TRUE(r->read(0, out));
  EXPECT_EQ(out, expect);
  expect_qemu_clean(o.top);
}

TEST(Qcow2Image, ExtendedL2ZeroesAndDiscardsWholeSubclustersThroughTheBitmap) {
  SubclusterOverlay o;
  auto t = open_rw(o.top);
  auto expect = o.base_data;
  // 1000..9000 covers subclusters 1-3 whole and 0 and 4 in part.
  ASSERT_TRUE(t->write_zeroes(1000, 8000));
  std::memset(expect.data() + 1000, 0, 8000);
  const auto e = extents(*t, 0, 65536);
  ASSERT_GE(e.size(), 3u);
  EXPECT_TRUE(e[0].second.allocated && e[0].second.data);  // subcluster 0, written
  EXPECT_EQ(e[0].second.len_bytes, 2048u);
  EXPECT_TRUE(e[1].second.allocated && e[1].second.zero);  // zero bits
  EXPECT_EQ(e[1].second.len_bytes, 3u * 2048);
  // A discard shows zeros, not the backing file, and frees a cluster left without data.
  ASSERT_TRUE(t->write(200000, std::vector<uint8_t>(100, 0x5a)));
  ASSERT_TRUE(t->discard(196608, 65536));
  std::memset(expect.data() + 196608, 0, 65536);
  const auto d = extents(*t, 196608, 65536);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_TRUE(d[0].second.zero);
  EXPECT_FALSE(d[0].second.host_offset.has_value());
  // A partial subcluster is left alone by discard.
  ASSERT_TRUE(t->discard(300000, 1000));
  std::vector<uint8_t> out(1 << 20);
  ASSERT_TRUE(t->read(0, out));
  EXPECT_EQ(out, expect);
  ASSERT_TRUE(t->close());
  expect_qemu_clean(o.top);
}

TEST(Qcow2Image, ExtendedL2ClusterSharedWithASnapshotIsCopiedWithItsSubclusters) {
  SubclusterOverlay o;
  auto t = open_rw(o.top);
  auto expect = o.base_data;
  ASSERT_TRUE(t->write(0, std::vector<uint8_t>(2048, 1)));      // subcluster 0
  ASSERT_TRUE(t->write_zeroes(4096, 2048));                      // subcluster 2: zero
  ASSERT_TRUE(t->write(8192, std::vector<uint8_t>(2048, 3)));   // subcluster 4
  std::memset(expect.data(), 1, 2048);
  std::memset(expect.data() + 4096, 0, 2048);
  std::memset(expect.data() + 8192, 3, 2048);
  const auto before = expect;
  ASSERT_TRUE(t->snapshot_create("s"));
  ASSERT_TRUE(t->write(8192 + 100, std::vector<uint8_t>(50, 9)));
  std::memset(expect.data() + 8192 + 100, 9, 50);
  std::vector<uint8_t> out(1 << 20);
  ASSERT_TRUE(t->read(0, out));
  EXPECT_EQ(out, expect);
  ASSERT_TRUE(t->snapshot_apply("s"));
  ASSERT_TRUE(t->read(0, out));
  EXPECT_EQ(out, before);
  ASSERT_TRUE(t->close());
  expect_qemu_clean(o.top);
}

TEST(Qcow2Image, ExtendedL2NeedsVersion3AndSixteenKiBClusters) {
  ScratchDir dir;
  EXPECT_FALSE(create_qcow2(dir.file("a.qcow2"),
                            {.size_bytes = 1 << 20, .cluster_size = 8192, .extended_l2 = true}));
  EXPECT_FALSE(create_qcow2(dir.file("b.qcow2"),
                            {.size_bytes = 1 << 20, .version = 2, .extended_l2 = true}));
  ASSERT_TRUE(create_qcow2(dir.file("c.qcow2"),
                           {.size_bytes = 1 << 20, .cluster_size = 16384, .extended_l2 = true}));
  auto img = open_rw(dir.file("c.qcow2"));
  EXPECT_TRUE(img->header().extended_l2());
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
