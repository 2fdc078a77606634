// Bad input (QEMU iotest 080 "qcow2 format input validation" scenarios, truncations, broken
// backing chains): every case is refused with a kInvalidInput error that names the file and
// the problem, never a crash.

#include <gtest/gtest.h>

#include <filesystem>

#include "block/open_backend.h"
#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::ScratchDir;

struct Poke {
  const char* name;
  uint64_t offset;
  int width;  // bytes: 4 or 8
  uint64_t value;
  const char* expect;  // substring of the error
};

void poke(const std::string& path, uint64_t offset, int width, uint64_t value) {
  HostFile f = *HostFile::open(path, false, false);
  uint8_t b[8];
  if (width == 8) {
    qcow2::store_be64(b, value);
  } else {
    qcow2::store_be32(b, static_cast<uint32_t>(value));
  }
  ASSERT_TRUE(f.pwrite_full(offset, std::span<const uint8_t>(b, static_cast<size_t>(width))));
}

class MalformedHeader : public ::testing::TestWithParam<Poke> {};

TEST_P(MalformedHeader, IsRefusedWithANamedError) {
  ScratchDir dir;
  const std::string p = dir.file("bad.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 64 << 20}));
  {
    auto img = std::move(*Qcow2Image::open(p, {}));
    ASSERT_TRUE(img->write(0, std::vector<uint8_t>(4096, 1)));
    ASSERT_TRUE(img->snapshot_create("s"));
    ASSERT_TRUE(img->close());
  }
  const Poke& k = GetParam();
  poke(p, k.offset, k.width, k.value);
  auto r = open_block_backend(p, {.format = ImageFormat::kQcow2});
  ASSERT_FALSE(r) << k.name;
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput) << r.error().to_string();
  EXPECT_NE(r.error().message.find("bad.qcow2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(k.expect), std::string::npos) << r.error().message;
}

// Offsets: 4 version, 16 backing name size, 20 cluster bits, 24 size, 36 l1_size,
// 40 l1 offset, 48 refcount table offset, 56 refcount table clusters, 60 nb_snapshots,
// 64 snapshots offset, 72 incompatible features, 96 refcount order, 100 header length.
INSTANTIATE_TEST_SUITE_P(
    Iotest080, MalformedHeader,
    ::testing::Values(
        Poke{"bad magic", 0, 4, 0x12345678, "magic"},
        Poke{"version 4", 4, 4, 4, "version"},
        Poke{"huge header length", 100, 4, 0x100000, "header length"},
        Poke{"unaligned header length", 100, 4, 105, "header length"},
        Poke{"cluster bits 8", 20, 4, 8, "cluster size"},
        Poke{"cluster bits 31", 20, 4, 31, "cluster size"},
        Poke{"huge refcount table", 56, 4, 0xffffff, "refcount table"},
        Poke{"refcount table outside the file", 48, 8, 0x7fff0000, "outside"},
        Poke{"unaligned refcount table", 48, 8, 0x10001, "aligned"},
        Poke{"too many snapshots", 60, 4, 0x7fffffff, "snapshots"},
        Poke{"snapshot table outside the file", 64, 8, 0x7fff0000, "outside"},
        Poke{"huge l1 size", 36, 4, 0x7fffffff, "L1"},
        Poke{"l1 too small for the size", 36, 4, 0, "L1"},
        Poke{"l1 outside the file", 40, 8, 0x7fff0000, "outside"},
        Poke{"unaligned l1", 40, 8, 0x30001, "aligned"},
        Poke{"huge virtual size", 24, 8, 1ull << 62, "size"},
        Poke{"refcount order 7", 96, 4, 7, "refcount order"},
        Poke{"unknown incompatible feature", 72, 8, 1ull << 40, "incompatible"},
        Poke{"external data file", 72, 8, qcow2::kIncompatDataFile, "data file"},
        Poke{"encryption", 32, 4, 1, "encrypted"},
        Poke{"backing name too long", 12, 8, (0x200ull << 32) | 4000, "backing file name"},
        Poke{"L2 table outside the file", 0x30000, 8, 0x8000000007ff0000ull, "outside"},
        Poke{"refcount block outside the file", 0x10000, 8, 0x7fff0000, "outside"}),
    [](const ::testing::TestParamInfo<Poke>& i) {
      std::string n = i.param.name;
      for (char& c : n) {
        if (!std::isalnum(static_cast<unsigned char>(c))) {
          c = '_';
        }
      }
      return n;
    });

TEST(Malformed, TruncatedImagesAreRefused) {
  ScratchDir dir;
  const std::string p = dir.file("t.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 64 << 20}));
  for (uint64_t len : {0ull, 10ull, 71ull, 200ull, 65536ull, 0x20000ull, 0x30004ull}) {
    std::filesystem::resize_file(p, len);
    auto r = open_block_backend(p, {.format = ImageFormat::kQcow2});
    ASSERT_FALSE(r) << len;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput) << len << ": " << r.error().to_string();
  }
}

TEST(Malformed, BackingChainLoopIsRefused) {
  ScratchDir dir;
  ASSERT_TRUE(create_qcow2(dir.file("a.qcow2"),
                           {.size_bytes = 1 << 20, .backing_file = "b.qcow2",
                            .backing_format = "qcow2"}));
  ASSERT_TRUE(create_qcow2(dir.file("b.qcow2"),
                           {.size_bytes = 1 << 20, .backing_file = "a.qcow2",
                            .backing_format = "qcow2"}));
  auto r = open_block_backend(dir.file("a.qcow2"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("loops"), std::string::npos) << r.error().message;
  ASSERT_TRUE(create_qcow2(dir.file("self.qcow2"),
                           {.size_bytes = 1 << 20, .backing_file = "self.qcow2"}));
  EXPECT_FALSE(open_block_backend(dir.file("self.qcow2"), {}));
}

TEST(Malformed, TooDeepChainIsRefused) {
  ScratchDir dir;
  ASSERT_TRUE(create_qcow2(dir.file("0.qcow2"), {.size_bytes = 1 << 20}));
  for (int i = 1; i <= kMaxChainDepth + 1; ++i) {
    ASSERT_TRUE(create_qcow2(dir.file(std::to_string(i) + ".qcow2"),
                             {.size_bytes = 1 << 20,
                              .backing_file = std::to_string(i - 1) + ".qcow2",
                              .backing_format = "qcow2"}));
  }
  EXPECT_TRUE(open_block_backend(dir.file(std::to_string(kMaxChainDepth - 1) + ".qcow2"), {}));
  auto r = open_block_backend(dir.file(std::to_string(kMaxChainDepth + 1) + ".qcow2"), {});
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("too deep"), std::string::npos) << r.error().message;
}

TEST(Malformed, MissingBackingFileNamesBothFiles) {
  ScratchDir dir;
  ASSERT_TRUE(create_qcow2(dir.file("top.qcow2"),
                           {.size_bytes = 1 << 20, .backing_file = "gone.qcow2",
                            .backing_format = "qcow2"}));
  auto r = open_block_backend(dir.file("top.qcow2"), {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(r.error().message.find("top.qcow2"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find("gone.qcow2"), std::string::npos) << r.error().message;
}

TEST(Malformed, RefcountOverflowIsAnErrorNotACrash) {
  ScratchDir dir;
  const std::string p = dir.file("o.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1 << 20, .refcount_bits = 2}));
  auto img = std::move(*Qcow2Image::open(p, {}));
  ASSERT_TRUE(img->write(0, std::vector<uint8_t>(4096, 1)));
  ASSERT_TRUE(img->snapshot_create("a"));
  ASSERT_TRUE(img->snapshot_create("b"));  // refcount 3 = the 2-bit maximum
  auto st = img->snapshot_create("c");
  ASSERT_FALSE(st);
  EXPECT_NE(st.error().message.find("overflow"), std::string::npos) << st.error().message;
}

// Extended L2 entries (16 bytes: the cluster word, then the subcluster bitmap) written by a
// hostile file: a subcluster allocated without a data cluster is a named error on read, and
// check counts both that and a subcluster marked allocated and zero at once.
struct ExtendedL2Case {
  const char* name;
  uint64_t word;
  uint64_t bitmap;
};

class MalformedExtendedL2 : public ::testing::TestWithParam<ExtendedL2Case> {};

TEST_P(MalformedExtendedL2, IsAnErrorOrACorruptionNotACrash) {
  ScratchDir dir;
  const std::string p = dir.file("x.qcow2");
  ASSERT_TRUE(create_qcow2(p, {.size_bytes = 1 << 20, .extended_l2 = true}));
  uint64_t l2_offset = 0;
  {
    auto img = std::move(*Qcow2Image::open(p, {}));
    ASSERT_TRUE(img->write(0, std::vector<uint8_t>(65536, 7)));  // cluster 0: an L2 table
    ASSERT_TRUE(img->close());
    HostFile f = *HostFile::open(p, true, false);
    uint8_t b[8];
    ASSERT_TRUE(f.pread_full(img->header().l1_table_offset, b));
    l2_offset = qcow2::load_be64(b) & qcow2::kL1OffsetMask;
  }
  ASSERT_NE(l2_offset, 0u);
  poke(p, l2_offset + 16, 8, GetParam().word);  // cluster 1's entry
  poke(p, l2_offset + 24, 8, GetParam().bitmap);
  auto img = Qcow2Image::open(p, {.read_only = true});
  ASSERT_TRUE(img) << img.error().to_string();
  std::vector<uint8_t> out(4096);
  auto st = (*img)->read(65536, out);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(st.error().message.find("x.qcow2"), std::string::npos) << st.error().message;
  EXPECT_NE(st.error().message.find("corrupt"), std::string::npos) << st.error().message;
  auto report = (*img)->check(RepairMode::kNone);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_GT(report->corruptions, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Entries, MalformedExtendedL2,
    ::testing::Values(
        ExtendedL2Case{"allocated_subcluster_without_cluster", 0, 1},
        ExtendedL2Case{"subcluster_allocated_and_zero", 0,
                       1 | (1ull << qcow2::kBitmapZeroShift)}),
    [](const ::testing::TestParamInfo<ExtendedL2Case>& param_info) {
      return std::string(param_info.param.name);
    });

}  // namespace
}  // namespace kumo::block
