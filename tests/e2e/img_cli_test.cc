// `kumo img` end to end: every verb driven through the built binary as a user would, with
// qemu-img / qemu-io (Debian's qemu-utils) as the oracle for what the images hold. Skips
// without qemu-img.

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "process.h"

namespace kumo::test {
namespace {

namespace fs = std::filesystem;
constexpr const char* kKumo = KUMO_BINARY;

class KumoImg : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/usr/bin/qemu-img", X_OK) != 0 || ::access("/usr/bin/qemu-io", X_OK) != 0) {
      GTEST_SKIP() << "qemu-img / qemu-io not installed (qemu-utils)";
    }
    char tmpl[] = "/tmp/kumo-img-e2e.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  [[nodiscard]] std::string path(const std::string& name) const { return dir_ + "/" + name; }

  static ProcessResult img(std::vector<std::string> args) {
    args.insert(args.begin(), {kKumo, "img"});
    return run_process(args, 60000);
  }
  static ProcessResult qemu_img(std::vector<std::string> args) {
    args.insert(args.begin(), "/usr/bin/qemu-img");
    return run_process(args, 60000);
  }
  // Runs one qemu-io command (e.g. "write -P 0x11 0 64k") on a qcow2 image.
  static void qemu_io(const std::string& image, const std::string& command) {
    auto r = run_process({"/usr/bin/qemu-io", "-f", "qcow2", "-c", command, image}, 60000);
    ASSERT_EQ(r.exit_status, 0) << command << ": " << r.out << r.err;
  }
  // Asserts a clean `qemu-img check`: no corruption, no leaks.
  static void expect_qemu_check_clean(const std::string& image) {
    auto r = qemu_img({"check", image});
    EXPECT_EQ(r.exit_status, 0) << image << ":\n" << r.out << r.err;
  }
  // Guest-visible contents compared by qemu-img (0: identical).
  static int qemu_compare(const std::string& a, const std::string& b) {
    return qemu_img({"compare", a, b}).exit_status;
  }
  static void expect_misuse(const ProcessResult& r, const std::string& needle) {
    EXPECT_EQ(r.exit_status, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "stderr: " << r.err;
  }
  static nlohmann::json json_of(const ProcessResult& r) {
    EXPECT_EQ(r.exit_status, 0) << r.err;
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }
  // Runs a shell command in the scratch directory, where relative backing file names resolve.
  [[nodiscard]] ProcessResult in_dir(const std::string& command) const {
    return run_process({"/bin/sh", "-c", "cd " + dir_ + " && " + command}, 60000);
  }
  void sh(const std::string& command) const {
    auto r = in_dir(command);
    ASSERT_EQ(r.exit_status, 0) << command << ": " << r.out << r.err;
  }
  // Bytes `qemu-img map` shows in the image itself (depth 0): as data, and as zero clusters.
  struct TopLayer {
    uint64_t data = 0;
    uint64_t zero = 0;
  };
  static TopLayer top_layer(const std::string& image) {
    TopLayer t;
    for (const auto& e : json_of(qemu_img({"map", "--output=json", image}))) {
      if (e.value("depth", -1) == 0 && e.value("present", false)) {
        (e.value("data", false) ? t.data : t.zero) += e.value("length", 0ULL);
      }
    }
    return t;
  }
  // base.qcow2 (16 MiB of 0x01, qemu) <- mid.qcow2 (kumo) <- top.qcow2 (qemu), 64 KiB
  // clusters. Against the base, top differs at 1M (64 KiB of data), 2M (128 KiB of zeros) and
  // 4M (4 KiB of data in one cluster); 6M was rewritten with the base's own bytes.
  void make_overlay_chain() const {
    sh("qemu-img create -q -f qcow2 base.qcow2 16M");
    sh("qemu-io -f qcow2 -c 'write -q -P 1 0 16M' base.qcow2");
    sh(std::string(kKumo) + " img create -q -f qcow2 -b base.qcow2 -F qcow2 mid.qcow2");
    sh("qemu-io -f qcow2 -c 'write -q -P 2 1M 64k' -c 'write -q -z 2M 128k' mid.qcow2");
    sh("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2");
    sh("qemu-io -f qcow2 -c 'write -q -P 3 4M 4k' -c 'write -q -P 1 6M 64k' top.qcow2");
  }
  // raw.raw (8 MiB of 0x11) <- q1.qcow2 (qemu) <- q2.qcow2 (kumo, 4 KiB clusters) <- q3.qcow2
  // (qemu, 12 MiB: larger than the base), with data, zeros and partial-cluster writes at every
  // level; before.raw is what q3 shows, oracle/ a copy of the chain for qemu-img to work on.
  void make_mixed_chain() const {
    sh("head -c 8M /dev/zero | tr '\\000' '\\021' > raw.raw");
    sh("qemu-img create -q -f qcow2 -b raw.raw -F raw q1.qcow2 8M");
    sh("qemu-io -f qcow2 -c 'write -q -P 0x31 0 128k' -c 'write -q -z 3M 64k' q1.qcow2");
    sh(std::string(kKumo) +
       " img create -q -f qcow2 -o cluster_size=4k -b q1.qcow2 -F qcow2 q2.qcow2");
    sh("qemu-io -f qcow2 -c 'write -q -P 0x32 64k 8k' -c 'write -q -z 5M 4k' "
       "-c 'write -q -P 0x33 3M 1k' q2.qcow2");
    sh("qemu-img create -q -f qcow2 -b q2.qcow2 -F qcow2 q3.qcow2 12M");
    sh("qemu-io -f qcow2 -c 'write -q -P 0x34 100k 3k' -c 'write -q -z 6M 1M' "
       "-c 'write -q -P 0x35 10M 64k' q3.qcow2");
    sh("qemu-img convert -O raw q3.qcow2 before.raw && cp raw.raw raw-before.raw");
    sh("mkdir oracle && cp raw.raw q1.qcow2 q2.qcow2 q3.qcow2 oracle/");
  }

  std::string dir_;
};

TEST_F(KumoImg, EveryVerbHasHelp) {
  for (const char* verb : {"create", "info", "check", "snapshot", "convert", "commit", "rebase",
                           "resize", "map", "compare", "bench"}) {
    auto r = img({verb, "--help"});
    EXPECT_EQ(r.exit_status, 0) << verb << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << verb;
  }
}

TEST_F(KumoImg, CreatedQcow2PassesQemuCheckAndInfoReportsIt) {
  const std::string base = path("base.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", base, "64M"}).exit_status, 0);
  expect_qemu_check_clean(base);
  auto info = json_of(img({"info", "--output", "json", base}));
  EXPECT_EQ(info.value("format", ""), "qcow2");
  EXPECT_EQ(info.value("virtual-size", 0ULL), 64ULL << 20);
  auto oracle = json_of(qemu_img({"info", "--output=json", base}));
  EXPECT_EQ(oracle.value("virtual-size", 0ULL), 64ULL << 20);
  EXPECT_EQ(oracle.value("cluster-size", 0ULL), info.value("cluster-size", 1ULL));
}

