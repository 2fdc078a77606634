// Conformance against the oracle, qemu-img (QEMU 7.2): seeded random operation sequences run
// through kumo are checked with `qemu-img check` and `qemu-img compare` against a raw
// reference; sequences run through qemu-io are read back through kumo; backing chains mix both
// tools. Every test is reproducible from its seed (printed on failure). Skips without qemu-img.

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "block/host_file.h"
#include "block/open_backend.h"
#include "block/qcow2/qcow2_image.h"
#include "block/test_util.h"

namespace kumo::block {
namespace {

using testing::run_command;
using testing::ScratchDir;

#define REQUIRE_QEMU()                                     \
  if (!testing::have_qemu_img()) {                         \
    GTEST_SKIP() << "qemu-img not installed (qemu-utils)"; \
  }

void write_raw(const std::string& path, const std::vector<uint8_t>& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

std::vector<uint8_t> read_all(BlockBackend& b) {
  std::vector<uint8_t> out(b.size_bytes());
  EXPECT_TRUE(b.read(0, out));
  return out;
}

std::string check_clean(const std::string& path) {
  auto r = run_command("qemu-img check " + path);
  return r.exit_code == 0 ? "" : r.output;
}

struct Model {
  std::vector<uint8_t> data;  // what the guest sees
  std::vector<uint8_t> base;  // the backing file's content ("" if none)
};

// One seeded sequence of kumo operations; returns a failure description or "". With
// extended L2 entries, clusters are 16 KiB to 2 MiB, half the writes are a few subclusters
// long and discards cover whole subclusters.
std::string run_kumo_sequence(uint32_t seed, const ScratchDir& dir, bool extended_l2 = false) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const uint32_t cluster_sizes[] = {512, 4096, 65536, 65536, 2 << 20};
  const uint32_t ext_cluster_sizes[] = {16384, 65536, 131072, 65536, 2 << 20};
  const uint32_t cs = (extended_l2 ? ext_cluster_sizes : cluster_sizes)[pick(5)];
  const uint32_t sc = extended_l2 ? cs / 32 : cs;  // the unit of allocation and discard
  const uint32_t version = pick(4) == 0 && !extended_l2 ? 2 : 3;
  const uint32_t widths[] = {1, 2, 4, 8, 16, 16, 32, 64};
  const uint32_t bits = version == 2 ? 16 : widths[pick(8)];
  const bool with_backing = pick(2) == 0;
  const bool lazy = version == 3 && pick(4) == 0;
  uint64_t size = (4 + pick(28)) << 20;
  const std::string img = dir.file(fmt::format("k{}.qcow2", seed));
  const std::string base = dir.file(fmt::format("k{}-base.raw", seed));
  const std::string ctx = fmt::format("seed={} cs={} v{} bits={} backing={} lazy={} ext_l2={}",
                                      seed, cs, version, bits, with_backing, lazy, extended_l2);
  Model m;
  m.data.assign(size, 0);
  Qcow2CreateOptions co;
  co.size_bytes = size;
  co.cluster_size = cs;
  co.version = version;
  co.refcount_bits = bits;
  co.lazy_refcounts = lazy;
  co.extended_l2 = extended_l2;
  if (with_backing) {
    m.base.resize(size - (pick(2) << 20));  // sometimes shorter than the overlay
    for (size_t i = 0; i < m.base.size(); i += 4096) {
      std::memset(m.base.data() + i, static_cast<int>(i / 4096 % 251 + 1), 4096);
    }
    write_raw(base, m.base);
    std::copy(m.base.begin(), m.base.end(), m.data.begin());
    co.backing_file = fmt::format("k{}-base.raw", seed);
    co.backing_format = "raw";
  }
  if (!create_qcow2(img, co)) {
    return ctx + ": create failed";
  }
  std::unique_ptr<Qcow2Image> q = std::move(*Qcow2Image::open(img, {}));
  std::vector<std::pair<std::string, std::vector<uint8_t>>> snaps;
  const int ops = 120;
  for (int op = 0; op < ops; ++op) {
    const uint64_t kind = pick(100);
    const std::string where = fmt::format("{} op {}", ctx, op);
    if (kind < 45) {
      const uint64_t max_len = extended_l2 && pick(2) == 0 ? 3 * sc : 300000;
      const uint64_t len = 1 + pick(std::min<uint64_t>(size, max_len));
      const uint64_t off = pick(size - len + 1);
      std::vector<uint8_t> buf(len);
      const auto v = static_cast<uint8_t>(rng());
      for (size_t i = 0; i < len; ++i) {
        buf[i] = static_cast<uint8_t>(v + i / 512);
      }
      if (auto st = q->write(off, buf); !st) {
        return where + " write: " + st.error().to_string();
      }
      std::memcpy(m.data.data() + off, buf.data(), len);
    } else if (kind < 55) {
      const uint64_t len = 1 + pick(std::min<uint64_t>(size, 1 << 20));
      const uint64_t off = pick(size - len + 1);
      if (auto st = q->write_zeroes(off, len); !st) {
        return where + " write_zeroes: " + st.error().to_string();
      }
      std::memset(m.data.data() + off, 0, len);
    } else if (kind < 65) {
      // Whole clusters (subclusters) only: partial discards are advisory.
      const uint64_t c0 = pick(size / sc);
      const uint64_t n = 1 + pick(std::min<uint64_t>(size / sc - c0, 64));
      if (auto st = q->discard(c0 * sc, n * sc); !st) {
        return where + " discard: " + st.error().to_string();
      }
      for (uint64_t i = c0 * sc; i < (c0 + n) * sc; ++i) {
        const bool shows_base = version == 2 && with_backing;
        m.data[i] = shows_base && i < m.base.size() ? m.base[i] : 0;
      }
    } else if (kind < 72 && version == 3 && (bits >= 8 || snaps.size() + 3 < (1u << bits))) {
      // (Each snapshot adds a reference to every cluster, and applying one another for a
      // while: at most 2^bits - 1 in all.)
      const std::string name = fmt::format("s{}", op);
      if (auto st = q->snapshot_create(name); !st) {
        return where + " snapshot -c: " + st.error().to_string();
      }
      snaps.emplace_back(name, m.data);
    } else if (kind < 77 && !snaps.empty()) {
      const size_t i = pick(snaps.size());
      if (auto st = q->snapshot_apply(snaps[i].first); !st) {
        return where + " snapshot -a: " + st.error().to_string();
      }
      m.data = snaps[i].second;
      size = m.data.size();
    } else if (kind < 81 && !snaps.empty()) {
      const size_t i = pick(snaps.size());
      if (auto st = q->snapshot_delete(snaps[i].first); !st) {
        return where + " snapshot -d: " + st.error().to_string();
      }
      snaps.erase(snaps.begin() + static_cast<long>(i));
    } else if (kind < 85 && snaps.empty()) {
      const bool grow = pick(3) != 0;
      const uint64_t half = size / 1024 * 512;  // whole sectors: qemu rounds sizes down to them
      const uint64_t new_size =
          grow ? size + (1 + pick(8)) * 512 * 1024 : std::max<uint64_t>(half + 512, 1 << 20);
      if (auto st = q->resize(new_size, true); !st) {
        return where + " resize: " + st.error().to_string();
      }
      m.data.resize(new_size, 0);
      size = new_size;
    } else if (kind < 95) {
      if (auto st = q->flush(); !st) {
        return where + " flush: " + st.error().to_string();
      }
    } else {
      if (auto st = q->close(); !st) {
        return where + " close: " + st.error().to_string();
      }
      q.reset();
      if (std::string c = check_clean(img); !c.empty()) {
        return where + " qemu-img check after close:\n" + c;
      }
      q = std::move(*Qcow2Image::open(img, {}));
    }
  }
  if (read_all(*q) != m.data) {
    return ctx + ": kumo reads differ from the model";
  }
  if (auto st = q->close(); !st) {
    return ctx + " final close: " + st.error().to_string();
  }
  q.reset();
  if (std::string c = check_clean(img); !c.empty()) {
    return ctx + " final qemu-img check:\n" + c;
  }
  const std::string ref = dir.file(fmt::format("k{}-ref.raw", seed));
  write_raw(ref, m.data);
  auto cmp = run_command("qemu-img compare -f qcow2 -F raw " + img + " " + ref);
  if (cmp.exit_code != 0) {
    return ctx + " qemu-img compare: " + cmp.output;
  }
  return "";
}

TEST(Qcow2Conformance, KumoRandomSequencesPassQemuCheckAndCompare) {
  REQUIRE_QEMU();
  ScratchDir dir;
  for (uint32_t seed = 1; seed <= 12; ++seed) {
    const std::string failure = run_kumo_sequence(seed, dir);
    EXPECT_EQ(failure, "") << "reproduce with seed " << seed;
  }
}

TEST(Qcow2Conformance, KumoRandomSequencesWithSubclustersPassQemuCheckAndCompare) {
  REQUIRE_QEMU();
  ScratchDir dir;
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    const std::string failure = run_kumo_sequence(seed, dir, true);
    EXPECT_EQ(failure, "") << "reproduce with seed " << seed << " (extended L2)";
  }
}

// qemu-io commands that change an image, applied to its raw model as they are added.
struct QemuIoScript {
  std::vector<uint8_t>& model;
  std::string cmds;

