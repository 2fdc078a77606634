// Qcow2Image: internal snapshots (qcow2.rst "Snapshots"). A snapshot is a copy of the active
// L1 table; creating one adds a reference to every L2 table and data cluster it reaches, and
// the COPIED bit of the active tables then follows the new refcounts.
//
// Ordering: references are added (and synced) before anything points at them, and removed
// only after nothing does, so a crash in between leaks clusters at worst.

#include <chrono>
#include <cstring>

#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"

namespace kumo::block {

using namespace qcow2;  // NOLINT(google-build-using-namespace)

Result<std::vector<uint64_t>> Qcow2Image::read_l1(uint64_t offset, uint32_t size) {
  std::vector<uint8_t> raw(uint64_t{size} * 8);
  KUMO_TRY(file_.pread_full(offset, raw));
  std::vector<uint64_t> l1(size);
  for (size_t i = 0; i < l1.size(); ++i) {
    l1[i] = load_be64(raw.data() + i * 8);
  }
  return l1;
}

Status Qcow2Image::update_tree_refcounts(const std::vector<uint64_t>& l1, int64_t delta) {
  const uint64_t cs = cluster_size();
  const uint32_t x = 62 - (header_.cluster_bits - 8);
  const uint64_t eb = header_.l2_entry_bytes();
  std::vector<uint8_t> table(cs);
  for (uint64_t e : l1) {
    const uint64_t off = e & kL1OffsetMask;
    if (off == 0) {
      continue;
    }
    KUMO_TRY(check_host_range(off, cs, "L2 table", 0));
    const uint8_t* t = KUMO_TRY(l2_cache_->get(off));
    std::memcpy(table.data(), t, cs);
    for (uint64_t i = 0; i < header_.l2_entries(); ++i) {
      const uint64_t w = load_be64(table.data() + i * eb);
      if ((w & kOflagCompressed) != 0) {
        const uint64_t coff = w & ((uint64_t{1} << x) - 1);
        const uint64_t sectors = ((w & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
        const uint64_t last = (coff / 512 + sectors) * 512 - 1;
        for (uint64_t c = coff / cs; c <= last / cs; ++c) {
          KUMO_TRY(refcounts_->update(c, delta));
        }
        continue;
      }
      const uint64_t host = w & kL2OffsetMask;
      if (host != 0) {
        KUMO_TRY(refcounts_->update(host / cs, delta));
      }
    }
    KUMO_TRY(refcounts_->update(off / cs, delta));
    if (delta < 0 && KUMO_TRY(refcounts_->get(off / cs)) == 0) {
      l2_cache_->discard(off);
    }
  }
  return {};
}

Status Qcow2Image::fix_copied_flags() {
  const uint64_t cs = cluster_size();
  const uint64_t eb = header_.l2_entry_bytes();
  for (size_t i = 0; i < l1_.size(); ++i) {
    const uint64_t off = l1_[i] & kL1OffsetMask;
    if (off == 0) {
      continue;
    }
    const bool one = KUMO_TRY(refcounts_->get(off / cs)) == 1;
    const uint64_t want = off | (one ? kOflagCopied : 0);
    if (want != l1_[i]) {
      l1_[i] = want;
      l1_dirty_.push_back(i);
    }
    for (uint64_t j = 0; j < header_.l2_entries(); ++j) {
      uint8_t* t = KUMO_TRY(l2_cache_->get(off));
      const uint64_t w = load_be64(t + j * eb);
      const uint64_t host = w & kL2OffsetMask;
      if ((w & kOflagCompressed) != 0 || host == 0) {
        continue;
      }
      const bool data_one = KUMO_TRY(refcounts_->get(host / cs)) == 1;
      const uint64_t wanted = data_one ? (w | kOflagCopied) : (w & ~kOflagCopied);
      if (wanted != w) {
        t = KUMO_TRY(l2_cache_->get(off));
        store_be64(t + j * eb, wanted);
        l2_cache_->mark_dirty(off);
      }
    }
  }
  return {};
}

int Qcow2Image::find_snapshot(const std::string& name) const {
  for (size_t i = 0; i < snapshots_.size(); ++i) {
    if (snapshots_[i].name == name) {
      return static_cast<int>(i);
    }
  }
  for (size_t i = 0; i < snapshots_.size(); ++i) {
    if (snapshots_[i].id == name) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Status Qcow2Image::write_snapshot_table(std::vector<Snapshot> snaps) {
  const uint64_t cs = cluster_size();
  const std::vector<uint8_t> raw = serialize_snapshot_table(snaps);
  if (raw.size() > kMaxSnapshotTableBytes) {
    return invalid_input("'{}': snapshot table too large", file_.path());
  }
  uint64_t new_off = 0;
  if (!raw.empty()) {
    const uint64_t n = div_round_up(raw.size(), cs);
    const uint64_t idx = KUMO_TRY(refcounts_->allocate(n));
    new_off = idx * cs;
    host_end_ = std::max(host_end_, (idx + n) * cs);
    std::vector<uint8_t> padded(n * cs, 0);
    std::memcpy(padded.data(), raw.data(), raw.size());
    KUMO_TRY(file_.pwrite_full(new_off, padded));
  }
  KUMO_TRY(refcounts_->flush());
  KUMO_TRY(datasync());
  uint8_t b[12];
  store_be32(b, static_cast<uint32_t>(snaps.size()));
  store_be64(b + 4, new_off);
  KUMO_TRY(write_header_field(60, b));
  KUMO_TRY(datasync());
  const uint64_t old_off = header_.snapshots_offset;
  const uint64_t old_clusters = header_.nb_snapshots > 0 ? div_round_up(snapshot_table_bytes_, cs)
                                                         : 0;
  header_.nb_snapshots = static_cast<uint32_t>(snaps.size());
  header_.snapshots_offset = new_off;
  snapshot_table_bytes_ = raw.size();
  snapshots_ = std::move(snaps);
  for (uint64_t i = 0; i < old_clusters; ++i) {
    KUMO_TRY(refcounts_->update(old_off / cs + i, -1));
  }
  return {};
}

Status Qcow2Image::snapshot_create(const std::string& name) {
  KUMO_TRY(ensure_writable());
  if (name.empty() || name.size() > 65535) {
    return invalid_input("'{}': invalid snapshot name", file_.path());
  }
  if (find_snapshot(name) >= 0) {
    return invalid_input("'{}': a snapshot named '{}' already exists", file_.path(), name);
  }
  if (snapshots_.size() >= kMaxSnapshots) {
    return invalid_input("'{}': too many snapshots", file_.path());
  }
  KUMO_TRY(flush());
  const uint64_t cs = cluster_size();
  Snapshot s;
  s.l1_size = header_.l1_size;
  if (s.l1_size > 0) {
    const uint64_t n = div_round_up(uint64_t{s.l1_size} * 8, cs);
    const uint64_t idx = KUMO_TRY(refcounts_->allocate(n));
    host_end_ = std::max(host_end_, (idx + n) * cs);
    s.l1_table_offset = idx * cs;
    KUMO_TRY(write_l1_table_to(s.l1_table_offset, l1_));
  }
  KUMO_TRY(update_tree_refcounts(l1_, +1));
  KUMO_TRY(refcounts_->flush());
  KUMO_TRY(datasync());
  KUMO_TRY(fix_copied_flags());
  KUMO_TRY(flush_metadata());
  uint64_t max_id = 0;
  for (const Snapshot& o : snapshots_) {
    max_id = std::max<uint64_t>(max_id, std::strtoull(o.id.c_str(), nullptr, 10));
  }
  s.id = std::to_string(max_id + 1);
  s.name = name;
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
  s.date_sec = static_cast<uint32_t>(ns / 1000000000);
  s.date_nsec = static_cast<uint32_t>(ns % 1000000000);
  s.disk_size_bytes = header_.size_bytes;
  s.has_disk_size = true;
  std::vector<Snapshot> snaps = snapshots_;
  snaps.push_back(std::move(s));
  KUMO_TRY(write_snapshot_table(std::move(snaps)));
  return flush();
}

Status Qcow2Image::snapshot_delete(const std::string& name) {
  KUMO_TRY(ensure_writable());
  const int i = find_snapshot(name);
  if (i < 0) {
    return invalid_input("'{}': no snapshot named '{}'", file_.path(), name);
  }
  KUMO_TRY(flush());
  const Snapshot s = snapshots_[static_cast<size_t>(i)];
  std::vector<Snapshot> snaps = snapshots_;
  snaps.erase(snaps.begin() + i);
  KUMO_TRY(write_snapshot_table(std::move(snaps)));
  const std::vector<uint64_t> l1 = KUMO_TRY(read_l1(s.l1_table_offset, s.l1_size));
  KUMO_TRY(update_tree_refcounts(l1, -1));
  const uint64_t cs = cluster_size();
  for (uint64_t c = 0; c < div_round_up(uint64_t{s.l1_size} * 8, cs); ++c) {
    KUMO_TRY(refcounts_->update(s.l1_table_offset / cs + c, -1));
  }
  KUMO_TRY(fix_copied_flags());
  return flush();
}

Status Qcow2Image::snapshot_apply(const std::string& name) {
  KUMO_TRY(ensure_writable());
  const int i = find_snapshot(name);
  if (i < 0) {
    return invalid_input("'{}': no snapshot named '{}'", file_.path(), name);
  }
  KUMO_TRY(flush());
  const Snapshot s = snapshots_[static_cast<size_t>(i)];
  const uint64_t cs = cluster_size();
  std::vector<uint64_t> l1 = KUMO_TRY(read_l1(s.l1_table_offset, s.l1_size));
  const uint64_t need = std::max<uint64_t>(header_.l1_entries_needed(s.disk_size_bytes),
                                           s.l1_size);
  KUMO_TRY(update_tree_refcounts(l1, +1));
  KUMO_TRY(refcounts_->flush());
  KUMO_TRY(datasync());
  const std::vector<uint64_t> old_l1 = l1_;
  const uint64_t old_off = header_.l1_table_offset;
  const uint64_t old_clusters = div_round_up(uint64_t{header_.l1_size} * 8, cs);
  l1.resize(std::max<uint64_t>(need, 0), 0);
  uint64_t l1_off = old_off;
  bool moved = false;
  if (div_round_up(l1.size() * 8, cs) > old_clusters || old_off == 0) {
    const uint64_t n = div_round_up(std::max<uint64_t>(l1.size() * 8, 8), cs);
    const uint64_t idx = KUMO_TRY(refcounts_->allocate(n));
    host_end_ = std::max(host_end_, (idx + n) * cs);
    l1_off = idx * cs;
    moved = true;
    KUMO_TRY(refcounts_->flush());
  }
  KUMO_TRY(write_l1_table_to(l1_off, l1));
  KUMO_TRY(datasync());
  header_.size_bytes = s.disk_size_bytes;
  header_.l1_size = static_cast<uint32_t>(l1.size());
  header_.l1_table_offset = l1_off;
  uint8_t b[24];
  store_be64(b, header_.size_bytes);
  store_be32(b + 8, 0);  // crypt_method
  store_be32(b + 12, header_.l1_size);
  store_be64(b + 16, header_.l1_table_offset);
  KUMO_TRY(write_header_field(24, b));
  KUMO_TRY(datasync());
  l1_ = std::move(l1);
  l1_dirty_.clear();
  KUMO_TRY(update_tree_refcounts(old_l1, -1));
  if (moved) {
    for (uint64_t c = 0; c < old_clusters && old_off != 0; ++c) {
      KUMO_TRY(refcounts_->update(old_off / cs + c, -1));
    }
  }
  KUMO_TRY(fix_copied_flags());
  return flush();
}

}  // namespace kumo::block