TEST_F(KumoImg, OverlayReadsThroughItsBackingChainAndInfoListsTheChain) {
  const std::string base = path("base.qcow2");
  const std::string top = path("top.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", base, "16M"}).exit_status, 0);
  qemu_io(base, "write -P 0x11 0 1M");
  ASSERT_EQ(img({"create", "-f", "qcow2", "-b", base, "-F", "qcow2", top}).exit_status, 0);
  qemu_io(top, "write -P 0x22 512k 64k");
  expect_qemu_check_clean(top);

  auto chain = json_of(img({"info", "--output", "json", "--backing-chain", top}));
  ASSERT_TRUE(chain.is_array()) << chain.dump();
  ASSERT_EQ(chain.size(), 2U);
  EXPECT_NE(chain[0].value("backing-filename", "").find("base.qcow2"), std::string::npos);

  // The overlay reads as the base with the overlay's write on top.
  const std::string raw = path("flat.raw");
  ASSERT_EQ(img({"convert", "-O", "raw", top, raw}).exit_status, 0);
  EXPECT_EQ(qemu_compare(top, raw), 0);
  EXPECT_EQ(img({"compare", top, raw}).exit_status, 0);
}

TEST_F(KumoImg, CompareTellsIdenticalFromDifferent) {
  const std::string a = path("a.qcow2");
  const std::string b = path("b.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", a, "4M"}).exit_status, 0);
  ASSERT_EQ(img({"create", "-f", "qcow2", b, "4M"}).exit_status, 0);
  EXPECT_EQ(img({"compare", a, b}).exit_status, 0);
  qemu_io(b, "write -P 0x01 3M 512");
  auto r = img({"compare", a, b});
  EXPECT_EQ(r.exit_status, 1) << r.out << r.err;
  EXPECT_EQ(qemu_compare(a, b), 1);
}