  void write(uint64_t off, uint64_t len, uint8_t value) {
    cmds += fmt::format(" -c 'write -q -P {} {} {}'", value, off, len);
    std::memset(model.data() + off, value, len);
  }
  void write_zeroes(uint64_t off, uint64_t len) {
    cmds += fmt::format(" -c 'write -q -z {} {}'", off, len);
    std::memset(model.data() + off, 0, len);
  }
  void discard(uint64_t off, uint64_t len) {  // whole clusters: they read as zeros after
    cmds += fmt::format(" -c 'discard -q {} {}'", off, len);
    std::memset(model.data() + off, 0, len);
  }
  // Runs the script on `img`; the output of a failure, else "".
  [[nodiscard]] std::string run(const std::string& img) const {
    auto c = run_command("qemu-io -f qcow2" + cmds + " " + img);
    return c.exit_code == 0 ? "" : c.output;
  }
};

// qemu-io writes, kumo reads.
std::string run_qemu_sequence(uint32_t seed, const ScratchDir& dir) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const char* cluster_sizes[] = {"4096", "65536", "65536", "131072"};
  const std::string cs_text = cluster_sizes[pick(4)];
  const uint64_t cs = std::stoull(cs_text);
  const bool v2 = pick(4) == 0;
  const bool ext_l2 = !v2 && cs >= 16384 && pick(3) == 0;
  const bool zstd = !v2 && pick(4) == 0;
  const uint32_t widths[] = {1, 4, 8, 16, 32, 64};
  const uint32_t bits = v2 ? 16 : widths[pick(6)];
  const uint64_t size = (4 + pick(20)) << 20;
  const std::string img = dir.file(fmt::format("q{}.qcow2", seed));
  const std::string opts = fmt::format(
      "cluster_size={},compat={},refcount_bits={},extended_l2={},compression_type={}", cs_text,
      v2 ? "0.10" : "1.1", bits, ext_l2 ? "on" : "off", zstd ? "zstd" : "zlib");
  const std::string ctx = fmt::format("seed={} {}", seed, opts);
  auto c = run_command(fmt::format("qemu-img create -q -f qcow2 -o {} {} {}", opts, img, size));
  if (c.exit_code != 0) {
    return ctx + " create: " + c.output;
  }
  std::vector<uint8_t> model(size, 0);
  QemuIoScript script{model, ""};
  for (int op = 0; op < 60; ++op) {
    const uint64_t kind = pick(10);
    const uint64_t len = (1 + pick(64)) * 4096;
    const uint64_t off = pick((size - len) / 512 + 1) * 512;
    if (kind < 6) {
      script.write(off, len, static_cast<uint8_t>(1 + pick(250)));
    } else if (kind < 8) {
      script.write_zeroes(off, len);
    } else {
      const uint64_t c0 = pick(size / cs);
      const uint64_t n = 1 + pick(std::min<uint64_t>(size / cs - c0, 16));
      script.discard(c0 * cs, n * cs);
    }
  }
  if (auto failure = script.run(img); !failure.empty()) {
    return ctx + " qemu-io: " + failure;
  }
  if (!v2 && bits > 1) {
    c = run_command("qemu-img snapshot -c snap " + img);
    if (c.exit_code != 0) {
      return ctx + " snapshot: " + c.output;
    }
    c = run_command(fmt::format("qemu-io -f qcow2 -c 'write -q -P 7 0 64k' {}", img));
    std::memset(model.data(), 7, 65536);
  }
  auto q = Qcow2Image::open(img, {.read_only = true});
  if (!q) {
    return ctx + " kumo open: " + q.error().to_string();
  }
  if (read_all(**q) != model) {
    return ctx + ": kumo reads differ from what qemu-io wrote";
  }
  // Compressed clusters, written by qemu-img.
  const std::string comp = dir.file(fmt::format("q{}-c.qcow2", seed));
  c = run_command(fmt::format("qemu-img convert -c -O qcow2 -o compression_type={} {} {}",
                              zstd ? "zstd" : "zlib", img, comp));
  if (c.exit_code != 0) {
    return ctx + " convert -c: " + c.output;
  }
  auto qc = Qcow2Image::open(comp, {.read_only = true});
  if (!qc) {
    return ctx + " kumo open compressed: " + qc.error().to_string();
  }
  if (read_all(**qc) != model) {
    return ctx + ": kumo reads of compressed clusters differ";
  }
  // And kumo can keep writing the qemu-made image, which stays check-clean.
  auto w = Qcow2Image::open(img, {});
  if (!w) {
    return ctx + " kumo open rw: " + w.error().to_string();
  }
  std::vector<uint8_t> buf(100000, 0x42);
  if (!(*w)->write(cs / 2, buf) || !(*w)->write_zeroes(cs * 3 + 1000, cs) ||
      !(*w)->close()) {
    return ctx + " kumo write into qemu image failed";
  }
  std::memcpy(model.data() + cs / 2, buf.data(), buf.size());
  std::memset(model.data() + cs * 3 + 1000, 0, cs);
  if (std::string chk = check_clean(img); !chk.empty()) {
    return ctx + " qemu-img check after kumo write:\n" + chk;
  }
  const std::string ref = dir.file(fmt::format("q{}-ref.raw", seed));
  write_raw(ref, model);
  c = run_command("qemu-img compare -F raw " + img + " " + ref);
  if (c.exit_code != 0) {
    return ctx + " qemu-img compare after kumo write: " + c.output;
  }
  return "";
}

