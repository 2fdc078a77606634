#include "block/qcow2/qcow2_image.h"

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "block/qcow2/compress.h"
#include "block/qcow2/format.h"
#include "block/raw_file.h"
#include "block/thread_pool_engine.h"

namespace kumo::block {

using namespace qcow2;  // NOLINT(google-build-using-namespace): this file implements qcow2

namespace {

constexpr size_t kPendingFreeLimit = 4096;

std::string real_path(const std::string& path) {
  char* r = ::realpath(path.c_str(), nullptr);
  if (r == nullptr) {
    return path;
  }
  std::string out(r);
  std::free(r);
  return out;
}

}  // namespace

Qcow2Image::Qcow2Image(HostFile file, Header header, OpenOptions options)
    : file_(std::move(file)), header_(std::move(header)), options_(options) {}

Qcow2Image::~Qcow2Image() {
  if (!closed_) {
    [[maybe_unused]] auto st = close();
  }
}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::open(const std::string& path,
                                                     const OpenOptions& options,
                                                     ChainState* chain) {
  HostFile file =
      KUMO_TRY(HostFile::open(path, options.read_only, options.cache == CacheMode::kNone,
                              options.lock));
  const uint64_t file_size = KUMO_TRY(file.size_bytes());
  uint8_t first[24] = {};
  KUMO_TRY(file.pread_full(0, first));
  const uint64_t hint = header_read_size(first);
  const uint64_t want = std::min(hint != 0 ? hint : 4096, file_size);
  std::vector<uint8_t> bytes(want);
  KUMO_TRY(file.pread_full(0, bytes));
  auto header = parse_header(bytes, file_size);
  if (!header) {
    return tl::unexpected(header.error().with_context(fmt::format("'{}'", path)));
  }
  std::unique_ptr<Qcow2Image> img(new Qcow2Image(std::move(file), std::move(*header), options));
  img->host_end_ = file_size;
  ChainState local;
  auto st = img->load(chain != nullptr ? chain : &local);
  if (st && chain == nullptr) {
    st = img->ensure_engine();  // the top image serves the asynchronous path
  }
  if (!st) {
    img->closed_ = true;  // nothing to flush
    const std::string prefix = fmt::format("'{}'", path);
    if (st.error().message.rfind(prefix, 0) == 0) {
      return tl::unexpected(st.error());
    }
    return tl::unexpected(st.error().with_context(prefix));
  }
  return img;
}

Status Qcow2Image::load(ChainState* chain) {
  const Header& h = header_;
  const uint64_t cs = h.cluster_size();
  read_only_ = options_.read_only;
  if ((h.incompatible_features & kIncompatCorrupt) != 0 && !read_only_ &&
      !options_.allow_corrupt) {
    return invalid_input("image is marked corrupt; it can only be opened read-only (repair "
                         "with 'kumo img check -r all')");
  }
  lazy_ = (h.compatible_features & kCompatLazyRefcounts) != 0;
  l2_bits_ = h.cluster_bits - (h.extended_l2() ? 4 : 3);

  // L1 table.
  l1_.assign(h.l1_size, 0);
  std::vector<uint8_t> raw(uint64_t{h.l1_size} * 8);
  KUMO_TRY(file_.pread_full(h.l1_table_offset, raw));
  for (size_t i = 0; i < l1_.size(); ++i) {
    const uint64_t e = load_be64(raw.data() + i * 8);
    const uint64_t off = e & kL1OffsetMask;
    if ((e & kL1ReservedMask) != 0 || off % cs != 0) {
      return invalid_input("L1 entry {} ({:#x}) is malformed", i, e);
    }
    if (off != 0 && (off > host_end_ || cs > host_end_ - off)) {
      return invalid_input("L1 entry {} points to an L2 table at {:#x}, outside the {}-byte "
                           "file",
                           i, off, host_end_);
    }
    l1_[i] = e;
  }
  uint64_t l2_tables = options_.l2_cache_bytes != 0
                           ? options_.l2_cache_bytes / cs
                           : std::min<uint64_t>(std::max<uint64_t>(h.l1_size, 1),
                                                (32ull << 20) / cs);
  l2_cache_ = std::make_unique<MetadataCache>(&file_, cs, std::max<uint64_t>(l2_tables, 2));
  l2_cache_->set_barrier([this] { return barrier(); });
  const uint64_t rc_tables = options_.refcount_cache_bytes != 0
                                 ? options_.refcount_cache_bytes / cs
                                 : std::max<uint64_t>((256u << 10) / cs, 4);
  refcounts_ = std::make_unique<Refcounts>(
      &file_, h.cluster_bits, h.refcount_order, rc_tables,
      [this](uint64_t off, uint32_t clusters) -> Status {
        header_.refcount_table_offset = off;
        header_.refcount_table_clusters = clusters;
        uint8_t b[12];
        store_be64(b, off);
        store_be32(b + 8, clusters);
        return write_header_field(48, b);
      });
  KUMO_TRY(refcounts_->load(h.refcount_table_offset, h.refcount_table_clusters, host_end_));
  KUMO_TRY(load_snapshots());
  KUMO_TRY(open_backing_file(chain));

  if (!read_only_) {
    if (header_.version >= 3 && header_.autoclear_features != 0) {
      header_.autoclear_features = 0;  // we maintain none of them
      uint8_t b[8] = {};
      KUMO_TRY(write_header_field(88, b));
    }
    if (dirty_bit()) {
      // Lazy refcounts after a crash: rebuild them before anything allocates.
      auto report = KUMO_TRY(check(RepairMode::kAll));
      if (report.corruptions > report.corruptions_fixed) {
        return invalid_input("the dirty image could not be repaired: {}",
                             report.messages.empty() ? "" : report.messages.front());
      }
    }
  }
  return {};
}

Status Qcow2Image::load_snapshots() {
  if (header_.nb_snapshots == 0) {
    return {};
  }
  const uint64_t avail = host_end_ - header_.snapshots_offset;
  uint64_t len = std::min<uint64_t>(65536, avail);
  for (;;) {
    std::vector<uint8_t> raw(len);
    KUMO_TRY(file_.pread_full(header_.snapshots_offset, raw));
    auto snaps = parse_snapshot_table(raw, header_.nb_snapshots, cluster_size(), host_end_,
                                      &snapshot_table_bytes_);
    if (snaps) {
      snapshots_ = std::move(*snaps);
      for (Snapshot& s : snapshots_) {
        if (!s.has_disk_size) {
          s.disk_size_bytes = header_.size_bytes;
        }
      }
      return {};
    }
    if (len >= avail || len >= kMaxSnapshotTableBytes) {
      return tl::unexpected(snaps.error());
    }
    len = std::min({len * 4, avail, kMaxSnapshotTableBytes});
  }
}

Status Qcow2Image::open_backing_file(ChainState* chain) {
  if (header_.backing_file.empty()) {
    return {};
  }
  namespace fs = std::filesystem;
  fs::path p(header_.backing_file);
  if (p.is_relative()) {
    p = fs::path(file_.path()).parent_path() / p;
  }
  backing_full_path_ = p.lexically_normal().string();
  if (!options_.open_backing) {
    return {};
  }
  const std::string me = real_path(file_.path());
  if (chain->real_paths.empty()) {
    chain->real_paths.push_back(me);
  }
  const std::string target = real_path(backing_full_path_);
  if (std::find(chain->real_paths.begin(), chain->real_paths.end(), target) !=
      chain->real_paths.end()) {
    return invalid_input("backing chain loops: '{}' is already in the chain", backing_full_path_);
  }
  if (chain->real_paths.size() >= static_cast<size_t>(kMaxChainDepth)) {
    return invalid_input("backing chain too deep (more than {} images)", kMaxChainDepth);
  }
  chain->real_paths.push_back(target);
  OpenOptions bo = options_;
  bo.read_only = true;
  bo.format = ImageFormat::kAuto;
  if (header_.backing_format == "raw") {
    bo.format = ImageFormat::kRaw;
  } else if (header_.backing_format == "qcow2") {
    bo.format = ImageFormat::kQcow2;
  } else if (!header_.backing_format.empty()) {
    return invalid_input("backing file '{}' has unsupported format '{}'", backing_full_path_,
                         header_.backing_format);
  }
  if (bo.format == ImageFormat::kAuto) {
    auto fmt = probe_format(backing_full_path_);
    if (!fmt) {
      return tl::unexpected(
          fmt.error().with_context(fmt::format("backing file '{}'", header_.backing_file)));
    }
    bo.format = *fmt;
  }
  Result<std::unique_ptr<BlockBackend>> b = std::unique_ptr<BlockBackend>();
  if (bo.format == ImageFormat::kQcow2) {
    auto q = Qcow2Image::open(backing_full_path_, bo, chain);
    if (q) {
      b = std::unique_ptr<BlockBackend>(std::move(*q));
    } else {
      b = tl::unexpected(q.error());
    }
  } else {
    b = open_block_backend(backing_full_path_, bo);
  }
  if (!b) {
    return tl::unexpected(
        b.error().with_context(fmt::format("backing file '{}'", header_.backing_file)));
  }
  backing_ = std::move(*b);
  return {};
}

// ---- mapping ---------------------------------------------------------------------------

Status Qcow2Image::check_host_range(uint64_t host, uint64_t len, const char* what,
                                    uint64_t guest) {
  if (host > host_end_ || len > host_end_ - host) {
    return invalid_input("'{}': {} for guest offset {} points to {:#x}, outside the {}-byte "
                         "file; the image is corrupt",
                         file_.path(), what, guest, host, host_end_);
  }
  return {};
}

Result<Qcow2Image::L2Entry> Qcow2Image::l2_entry(uint64_t gc) {
  const uint64_t per = header_.l2_entries();
  const uint64_t l1i = gc / per;
  if (l1i >= l1_.size()) {
    return L2Entry{};
  }
  const uint64_t l2off = l1_[l1i] & kL1OffsetMask;
  if (l2off == 0) {
    return L2Entry{};
  }
  const uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  const uint8_t* p = t + (gc % per) * header_.l2_entry_bytes();
  return L2Entry{load_be64(p), header_.extended_l2() ? load_be64(p + 8) : 0};
}

void Qcow2Image::store_l2_entry(uint8_t* table, uint64_t index, const L2Entry& e) const {
  uint8_t* p = table + index * header_.l2_entry_bytes();
  store_be64(p, e.word);
  if (header_.extended_l2()) {
    store_be64(p + 8, e.bitmap);
  }
}

Qcow2Image::Kind Qcow2Image::subcluster_kind(uint64_t bitmap, uint64_t sc) {
  if (((bitmap >> sc) & 1) != 0) {
    return Kind::kNormal;
  }
  return ((bitmap >> (kBitmapZeroShift + sc)) & 1) != 0 ? Kind::kZero : Kind::kUnallocated;
}

Status Qcow2Image::check_subcluster_host(uint64_t host, uint64_t guest) {
  if (host == 0 || host % cluster_size() != 0) {
    return invalid_input("'{}': subcluster of guest offset {} allocated without a data "
                         "cluster; the image is corrupt",
                         file_.path(), guest);
  }
  // The cluster starts inside the file; the last one may end past it, in subclusters never
  // written (they read as zeros).
  return check_host_range(host, 1, "data cluster", guest);
}

Result<Qcow2Image::Extent> Qcow2Image::map_one(uint64_t offset, uint64_t max_len) {
  const uint64_t cs = cluster_size();
  const uint64_t gc = offset >> header_.cluster_bits;
  const uint64_t in = offset & (cs - 1);
  Extent e;
  e.len = std::min(max_len, cs - in);
  const uint64_t per = header_.l2_entries();
  const uint64_t l1i = gc / per;
  if (l1i >= l1_.size()) {
    return e;
  }
  const uint64_t l2off = l1_[l1i] & kL1OffsetMask;
  if (l2off == 0) {
    return e;
  }
  const uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  const uint8_t* entry = t + (gc % per) * header_.l2_entry_bytes();
  const uint64_t word = load_be64(entry);
  if ((word & kOflagCompressed) != 0) {
    e.kind = Kind::kCompressed;
    e.host = word;
    return e;
  }
  const uint64_t host = word & kL2OffsetMask;
  if (header_.extended_l2()) {
    const uint64_t bitmap = load_be64(entry + 8);
    const uint64_t sc_size = cs / kSubclustersPerCluster;
    const Kind k = subcluster_kind(bitmap, in / sc_size);
    uint64_t end = (in / sc_size + 1) * sc_size;
    while (end < cs && subcluster_kind(bitmap, end / sc_size) == k) {
      end += sc_size;
    }
    e.kind = k;
    e.len = std::min(max_len, end - in);
    if (k == Kind::kNormal) {
      KUMO_TRY(check_subcluster_host(host, offset));
      e.host = host + in;
      e.writable = (word & kOflagCopied) != 0;
    }
    return e;
  }
  if ((word & kOflagZero) != 0 && header_.version >= 3) {
    e.kind = Kind::kZero;
    return e;
  }
  if (host == 0) {
    return e;
  }
  if (host % cs != 0) {
    return invalid_input("'{}': data cluster offset {:#x} for guest offset {} is not cluster "
                         "aligned; the image is corrupt",
                         file_.path(), host, offset);
  }
  // The cluster must start inside the file; a tail past end-of-file reads as zeros.
  KUMO_TRY(check_host_range(host, 1, "data cluster", offset));
  e.kind = Kind::kNormal;
  e.host = host + in;
  e.writable = (word & kOflagCopied) != 0;
  return e;
}

Result<Qcow2Image::Extent> Qcow2Image::map_extent(uint64_t offset, uint64_t max_len) {
  Extent first = KUMO_TRY(map_one(offset, max_len));
  if (first.kind == Kind::kCompressed) {
    return first;
  }
  while (first.len < max_len) {
    const Extent next = KUMO_TRY(map_one(offset + first.len, max_len - first.len));
    if (next.kind != first.kind || next.writable != first.writable ||
        (first.kind == Kind::kNormal && next.host != first.host + first.len)) {
      break;
    }
    first.len += next.len;
  }
  return first;
}

Status Qcow2Image::read_backing(uint64_t offset, std::span<uint8_t> out) {
  if (!backing_) {
    std::memset(out.data(), 0, out.size());
    return {};
  }
  const uint64_t bsize = backing_->size_bytes();
  size_t n = 0;
  if (offset < bsize) {
    n = static_cast<size_t>(std::min<uint64_t>(out.size(), bsize - offset));
    KUMO_TRY(backing_->read(offset, out.first(n)));
  }
  std::memset(out.data() + n, 0, out.size() - n);
  return {};
}

Status Qcow2Image::read_compressed(uint64_t word, uint64_t in_cluster, std::span<uint8_t> out) {
  const uint64_t cs = cluster_size();
  if (decompressed_word_ != word || decompressed_.size() != cs) {
    const uint32_t x = 62 - (header_.cluster_bits - 8);
    const uint64_t coffset = word & ((uint64_t{1} << x) - 1);
    const uint64_t sectors = ((word & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
    const uint64_t csize = sectors * 512 - (coffset & 511);
    if (coffset >= host_end_) {
      return invalid_input("'{}': compressed cluster at {:#x} lies outside the file",
                           file_.path(), coffset);
    }
    std::vector<uint8_t> in(static_cast<size_t>(std::min(csize, 2 * cs + 512)));
    KUMO_TRY(file_.pread_full(coffset, in));
    decompressed_.resize(cs);
    decompressed_word_ = 0;
    auto st = decompress_cluster(header_.compression_type, in, decompressed_);
    if (!st) {
      return tl::unexpected(st.error().with_context(
          fmt::format("'{}': compressed cluster at {:#x}", file_.path(), coffset)));
    }
    decompressed_word_ = word;
  }
  std::memcpy(out.data(), decompressed_.data() + in_cluster, out.size());
  return {};
}

Status Qcow2Image::read_extent(const Extent& e, uint64_t offset, std::span<uint8_t> out) {
  switch (e.kind) {
    case Kind::kUnallocated:
      return read_backing(offset, out);
    case Kind::kZero:
      std::memset(out.data(), 0, out.size());
      return {};
    case Kind::kNormal:
      return file_.pread_full(e.host, out);
    case Kind::kCompressed:
      return read_compressed(e.host, offset & (cluster_size() - 1), out);
  }
  return {};
}

Status Qcow2Image::read(uint64_t offset, std::span<uint8_t> out) {
  KUMO_TRY(check_range(offset, out.size(), header_.size_bytes));
  size_t pos = 0;
  while (pos < out.size()) {
    const Extent e = KUMO_TRY(map_extent(offset + pos, out.size() - pos));
    KUMO_TRY(read_extent(e, offset + pos, out.subspan(pos, e.len)));
    pos += e.len;
  }
  return {};
}

Result<BlockStatus> Qcow2Image::block_status(uint64_t offset, uint64_t max_len) {
  KUMO_TRY(check_range(offset, max_len, header_.size_bytes));
  const Extent e = KUMO_TRY(map_extent(offset, max_len));
  BlockStatus s;
  s.len_bytes = e.len;
  switch (e.kind) {
    case Kind::kUnallocated:
      break;
    case Kind::kZero:
      s.allocated = true;
      s.zero = true;
      break;
    case Kind::kNormal:
      s.allocated = true;
      s.data = true;
      s.host_offset = e.host;
      break;
    case Kind::kCompressed:
      s.allocated = true;
      s.data = true;
      s.compressed = true;
      break;
  }
  return s;
}

// ---- writing ---------------------------------------------------------------------------

Status Qcow2Image::ensure_writable() const {
  if (closed_) {
    return invalid_input("'{}': image is closed", file_.path());
  }
  if (read_only_) {
    return invalid_input("'{}': image is open read-only", file_.path());
  }
  return {};
}

Status Qcow2Image::datasync() {
  KUMO_TRY(file_.datasync());
  unsynced_ = false;
  return {};
}

Status Qcow2Image::barrier() {
  // Before an L2 table reaches the disk: refcounts (unless lazy) and data first, synced.
  if (!lazy_ && refcounts_->dirty()) {
    KUMO_TRY(refcounts_->flush());
    unsynced_ = true;
  }
  if (unsynced_) {
    KUMO_TRY(datasync());
  }
  return {};
}

Status Qcow2Image::write_header_field(uint64_t offset, std::span<const uint8_t> bytes) {
  KUMO_TRY(file_.pwrite_full(offset, bytes));
  unsynced_ = true;
  return {};
}

Status Qcow2Image::write_whole_header() {
  std::vector<uint8_t> raw = KUMO_TRY(serialize_header(header_));
  KUMO_TRY(file_.pwrite_full(0, raw));
  unsynced_ = true;
  return {};
}

Status Qcow2Image::mark_dirty_for_lazy_refcounts() {
  if (!lazy_ || dirty_set_by_us_ || header_.version < 3) {
    return {};
  }
  header_.incompatible_features |= kIncompatDirty;
  uint8_t b[8];
  store_be64(b, header_.incompatible_features);
  KUMO_TRY(write_header_field(72, b));
  KUMO_TRY(datasync());
  dirty_set_by_us_ = true;
  return {};
}

void Qcow2Image::free_later(uint64_t word) {
  if ((word & kOflagCompressed) != 0 || (word & kL2OffsetMask) != 0) {
    pending_free_.push_back(word);
  }
}

Result<uint64_t> Qcow2Image::l2_for_write(uint64_t l1i) {
  const uint64_t e = l1_[l1i];
  const uint64_t old = e & kL1OffsetMask;
  if ((e & kOflagCopied) != 0 && old != 0) {
    return old;
  }
  const uint64_t cs = cluster_size();
  std::vector<uint8_t> copy;
  if (old != 0) {
    const uint8_t* src = KUMO_TRY(l2_cache_->get(old));
    copy.assign(src, src + cs);
  }
  const uint64_t idx = KUMO_TRY(refcounts_->allocate(1));
  const uint64_t off = idx << header_.cluster_bits;
  host_end_ = std::max(host_end_, off + cs);
  uint8_t* dst = KUMO_TRY(l2_cache_->get_fresh(off));
  if (!copy.empty()) {
    std::memcpy(dst, copy.data(), cs);
    pending_free_.push_back(old);  // the shared table loses the active L1's reference
  }
  l1_[l1i] = off | kOflagCopied;
  l1_dirty_.push_back(l1i);
  return off;
}

Status Qcow2Image::read_old_cluster(uint64_t gc, const L2Entry& old, uint64_t in_cluster,
                                    std::span<uint8_t> out) {
  if (out.empty()) {
    return {};
  }
  const uint64_t cs = cluster_size();
  const uint64_t guest = (gc << header_.cluster_bits) + in_cluster;
  const uint64_t word = old.word;
  if ((word & kOflagCompressed) != 0) {
    return read_compressed(word, in_cluster, out);
  }
  const uint64_t host = word & kL2OffsetMask;
  if (header_.extended_l2()) {
    const uint64_t sc_size = cs / kSubclustersPerCluster;
    for (uint64_t pos = 0; pos < out.size();) {
      const uint64_t at = in_cluster + pos;
      const Extent e{subcluster_kind(old.bitmap, at / sc_size),
                     std::min<uint64_t>(out.size() - pos, sc_size - at % sc_size), host + at};
      if (e.kind == Kind::kNormal) {
        KUMO_TRY(check_subcluster_host(host, guest + pos));
      }
      KUMO_TRY(read_extent(e, guest + pos,
                           out.subspan(static_cast<size_t>(pos), static_cast<size_t>(e.len))));
      pos += e.len;
    }
    return {};
  }
  if ((word & kOflagZero) != 0 && header_.version >= 3) {
    std::memset(out.data(), 0, out.size());
    return {};
  }
  if (host != 0) {
    KUMO_TRY(check_host_range(host, cs, "data cluster", guest));
    return file_.pread_full(host + in_cluster, out);
  }
  return read_backing(guest, out);
}

Status Qcow2Image::write_in_cluster(uint64_t offset, std::span<const uint8_t> in) {
  if (header_.extended_l2()) {
    return write_subclusters(offset, in);
  }
  const uint64_t cs = cluster_size();
  const uint64_t gc = offset >> header_.cluster_bits;
  const uint64_t in_off = offset & (cs - 1);
  const uint64_t per = header_.l2_entries();
  const uint64_t l2off = KUMO_TRY(l2_for_write(gc / per));
  const uint64_t idx = gc % per;
  const L2Entry old = KUMO_TRY(l2_entry(gc));
  const uint64_t word = old.word;
  const uint64_t host = word & kL2OffsetMask;
  const bool compressed = (word & kOflagCompressed) != 0;
  const bool zero = (word & kOflagZero) != 0 && header_.version >= 3;
  if (!compressed && (word & kOflagCopied) != 0 && host != 0) {
    KUMO_TRY(check_host_range(host, cs, "data cluster", offset));
    if (!zero) {
      KUMO_TRY(file_.pwrite_full(host + in_off, in));
      unsynced_ = true;
      return {};
    }
    // A preallocated zero cluster: fill it, then drop the zero flag.
    std::vector<uint8_t> buf(cs, 0);
    std::memcpy(buf.data() + in_off, in.data(), in.size());
    KUMO_TRY(file_.pwrite_full(host, buf));
    unsynced_ = true;
    uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
    store_l2_entry(t, idx, {host | kOflagCopied});
    l2_cache_->mark_dirty(l2off);
    return {};
  }
  std::vector<uint8_t> buf(cs);
  if (in.size() < cs) {
    KUMO_TRY(read_old_cluster(gc, old, 0, std::span(buf).first(in_off)));
    KUMO_TRY(read_old_cluster(gc, old, in_off + in.size(),
                              std::span(buf).subspan(in_off + in.size())));
  }
  std::memcpy(buf.data() + in_off, in.data(), in.size());
  const uint64_t new_idx = KUMO_TRY(refcounts_->allocate(1));
  const uint64_t new_host = new_idx << header_.cluster_bits;
  host_end_ = std::max(host_end_, new_host + cs);
  KUMO_TRY(file_.pwrite_full(new_host, buf));
  unsynced_ = true;
  uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  store_l2_entry(t, idx, {new_host | kOflagCopied});
  l2_cache_->mark_dirty(l2off);
  free_later(word);
  return {};
}

Status Qcow2Image::write_subclusters(uint64_t offset, std::span<const uint8_t> in) {
  const uint64_t cs = cluster_size();
  const uint64_t sc_size = cs / kSubclustersPerCluster;
  const uint64_t gc = offset >> header_.cluster_bits;
  const uint64_t in_off = offset & (cs - 1);
  const uint64_t in_end = in_off + in.size();
  const uint64_t per = header_.l2_entries();
  const uint64_t l2off = KUMO_TRY(l2_for_write(gc / per));
  const L2Entry old = KUMO_TRY(l2_entry(gc));
  const bool compressed = (old.word & kOflagCompressed) != 0;
  const uint64_t host = compressed ? 0 : old.word & kL2OffsetMask;
  const uint32_t alloc = compressed ? 0 : static_cast<uint32_t>(old.bitmap & kBitmapAllocMask);
  const uint32_t touched = subcluster_mask(static_cast<uint32_t>(in_off / sc_size),
                                           static_cast<uint32_t>((in_end - 1) / sc_size + 1));
  const bool in_place = host != 0 && (old.word & kOflagCopied) != 0;
  // A new cluster also takes every subcluster the old one had (a compressed one: all).
  const uint32_t to_write = touched | (in_place ? 0 : compressed ? kAllSubclusters : alloc);
  uint64_t target = host;
  if (!in_place) {
    target = KUMO_TRY(refcounts_->allocate(1)) << header_.cluster_bits;
    host_end_ = std::max(host_end_, target + cs);
  } else {
    KUMO_TRY(check_subcluster_host(host, offset));
  }
  std::vector<uint8_t> buf(cs);
  for (uint32_t a = 0; a < kSubclustersPerCluster;) {
    if (((to_write >> a) & 1) == 0) {
      ++a;
      continue;
    }
    uint32_t b = a;
    while (b < kSubclustersPerCluster && ((to_write >> b) & 1) != 0) {
      ++b;
    }
    uint64_t lo = a * sc_size;
    uint64_t hi = b * sc_size;
    if (in_place) {
      // The run is `touched`: an allocated subcluster at either end keeps its bytes on disk.
      if (((alloc >> a) & 1) != 0) {
        lo = in_off;
      }
      if (((alloc >> (b - 1)) & 1) != 0) {
        hi = in_end;
      }
    }
    // [new_lo, new_hi): the part of the run the write covers (empty for runs beside it).
    const uint64_t new_lo = std::clamp(in_off, lo, hi);
    const uint64_t new_hi = std::clamp(in_end, lo, hi);
    KUMO_TRY(read_old_cluster(gc, old, lo, std::span(buf).subspan(lo, new_lo - lo)));
    if (new_hi > new_lo) {
      std::memcpy(buf.data() + new_lo, in.data() + (new_lo - in_off), new_hi - new_lo);
    }
    KUMO_TRY(read_old_cluster(gc, old, new_hi, std::span(buf).subspan(new_hi, hi - new_hi)));
    KUMO_TRY(file_.pwrite_full(target + lo, std::span(buf).subspan(lo, hi - lo)));
    unsynced_ = true;
    a = b;
  }
  const uint32_t now_alloc = alloc | to_write;
  const uint32_t now_zero =
      static_cast<uint32_t>(old.bitmap >> kBitmapZeroShift) & ~now_alloc;
  const L2Entry e{target | kOflagCopied, now_alloc | (uint64_t{now_zero} << kBitmapZeroShift)};
  if (e != old) {
    uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
    store_l2_entry(t, gc % per, e);
    l2_cache_->mark_dirty(l2off);
  }
  if (!in_place) {
    free_later(old.word);
  }
  return {};
}

Status Qcow2Image::write(uint64_t offset, std::span<const uint8_t> in) {
  KUMO_TRY(ensure_writable());
  KUMO_TRY(check_range(offset, in.size(), header_.size_bytes));
  KUMO_TRY(mark_dirty_for_lazy_refcounts());
  const uint64_t cs = cluster_size();
  size_t pos = 0;
  while (pos < in.size()) {
    const uint64_t off = offset + pos;
    // In-place runs over allocated clusters go out as one write.
    const Extent e = KUMO_TRY(map_extent(off, in.size() - pos));
    if (e.kind == Kind::kNormal && e.writable) {
      KUMO_TRY(file_.pwrite_full(e.host, in.subspan(pos, e.len)));
      unsynced_ = true;
      pos += e.len;
      continue;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(in.size() - pos, cs - (off & (cs - 1))));
    KUMO_TRY(write_in_cluster(off, in.subspan(pos, n)));
    pos += n;
  }
  if (pending_free_.size() > kPendingFreeLimit) {
    KUMO_TRY(flush_metadata());
  }
  return {};
}

Status Qcow2Image::set_l2_entry(uint64_t gc, const L2Entry& e, bool allocate_l2) {
  const uint64_t per = header_.l2_entries();
  const uint64_t l1i = gc / per;
  if (l1i >= l1_.size()) {
    return {};
  }
  if ((l1_[l1i] & kL1OffsetMask) == 0 && !allocate_l2) {
    return {};
  }
  const L2Entry old = KUMO_TRY(l2_entry(gc));
  if (old == e) {
    return {};
  }
  const uint64_t l2off = KUMO_TRY(l2_for_write(l1i));
  uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  store_l2_entry(t, gc % per, e);
  l2_cache_->mark_dirty(l2off);
  const bool keeps_host = (old.word & kOflagCompressed) == 0 &&
                          (old.word & kL2OffsetMask) == (e.word & kL2OffsetMask);
  if (!keeps_host) {
    free_later(old.word);
  }
  return {};
}

Status Qcow2Image::zero_subclusters(uint64_t gc, uint32_t mask) {
  const uint64_t cs = cluster_size();
  const L2Entry old = KUMO_TRY(l2_entry(gc));
  if ((old.word & kOflagCompressed) != 0 && mask != kAllSubclusters) {
    // Part of a compressed cluster: write the zeros (the cluster becomes a standard one).
    const uint64_t sc_size = cs / kSubclustersPerCluster;
    const std::vector<uint8_t> zeros(sc_size, 0);
    for (uint32_t sc = 0; sc < kSubclustersPerCluster; ++sc) {
      const uint64_t at = (gc << header_.cluster_bits) + sc * sc_size;
      if (((mask >> sc) & 1) != 0 && at < header_.size_bytes) {
        KUMO_TRY(write(at, std::span(zeros).first(static_cast<size_t>(
                               std::min(sc_size, header_.size_bytes - at)))));
      }
    }
    return {};
  }
  const bool compressed = (old.word & kOflagCompressed) != 0;
  const uint32_t alloc =
      compressed ? 0 : static_cast<uint32_t>(old.bitmap & kBitmapAllocMask) & ~mask;
  uint32_t zero = static_cast<uint32_t>(old.bitmap >> kBitmapZeroShift);
  zero = backing_ ? (zero | mask) : (zero & ~mask);
  // Without an allocated subcluster the host cluster has no use left.
  const L2Entry e{alloc != 0 ? old.word : 0, alloc | (uint64_t{zero} << kBitmapZeroShift)};
  return set_l2_entry(gc, e, e != L2Entry{});
}

Status Qcow2Image::discard(uint64_t offset, uint64_t len) {
  KUMO_TRY(ensure_writable());
  KUMO_TRY(check_range(offset, len, header_.size_bytes));
  KUMO_TRY(mark_dirty_for_lazy_refcounts());
  const uint64_t cs = cluster_size();
  // Whole clusters (extended L2: whole subclusters); a range that ends the disk includes its
  // partial last one.
  const uint64_t unit = header_.extended_l2() ? cs / kSubclustersPerCluster : cs;
  const uint64_t end = offset + len == header_.size_bytes ? align_up(offset + len, cs)
                                                          : (offset + len) / unit * unit;
  if (header_.extended_l2()) {
    for (uint64_t pos = align_up(offset, unit); pos < end;) {
      const uint64_t stop = std::min(end, (pos / cs + 1) * cs);
      const auto first = static_cast<uint32_t>(pos % cs / unit);
      const auto last = static_cast<uint32_t>((stop - 1) % cs / unit + 1);
      KUMO_TRY(zero_subclusters(pos / cs, subcluster_mask(first, last)));
      pos = stop;
    }
  } else {
    // With a backing file, a discarded cluster must not show the backing data again (v3 zero
    // flag); v2 cannot express that, so the backing data shows through.
    const uint64_t word = (backing_ && header_.version >= 3) ? kOflagZero : 0;
    for (uint64_t c = align_up(offset, cs); c < end; c += cs) {
      KUMO_TRY(set_l2_entry(c / cs, {word}, word != 0));
    }
  }
  if (pending_free_.size() > kPendingFreeLimit) {
    KUMO_TRY(flush_metadata());
  }
  return {};
}

Status Qcow2Image::write_zeroes(uint64_t offset, uint64_t len) {
  KUMO_TRY(ensure_writable());
  KUMO_TRY(check_range(offset, len, header_.size_bytes));
  KUMO_TRY(mark_dirty_for_lazy_refcounts());
  const uint64_t cs = cluster_size();
  const std::vector<uint8_t> zeros(cs, 0);
  // Bytes inside one cluster that only a write of zeros can clear (unless they read so).
  auto write_zero_bytes = [&](uint64_t at, uint64_t n) -> Status {
    if (n == 0) {
      return {};
    }
    const Extent e = KUMO_TRY(map_one(at, n));
    const bool reads_zero =
        e.len >= n && (e.kind == Kind::kZero || (e.kind == Kind::kUnallocated && !backing_));
    if (reads_zero) {
      return {};
    }
    return write(at, std::span(zeros).first(static_cast<size_t>(n)));
  };
  uint64_t pos = offset;
  const uint64_t end = offset + len;
  while (pos < end) {
    const uint64_t in = pos & (cs - 1);
    const uint64_t n = std::min(end - pos, cs - in);
    const bool ends_disk = pos + n == header_.size_bytes;
    if (header_.extended_l2()) {
      // Whole subclusters by their zero bits, the partial ones at either end by writing.
      const uint64_t sc_size = cs / kSubclustersPerCluster;
      const uint64_t first = div_round_up(in, sc_size);
      const uint64_t last = ends_disk ? kSubclustersPerCluster : (in + n) / sc_size;
      if (first < last) {
        KUMO_TRY(zero_subclusters(pos / cs, subcluster_mask(static_cast<uint32_t>(first),
                                                            static_cast<uint32_t>(last))));
        const uint64_t head_end = std::min(first * sc_size, in + n);
        const uint64_t tail_start = std::min(last * sc_size, in + n);
        KUMO_TRY(write_zero_bytes(pos, head_end - in));
        KUMO_TRY(write_zero_bytes(pos - in + tail_start, in + n - tail_start));
      } else {
        KUMO_TRY(write_zero_bytes(pos, n));
      }
    } else if (in == 0 && (n == cs || ends_disk) && header_.version >= 3) {
      // Unallocated without a backing file already reads as zeros.
      const uint64_t word = backing_ ? kOflagZero : 0;
      KUMO_TRY(set_l2_entry(pos / cs, {word}, word != 0));
    } else {
      KUMO_TRY(write_zero_bytes(pos, n));
    }
    pos += n;
  }
  if (pending_free_.size() > kPendingFreeLimit) {
    KUMO_TRY(flush_metadata());
  }
  return {};
}

Status Qcow2Image::write_compressed(uint64_t offset, std::span<const uint8_t> data) {
  KUMO_TRY(ensure_writable());
  const uint64_t cs = cluster_size();
  if (offset % cs != 0 ||
      (data.size() != cs && offset + data.size() != header_.size_bytes) || data.size() > cs) {
    return invalid_input("compressed writes take one whole, aligned cluster");
  }
  KUMO_TRY(check_range(offset, data.size(), header_.size_bytes));
  const uint64_t gc = offset / cs;
  const L2Entry old = KUMO_TRY(l2_entry(gc));
  if ((old.word & ~kOflagZero) != 0 || (old.bitmap & kBitmapAllocMask) != 0) {
    return invalid_input("compressed writes go to unallocated clusters only");
  }
  std::vector<uint8_t> full(cs, 0);
  std::memcpy(full.data(), data.data(), data.size());
  auto packed = compress_cluster(header_.compression_type, full);
  if (!packed) {
    return write(offset, data);
  }
  KUMO_TRY(mark_dirty_for_lazy_refcounts());
  const uint64_t len = packed->size();
  uint64_t at = 0;
  if (compressed_cursor_ != 0 && compressed_cursor_ + len <= compressed_end_) {
    at = compressed_cursor_;
    KUMO_TRY(refcounts_->update(at / cs, 1));  // one more compressed cluster in this one
  } else {
    const uint64_t n = div_round_up(len, cs);
    const uint64_t idx = KUMO_TRY(refcounts_->allocate(n));
    at = idx * cs;
    compressed_end_ = (idx + n) * cs;
    host_end_ = std::max(host_end_, compressed_end_);
  }
  compressed_cursor_ = at + len;
  KUMO_TRY(file_.pwrite_full(at, *packed));
  unsynced_ = true;
  const uint32_t x = 62 - (header_.cluster_bits - 8);
  const uint64_t sectors = (at + len - 1) / 512 - at / 512;
  const uint64_t word = kOflagCompressed | (sectors << x) | at;
  const uint64_t per = header_.l2_entries();
  const uint64_t l2off = KUMO_TRY(l2_for_write(gc / per));
  uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  store_l2_entry(t, gc % per, {word});  // compressed clusters have no subcluster bitmap
  l2_cache_->mark_dirty(l2off);
  return {};
}

Status Qcow2Image::flush_metadata() {
  if (read_only_ || closed_) {
    return {};
  }
  if (refcounts_->dirty()) {
    KUMO_TRY(refcounts_->flush());
    unsynced_ = true;
  }
  if (l2_cache_->has_dirty() || !l1_dirty_.empty()) {
    if (unsynced_) {
      KUMO_TRY(datasync());
    }
    KUMO_TRY(l2_cache_->flush());
  }
  if (!l1_dirty_.empty()) {
    std::sort(l1_dirty_.begin(), l1_dirty_.end());
    l1_dirty_.erase(std::unique(l1_dirty_.begin(), l1_dirty_.end()), l1_dirty_.end());
    KUMO_TRY(datasync());  // L2 tables before the L1 entries pointing at them
    for (uint64_t i : l1_dirty_) {
      uint8_t b[8];
      store_be64(b, l1_[i]);
      KUMO_TRY(file_.pwrite_full(header_.l1_table_offset + i * 8, b));
    }
    l1_dirty_.clear();
    unsynced_ = true;
  }
  if (!pending_free_.empty()) {
    KUMO_TRY(datasync());  // the unlinking L2/L1 updates before the refcount decrements
    const uint64_t cs = cluster_size();
    const uint32_t x = 62 - (header_.cluster_bits - 8);
    std::vector<uint64_t> frees;
    frees.swap(pending_free_);
    for (uint64_t w : frees) {
      if ((w & kOflagCompressed) != 0) {
        const uint64_t coff = w & ((uint64_t{1} << x) - 1);
        const uint64_t sectors = ((w & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
        const uint64_t last = (coff / 512 + sectors) * 512 - 1;
        for (uint64_t c = coff / cs; c <= last / cs; ++c) {
          KUMO_TRY(refcounts_->update(c, -1));
        }
        if (decompressed_word_ == w) {
          decompressed_word_ = 0;
        }
        continue;
      }
      const uint64_t host = w & kL2OffsetMask;
      KUMO_TRY(refcounts_->update(host / cs, -1));
      if (KUMO_TRY(refcounts_->get(host / cs)) == 0) {
        l2_cache_->discard(host);
      }
    }
    KUMO_TRY(refcounts_->flush());
    unsynced_ = true;
  }
  return {};
}

Status Qcow2Image::flush() {
  if (read_only_ || closed_) {
    return {};
  }
  KUMO_TRY(flush_metadata());
  if (unsynced_) {
    KUMO_TRY(datasync());
  }
  return {};
}

Status Qcow2Image::close() {
  if (closed_) {
    return {};
  }
  if (engine_) {
    settle_engine();  // copy-on-writes still in flight get their L2 entries
  }
  Status st = flush();
  if (st && dirty_set_by_us_) {
    header_.incompatible_features &= ~kIncompatDirty;
    uint8_t b[8];
    store_be64(b, header_.incompatible_features);
    st = write_header_field(72, b);
    if (st) {
      st = datasync();
    }
    dirty_set_by_us_ = false;
  }
  if (backing_) {
    [[maybe_unused]] auto bs = backing_->close();
  }
  closed_ = true;
  engine_.reset();
  return st;
}

// ---- header-level operations -------------------------------------------------------------

Status Qcow2Image::write_l1_table_to(uint64_t offset, const std::vector<uint64_t>& l1) {
  std::vector<uint8_t> raw(align_up(std::max<uint64_t>(l1.size() * 8, 1), cluster_size()), 0);
  for (size_t i = 0; i < l1.size(); ++i) {
    store_be64(raw.data() + i * 8, l1[i]);
  }
  KUMO_TRY(file_.pwrite_full(offset, raw));
  unsynced_ = true;
  return {};
}

Status Qcow2Image::resize(uint64_t new_size, bool allow_shrink) {
  KUMO_TRY(ensure_writable());
  if (new_size > kMaxVirtualSize) {
    return invalid_input("'{}': size {} is too large", file_.path(), new_size);
  }
  if (new_size % 512 != 0) {
    return invalid_input("'{}': the new size {} must be a multiple of 512 bytes", file_.path(),
                         new_size);
  }
  if (!snapshots_.empty() && new_size < header_.size_bytes) {
    return invalid_input("'{}': cannot shrink an image that has internal snapshots",
                         file_.path());
  }
  const uint64_t old_size = header_.size_bytes;
  const uint64_t cs = cluster_size();
  if (new_size < old_size) {
    if (!allow_shrink) {
      return invalid_input("'{}': shrinking needs --shrink (data past {} bytes is lost)",
                           file_.path(), new_size);
    }
    const uint64_t first = align_up(new_size, cs) / cs;
    for (uint64_t c = first; c < div_round_up(old_size, cs); ++c) {
      KUMO_TRY(set_l2_entry(c, {}, false));
    }
    // Bytes past the new end inside the last cluster must read as zeros if it grows again.
    if (new_size % cs != 0) {
      KUMO_TRY(write_zeroes(new_size, std::min(align_up(new_size, cs), old_size) - new_size));
    }
  }
  KUMO_TRY(flush_metadata());
  const uint64_t need = header_.l1_entries_needed(new_size);
  if (need * 8 > kMaxL1Bytes) {
    return invalid_input("'{}': size {} needs an L1 table larger than {} bytes", file_.path(),
                         new_size, kMaxL1Bytes);
  }
  if (need > l1_.size()) {
    std::vector<uint64_t> l1 = l1_;
    l1.resize(need, 0);
    const uint64_t clusters = div_round_up(need * 8, cs);
    const uint64_t idx = KUMO_TRY(refcounts_->allocate(clusters));
    host_end_ = std::max(host_end_, (idx + clusters) * cs);
    KUMO_TRY(write_l1_table_to(idx * cs, l1));
    KUMO_TRY(refcounts_->flush());
    KUMO_TRY(datasync());
    const uint64_t old_off = header_.l1_table_offset;
    const uint64_t old_clusters = div_round_up(uint64_t{header_.l1_size} * 8, cs);
    header_.l1_table_offset = idx * cs;
    header_.l1_size = static_cast<uint32_t>(need);
    l1_ = std::move(l1);
    uint8_t b[12];
    store_be32(b, header_.l1_size);
    store_be64(b + 4, header_.l1_table_offset);
    KUMO_TRY(write_header_field(36, b));
    KUMO_TRY(datasync());
    for (uint64_t i = 0; i < old_clusters && old_off != 0; ++i) {
      KUMO_TRY(refcounts_->update(old_off / cs + i, -1));
    }
  }
  header_.size_bytes = new_size;
  uint8_t b[8];
  store_be64(b, new_size);
  KUMO_TRY(write_header_field(24, b));
  if (new_size > old_size && backing_ && backing_->size_bytes() > old_size) {
    // The new area must not show the backing file's data.
    KUMO_TRY(write_zeroes(old_size, new_size - old_size));
  } else if (new_size > old_size && old_size % cs != 0) {
    const uint64_t tail_end = std::min(align_up(old_size, cs), new_size);
    KUMO_TRY(write_zeroes(old_size, tail_end - old_size));
  }
  return flush();
}

Status Qcow2Image::set_backing(const std::string& file, const std::string& format) {
  KUMO_TRY(ensure_writable());
  KUMO_TRY(flush());
  Header h = header_;
  h.backing_file = file;
  h.backing_format = file.empty() ? "" : format;
  std::vector<uint8_t> raw = KUMO_TRY(serialize_header(h));
  header_ = std::move(h);
  KUMO_TRY(file_.pwrite_full(0, raw));
  KUMO_TRY(datasync());
  backing_.reset();
  backing_full_path_.clear();
  ChainState chain;
  return open_backing_file(&chain);
}

Status Qcow2Image::make_empty() {
  KUMO_TRY(ensure_writable());
  KUMO_TRY(mark_dirty_for_lazy_refcounts());
  const uint64_t clusters = div_round_up(header_.size_bytes, cluster_size());
  for (uint64_t c = 0; c < clusters; ++c) {
    KUMO_TRY(set_l2_entry(c, {}, false));
    if (pending_free_.size() > kPendingFreeLimit) {
      KUMO_TRY(flush_metadata());
    }
  }
  return flush();
}

Result<std::unique_ptr<BlockBackend>> open_qcow2_backend(const std::string& path,
                                                         const OpenOptions& options) {
  auto img = KUMO_TRY(Qcow2Image::open(path, options));
  return std::unique_ptr<BlockBackend>(std::move(img));
}

}  // namespace kumo::block