TEST_F(KumoImg, CompressedConvertReadsIdenticallyAndPassesCheck) {
  const std::string src = path("src.qcow2");
  const std::string out = path("out.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", src, "8M"}).exit_status, 0);
  qemu_io(src, "write -P 0x33 0 2M");
  qemu_io(src, "write -P 0x44 5M 100k");
  ASSERT_EQ(img({"convert", "-c", "-O", "qcow2", src, out}).exit_status, 0);
  expect_qemu_check_clean(out);
  EXPECT_EQ(qemu_compare(src, out), 0);
  // Repetitive data compresses: the copy is much smaller than the data written.
  EXPECT_LT(fs::file_size(out), 1U << 20);
}

TEST_F(KumoImg, CommitMovesTheOverlaysDataIntoItsBacking) {
  const std::string base = path("base.qcow2");
  const std::string top = path("top.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", base, "8M"}).exit_status, 0);
  qemu_io(base, "write -P 0x11 0 8M");
  ASSERT_EQ(img({"create", "-f", "qcow2", "-b", base, "-F", "qcow2", top}).exit_status, 0);
  qemu_io(top, "write -P 0x22 1M 1M");
  qemu_io(top, "write -z 6M 64k");
  const std::string expected = path("expected.raw");
  ASSERT_EQ(qemu_img({"convert", "-O", "raw", top, expected}).exit_status, 0);

  auto r = img({"commit", top});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  expect_qemu_check_clean(base);
  expect_qemu_check_clean(top);
  EXPECT_EQ(qemu_compare(base, expected), 0);
  EXPECT_EQ(qemu_compare(top, expected), 0);
}

TEST_F(KumoImg, SnapshotsAreListedAppliedAndDeletedAsQemuSeesThem) {
  const std::string image = path("snap.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "4M"}).exit_status, 0);
  qemu_io(image, "write -P 0x55 0 256k");
  const std::string before = path("before.raw");
  ASSERT_EQ(qemu_img({"convert", "-O", "raw", image, before}).exit_status, 0);

  ASSERT_EQ(img({"snapshot", "-c", "first", image}).exit_status, 0);
  qemu_io(image, "write -P 0x66 0 512k");
  EXPECT_NE(qemu_compare(image, before), 0);
  auto list = img({"snapshot", "-l", image});
  EXPECT_NE(list.out.find("first"), std::string::npos) << list.out;
  EXPECT_NE(qemu_img({"snapshot", "-l", image}).out.find("first"), std::string::npos);

  ASSERT_EQ(img({"snapshot", "-a", "first", image}).exit_status, 0);
  EXPECT_EQ(qemu_compare(image, before), 0);
  ASSERT_EQ(img({"snapshot", "-d", "first", image}).exit_status, 0);
  EXPECT_EQ(qemu_img({"snapshot", "-l", image}).out.find("first"), std::string::npos);
  expect_qemu_check_clean(image);
  expect_misuse(img({"snapshot", "-a", "no-such-snapshot", image}), "no-such-snapshot");
}

TEST_F(KumoImg, ResizeGrowsAndShrinksOnlyWhenAsked) {
  const std::string image = path("resize.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "4M"}).exit_status, 0);
  qemu_io(image, "write -P 0x77 3M 64k");
  ASSERT_EQ(img({"resize", image, "+60M"}).exit_status, 0);
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", image})).value("virtual-size", 0ULL),
            64ULL << 20);
  expect_qemu_check_clean(image);
  EXPECT_NE(img({"resize", image, "2M"}).exit_status, 0);  // shrinking needs --shrink
  ASSERT_EQ(img({"resize", "--shrink", image, "2M"}).exit_status, 0);
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", image})).value("virtual-size", 0ULL),
            2ULL << 20);
  expect_qemu_check_clean(image);
}