TEST(Qcow2Conformance, QemuWrittenImagesReadIdenticallyThroughKumo) {
  REQUIRE_QEMU();
  ScratchDir dir;
  for (uint32_t seed = 100; seed < 110; ++seed) {
    const std::string failure = run_qemu_sequence(seed, dir);
    EXPECT_EQ(failure, "") << "reproduce with seed " << seed;
  }
}

// Subcluster images change hands: qemu-img creates an extended-L2 overlay over a raw base,
// then kumo and qemu-io take turns writing, zeroing and discarding in it; after every turn
// `qemu-img check` is clean and `qemu-img compare` matches the model.
std::string run_subcluster_handover(uint32_t seed, const ScratchDir& dir) {
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return n == 0 ? 0 : rng() % n; };
  const uint64_t cs = pick(2) == 0 ? 65536 : 32768;
  const uint64_t sc = cs / 32;
  const uint64_t size = 8 << 20;
  const std::string img = dir.file(fmt::format("h{}.qcow2", seed));
  const std::string base = dir.file(fmt::format("h{}-base.raw", seed));
  const std::string ref = dir.file(fmt::format("h{}-ref.raw", seed));
  const std::string ctx = fmt::format("seed={} cs={}", seed, cs);
  std::vector<uint8_t> model(size);
  for (size_t i = 0; i < size; i += 512) {
    std::memset(model.data() + i, static_cast<int>(i / 512 % 253 + 1), 512);
  }
  write_raw(base, model);
  auto c = run_command(fmt::format(
      "qemu-img create -q -f qcow2 -o extended_l2=on,cluster_size={} -b {} -F raw {}", cs,
      base, img));
  if (c.exit_code != 0) {
    return ctx + " create: " + c.output;
  }
  for (int turn = 0; turn < 6; ++turn) {
    const std::string where = fmt::format("{} turn {}", ctx, turn);
    if (turn % 2 == 0) {
      auto q = Qcow2Image::open(img, {});
      if (!q) {
        return where + " kumo open: " + q.error().to_string();
      }
      for (int op = 0; op < 40; ++op) {
        const uint64_t kind = pick(10);
        const uint64_t len = 1 + pick(kind < 3 ? 3 * sc : 5 * cs);
        const uint64_t off = pick(size - len + 1);
        Status st;
        if (kind < 6) {
          std::vector<uint8_t> buf(len, static_cast<uint8_t>(1 + pick(250)));
          st = (*q)->write(off, buf);
          std::memcpy(model.data() + off, buf.data(), len);
        } else if (kind < 8) {
          st = (*q)->write_zeroes(off, len);
          std::memset(model.data() + off, 0, len);
        } else {
          const uint64_t first = off / sc;
          const uint64_t n = 1 + len / sc;
          st = (*q)->discard(first * sc, std::min(n * sc, size - first * sc));
          std::memset(model.data() + first * sc, 0, std::min(n * sc, size - first * sc));
        }
        if (!st) {
          return fmt::format("{} op {}: {}", where, op, st.error().to_string());
        }
      }
      if (auto st = (*q)->close(); !st) {
        return where + " close: " + st.error().to_string();
      }
    } else {
      QemuIoScript script{model, ""};
      for (int op = 0; op < 40; ++op) {
        const uint64_t kind = pick(10);
        if (kind < 8) {
          const uint64_t len = (1 + pick(kind < 4 ? 8 : 256)) * 512;
          const uint64_t off = pick((size - len) / 512 + 1) * 512;
          if (kind < 6) {
            script.write(off, len, static_cast<uint8_t>(1 + pick(250)));
          } else {
            script.write_zeroes(off, len);
          }
        } else {
          const uint64_t c0 = pick(size / cs);
          const uint64_t n = 1 + pick(std::min<uint64_t>(size / cs - c0, 4));
          script.discard(c0 * cs, n * cs);
        }
      }
      if (auto failure = script.run(img); !failure.empty()) {
        return where + " qemu-io: " + failure;
      }
    }
    if (std::string chk = check_clean(img); !chk.empty()) {
      return where + " qemu-img check:\n" + chk;
    }
    write_raw(ref, model);
    c = run_command("qemu-img compare -F raw " + img + " " + ref);
    if (c.exit_code != 0) {
      return where + " qemu-img compare: " + c.output;
    }
  }
  auto q = Qcow2Image::open(img, {.read_only = true});
  if (!q) {
    return ctx + " kumo open: " + q.error().to_string();
  }
  return read_all(**q) == model ? "" : ctx + ": kumo reads differ from the model";
}

TEST(Qcow2Conformance, SubclusterImagesChangeHandsBetweenKumoAndQemu) {
  REQUIRE_QEMU();
  ScratchDir dir;
  for (uint32_t seed = 200; seed < 208; ++seed) {
    const std::string failure = run_subcluster_handover(seed, dir);
    EXPECT_EQ(failure, "") << "reproduce with seed " << seed;
  }
}

TEST(Qcow2Conformance, MixedBackingChainsWorkInBothDirections) {
  REQUIRE_QEMU();
  ScratchDir dir;
  const std::string base = dir.file("base.qcow2"), mid = dir.file("mid.qcow2"),
                    top = dir.file("top.qcow2");
  // qemu base, kumo middle, qemu top.
  ASSERT_EQ(run_command("qemu-img create -q -f qcow2 " + base + " 16M").exit_code, 0);
  ASSERT_EQ(run_command("qemu-io -f qcow2 -c 'write -q -P 1 0 16M' " + base).exit_code, 0);
  ASSERT_TRUE(create_qcow2(mid, {.size_bytes = 16 << 20, .backing_file = "base.qcow2",
                                 .backing_format = "qcow2"}));
  {
    auto m = std::move(*Qcow2Image::open(mid, {}));
    ASSERT_TRUE(m->write(4096, std::vector<uint8_t>(8192, 2)));
    ASSERT_TRUE(m->write_zeroes(1 << 20, 1 << 20));
    ASSERT_TRUE(m->close());
  }
  ASSERT_EQ(run_command("qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 " + top).exit_code,
            0);
  ASSERT_EQ(run_command("qemu-io -f qcow2 -c 'write -q -P 3 8M 4k' " + top).exit_code, 0);
  std::vector<uint8_t> model(16 << 20, 1);
  std::memset(model.data() + 4096, 2, 8192);
  std::memset(model.data() + (1 << 20), 0, 1 << 20);
  std::memset(model.data() + (8 << 20), 3, 4096);
  auto t = Qcow2Image::open(top, {.read_only = true});
  ASSERT_TRUE(t) << t.error().to_string();
  EXPECT_EQ(read_all(**t), model);
  const std::string ref = dir.file("ref.raw");
  write_raw(ref, model);
  EXPECT_EQ(run_command("qemu-img compare -F raw " + top + " " + ref).exit_code, 0);
  EXPECT_EQ(check_clean(mid), "");
  // kumo commit-like flow through the CLI's library pieces: kumo overlay over qemu chain.
  const std::string top2 = dir.file("top2.qcow2");
  ASSERT_TRUE(create_qcow2(top2, {.size_bytes = 16 << 20, .backing_file = "top.qcow2",
                                  .backing_format = "qcow2"}));
  {
    auto k = std::move(*Qcow2Image::open(top2, {}));
    ASSERT_TRUE(k->write(8 << 20, std::vector<uint8_t>(100, 4)));
    ASSERT_TRUE(k->close());
  }
  std::memset(model.data() + (8 << 20), 4, 100);
  write_raw(ref, model);
  EXPECT_EQ(run_command("qemu-img compare -F raw " + top2 + " " + ref).exit_code, 0);
  EXPECT_EQ(check_clean(top2), "");
}