TEST_F(KumoImg, SafeRebaseKeepsWhatTheGuestSees) {
  const std::string old_base = path("old.qcow2");
  const std::string new_base = path("new.qcow2");
  const std::string top = path("top.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", old_base, "4M"}).exit_status, 0);
  qemu_io(old_base, "write -P 0x01 0 4M");
  ASSERT_EQ(img({"create", "-f", "qcow2", new_base, "4M"}).exit_status, 0);
  qemu_io(new_base, "write -P 0x02 0 2M");
  ASSERT_EQ(img({"create", "-f", "qcow2", "-b", old_base, "-F", "qcow2", top}).exit_status, 0);
  qemu_io(top, "write -P 0x03 1M 64k");
  const std::string expected = path("expected.raw");
  ASSERT_EQ(qemu_img({"convert", "-O", "raw", top, expected}).exit_status, 0);

  auto r = img({"rebase", "-b", new_base, "-F", "qcow2", top});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  expect_qemu_check_clean(top);
  EXPECT_EQ(qemu_compare(top, expected), 0);
  auto info = json_of(qemu_img({"info", "--output=json", top}));
  EXPECT_NE(info.value("backing-filename", "").find("new.qcow2"), std::string::npos);
}

TEST_F(KumoImg, MapShowsWrittenRangesAsData) {
  const std::string image = path("map.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "4M"}).exit_status, 0);
  qemu_io(image, "write -P 0x01 1M 128k");
  auto map = json_of(img({"map", "--output", "json", image}));
  ASSERT_TRUE(map.is_array()) << map.dump();
  uint64_t data_bytes = 0;
  for (const auto& e : map) {
    if (e.value("data", false)) {
      EXPECT_EQ(e.value("start", 0ULL), 1ULL << 20) << e.dump();
      data_bytes += e.value("length", 0ULL);
    }
  }
  EXPECT_EQ(data_bytes, 128ULL << 10);
}

TEST_F(KumoImg, CheckRepairsNothingOnACleanImageAndRefusesRaw) {
  const std::string image = path("check.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "4M"}).exit_status, 0);
  qemu_io(image, "write -P 0x01 0 1M");
  EXPECT_EQ(img({"check", image}).exit_status, 0);
  EXPECT_EQ(img({"check", "-r", "all", image}).exit_status, 0);
  const std::string raw = path("plain.raw");
  ASSERT_EQ(img({"create", "-f", "raw", raw, "1M"}).exit_status, 0);
  EXPECT_EQ(img({"check", "-f", "raw", raw}).exit_status, 63);
}

TEST_F(KumoImg, BenchRunsRandomWritesWithoutErrors) {
  const std::string image = path("bench.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "8M"}).exit_status, 0);
  auto r = img({"bench", "-w", "--pattern", "rand", "-c", "2000", "-d", "8", image});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("requests=2000"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("errors=0"), std::string::npos) << r.out;
  expect_qemu_check_clean(image);
  expect_misuse(img({"bench", "--pattern", "rand", "-o", "3K", image}), "offset");
  expect_misuse(img({"bench", "-o", "8M", image}), "offset");
}

TEST_F(KumoImg, BenchRequestsStayAtOrAboveTheStartingOffset) {
  // 200 sequential 64 KiB writes from 1 MiB in a 2 MiB image wrap around to 1 MiB, not to 0.
  const std::string image = path("offset.qcow2");
  ASSERT_EQ(img({"create", "-f", "qcow2", image, "2M"}).exit_status, 0);
  for (const char* pattern : {"seq", "rand"}) {
    auto r = img({"bench", "-w", "-s", "64K", "-o", "1M", "-c", "200", "--pattern", pattern,
                  image});
    ASSERT_EQ(r.exit_status, 0) << r.err;
  }
  qemu_io(image, "read -P 0 0 1M");        // untouched
  qemu_io(image, "read -P 0xa5 1M 1M");    // every cluster written by the bench
}

// As qemu-img: a size that is not whole 512-byte sectors is rounded up at create (both
// formats), and a qcow2 resize to such a size is refused.
TEST_F(KumoImg, SizesAreWholeSectorsAsInQemuImg) {
  const std::string q = path("odd.qcow2");
  const std::string r = path("odd.raw");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", q, "1000"}).exit_status, 0);
  ASSERT_EQ(img({"create", "-q", "-f", "raw", r, "1000"}).exit_status, 0);
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", q})).value("virtual-size", 0ULL), 1024u);
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", r})).value("virtual-size", 0ULL), 1024u);
  expect_qemu_check_clean(q);
  expect_misuse(img({"resize", q, "3000"}), "multiple of 512");
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", q})).value("virtual-size", 0ULL), 1024u);
  ASSERT_EQ(img({"resize", q, "3072"}).exit_status, 0);
  EXPECT_EQ(json_of(qemu_img({"info", "--output=json", q})).value("virtual-size", 0ULL), 3072u);
  expect_qemu_check_clean(q);
}

TEST_F(KumoImg, MisuseExitsTwoNamingTheProblem) {
  expect_misuse(img({"frobnicate"}), "frobnicate");
  expect_misuse(img({"info", path("missing.qcow2")}), "missing.qcow2");
  expect_misuse(img({"create", "-f", "qcow2", path("x.qcow2"), "12Q"}), "12Q");
  expect_misuse(img({"create", "-f", "vmdk", path("x.vmdk"), "1M"}), "vmdk");
  expect_misuse(img({"convert", "-O", "qcow2", path("missing.raw"), path("out.qcow2")}),
                "missing.raw");
  // A directory is not an image.
  expect_misuse(img({"info", dir_}), dir_);
  // A file that is no qcow2 opened as qcow2.
  const std::string junk = path("junk.bin");
  ASSERT_EQ(img({"create", "-f", "raw", junk, "64K"}).exit_status, 0);
  expect_misuse(img({"info", "-f", "qcow2", junk}), "junk.bin");
}

TEST_F(KumoImg, ConvertWithBackingWritesOnlyWhatDiffersFromIt) {
  make_overlay_chain();
  const std::string out = path("new.qcow2");
  auto r = img({"convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2", path("top.qcow2"),
                out});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  expect_qemu_check_clean(out);
  EXPECT_EQ(qemu_compare(path("top.qcow2"), out), 0);
  auto info = json_of(qemu_img({"info", "--output=json", out}));
  EXPECT_EQ(info.value("backing-filename", ""), "base.qcow2");
  EXPECT_EQ(info.value("backing-filename-format", ""), "qcow2");
  const TopLayer t = top_layer(out);
  EXPECT_EQ(t.data, 2U * 65536);  // the clusters at 1M and 4M
  EXPECT_EQ(t.zero, 2U * 65536);  // 2M+128K, zeros over the base's 0x01 bytes
}

TEST_F(KumoImg, ConvertWithBackingComparesAFlatSourceByContent) {
  make_overlay_chain();
  const std::string flat = path("flat.raw");
  const std::string out = path("new.qcow2");
  ASSERT_EQ(qemu_img({"convert", "-O", "raw", path("top.qcow2"), flat}).exit_status, 0);
  auto r = img({"convert", "-f", "raw", "-O", "qcow2", "-B", "base.qcow2", flat, out});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  expect_qemu_check_clean(out);
  EXPECT_EQ(qemu_compare(flat, out), 0);
  const TopLayer t = top_layer(out);
  EXPECT_EQ(t.data, 2U * 65536);
  EXPECT_EQ(t.zero, 2U * 65536);
}

TEST_F(KumoImg, ConvertWithBackingHonoursCompatCompressionAndClusterSize) {
  make_overlay_chain();
  const std::string top = path("top.qcow2");
  // Version 2 has no zero clusters: the zeros are written as data.
  const std::string v2 = path("v2.qcow2");
  ASSERT_EQ(img({"convert", "-O", "qcow2", "-o", "compat=0.10", "-B", "base.qcow2", top, v2})
                .exit_status,
            0);
  expect_qemu_check_clean(v2);
  EXPECT_EQ(qemu_compare(top, v2), 0);
  EXPECT_EQ(top_layer(v2).data, 4U * 65536);
  const std::string packed = path("c.qcow2");
  ASSERT_EQ(img({"convert", "-c", "-O", "qcow2", "-B", "base.qcow2", top, packed}).exit_status,
            0);
  expect_qemu_check_clean(packed);
  EXPECT_EQ(qemu_compare(top, packed), 0);
  // 4 KiB clusters: only the 4 KiB written at 4M differ inside their 64 KiB source cluster.
  const std::string small = path("s.qcow2");
  ASSERT_EQ(img({"convert", "-O", "qcow2", "-o", "cluster_size=4k", "-B", "base.qcow2", top,
                 small})
                .exit_status,
            0);
  expect_qemu_check_clean(small);
  EXPECT_EQ(qemu_compare(top, small), 0);
  EXPECT_EQ(top_layer(small).data, 65536U + 4096);
}

TEST_F(KumoImg, ConvertWithBackingMisuseExitsTwoAndCreatesNothing) {
  make_overlay_chain();
  const std::string top = path("top.qcow2");
  expect_misuse(img({"convert", "-O", "raw", "-B", "base.qcow2", top, path("out.raw")}),
                "-B needs -O qcow2");
  EXPECT_FALSE(fs::exists(path("out.raw")));
  expect_misuse(img({"convert", "-O", "qcow2", "-F", "qcow2", top, path("out.qcow2")}),
                "-F needs -B");
  expect_misuse(img({"convert", "-O", "qcow2", "-B", "missing.qcow2", top, path("out.qcow2")}),
                "missing.qcow2");
  EXPECT_FALSE(fs::exists(path("out.qcow2")));
  auto help = img({"convert", "--help"});
  EXPECT_NE(help.out.find("-B"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("-F"), std::string::npos) << help.out;
}

TEST_F(KumoImg, CommitIntoADeeperBaseMatchesQemuAndLeavesTheTopReadingTheSame) {
  make_mixed_chain();
  auto r = in_dir(std::string(kKumo) + " img commit -b raw.raw q3.qcow2");
  ASSERT_EQ(r.exit_status, 0) << r.err;
  EXPECT_NE(r.out.find("Image committed."), std::string::npos) << r.out;
  sh("cd oracle && qemu-img commit -q -b raw.raw q3.qcow2");
  // The base holds what the top showed, as qemu-img's commit leaves it, grown to 12 MiB.
  EXPECT_EQ(qemu_compare(path("raw.raw"), path("before.raw")), 0);
  EXPECT_EQ(qemu_compare(path("raw.raw"), path("oracle/raw.raw")), 0);
  EXPECT_EQ(fs::file_size(path("raw.raw")), 12U << 20);
  // -b implies -d: the top keeps its data and still reads the same.
  EXPECT_EQ(qemu_compare(path("q3.qcow2"), path("before.raw")), 0);
  EXPECT_GT(top_layer(path("q3.qcow2")).data, 0U);
  for (const char* image : {"q1.qcow2", "q2.qcow2", "q3.qcow2"}) {
    expect_qemu_check_clean(path(image));
  }
}

TEST_F(KumoImg, CommitIntoAMiddleLayerFillsItAndLeavesTheLayersBelowAlone) {
  make_mixed_chain();
  // BASE named by its absolute path, from another directory.
  auto r = img({"commit", "-q", "-b", path("q1.qcow2"), path("q3.qcow2")});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  sh("cd oracle && qemu-img commit -q -b q1.qcow2 q3.qcow2");
  expect_qemu_check_clean(path("q1.qcow2"));
  expect_qemu_check_clean(path("q3.qcow2"));
  EXPECT_EQ(qemu_compare(path("q1.qcow2"), path("before.raw")), 0);
  EXPECT_EQ(qemu_compare(path("q1.qcow2"), path("oracle/q1.qcow2")), 0);
  EXPECT_EQ(qemu_compare(path("q3.qcow2"), path("before.raw")), 0);
  EXPECT_EQ(qemu_compare(path("raw.raw"), path("raw-before.raw")), 0);
}

TEST_F(KumoImg, CommitWithoutBaseEmptiesTheTopLikeQemu) {
  make_mixed_chain();
  ASSERT_EQ(img({"commit", "-q", path("q3.qcow2")}).exit_status, 0);
  sh("cd oracle && qemu-img commit -q q3.qcow2");
  EXPECT_EQ(qemu_compare(path("q2.qcow2"), path("oracle/q2.qcow2")), 0);
  EXPECT_EQ(qemu_compare(path("q3.qcow2"), path("before.raw")), 0);
  EXPECT_EQ(top_layer(path("q3.qcow2")).data, 0U);
  expect_qemu_check_clean(path("q2.qcow2"));
  expect_qemu_check_clean(path("q3.qcow2"));
}

TEST_F(KumoImg, CommitIntoAnImageOutsideTheChainIsMisuse) {
  make_mixed_chain();
  sh("qemu-img create -q -f qcow2 other.qcow2 8M");
  for (const char* base : {"other.qcow2", "missing.qcow2", "q3.qcow2"}) {
    expect_misuse(in_dir(std::string(kKumo) + " img commit -b " + base + " q3.qcow2"),
                  "did not find");
  }
  EXPECT_EQ(qemu_compare(path("q3.qcow2"), path("before.raw")), 0);
  EXPECT_EQ(qemu_compare(path("raw.raw"), path("raw-before.raw")), 0);
  auto help = img({"commit", "--help"});
  EXPECT_NE(help.out.find("-b"), std::string::npos) << help.out;
}

TEST_F(KumoImg, CreateAndConvertMakeImagesWithSubclusters) {
  make_overlay_chain();
  EXPECT_NE(img({"create", "--help"}).out.find("extended_l2"), std::string::npos);
  const std::string sub = path("sub.qcow2");
  ASSERT_EQ(img({"create", "-q", "-f", "qcow2", "-o", "extended_l2=on", sub, "16M"}).exit_status,
            0);
  auto info = json_of(qemu_img({"info", "--output=json", sub}));
  EXPECT_EQ(info["format-specific"]["data"].value("extended-l2", false), true) << info.dump();
  expect_qemu_check_clean(sub);
  // Over the base, the 4 KiB that differ at 4M take two 2 KiB subclusters of their cluster.
  const std::string out = path("new.qcow2");
  auto r = img({"convert", "-O", "qcow2", "-o", "extended_l2=on", "-B", "base.qcow2",
                path("top.qcow2"), out});
  ASSERT_EQ(r.exit_status, 0) << r.err;
  expect_qemu_check_clean(out);
  EXPECT_EQ(qemu_compare(path("top.qcow2"), out), 0);
  EXPECT_EQ(top_layer(out).data, 65536U + 4096);
  expect_misuse(img({"create", "-f", "qcow2", "-o", "extended_l2=on,cluster_size=8k",
                     path("bad.qcow2"), "16M"}),
                "16 KiB");
  expect_misuse(img({"create", "-f", "qcow2", "-o", "extended_l2=on,compat=0.10",
                     path("bad.qcow2"), "16M"}),
                "compat=1.1");
}

}  // namespace
}  // namespace kumo::test