// Crash safety: cut the write stream after N writes (a power cut), reopen, and check that
// qemu-img finds no corruption (leaks are allowed) and flushed data survived.
TEST(Qcow2Conformance, CuttingWritesShortLeaksButNeverCorrupts) {
  REQUIRE_QEMU();
  ScratchDir dir;
  for (uint32_t seed = 1; seed <= 24; ++seed) {
    std::mt19937_64 rng(seed);
    const std::string img = dir.file(fmt::format("crash{}.qcow2", seed));
    const uint32_t cs = seed % 3 == 0 ? 4096 : 65536;
    ASSERT_TRUE(create_qcow2(img, {.size_bytes = 32 << 20, .cluster_size = cs,
                                   .refcount_bits = seed % 2 == 0 ? 16u : 1u}));
    std::vector<uint8_t> durable(32 << 20, 0);
    {
      auto q = std::move(*Qcow2Image::open(img, {}));
      // A flushed prefix that must survive.
      std::vector<uint8_t> a(1 << 20, 0x11);
      ASSERT_TRUE(q->write(3 << 20, a));
      if (seed % 2 == 0) {
        ASSERT_TRUE(q->snapshot_create("s"));
      }
      ASSERT_TRUE(q->flush());
      std::memcpy(durable.data() + (3 << 20), a.data(), a.size());
      q->host_file_for_testing().set_write_budget(rng() % 120);
      for (int i = 0; i < 60; ++i) {
        const uint64_t off = rng() % ((32 << 20) - 200000);
        const uint64_t what = rng() % 10;
        if (off >= (2 << 20) && off < (5 << 20)) {
          continue;  // keep the durable region untouched
        }
        Status st;
        if (what < 6) {
          st = q->write(off, std::vector<uint8_t>(1 + rng() % 200000, 0x22));
        } else if (what < 8) {
          st = q->discard(off / cs * cs, std::min<uint64_t>(8 * cs, (32 << 20) - off / cs * cs));
        } else {
          st = q->flush();
        }
        ASSERT_TRUE(st) << st.error().to_string();
      }
    }  // the destructor's writes are dropped too once the budget is spent
    auto r = run_command("qemu-img check " + img);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 3) << "seed " << seed << "\n" << r.output;
    auto q = Qcow2Image::open(img, {.read_only = true});
    ASSERT_TRUE(q) << q.error().to_string();
    std::vector<uint8_t> got(1 << 20);
    ASSERT_TRUE((*q)->read(3 << 20, got));
    EXPECT_EQ(got, std::vector<uint8_t>(1 << 20, 0x11)) << "seed " << seed;
  }
}

}  // namespace
}  // namespace kumo::block
