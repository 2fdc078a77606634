// Qcow2Image::check(): the consistency rules `qemu-img check` applies (QEMU
// block/qcow2-refcount.c semantics, reimplemented): every cluster's refcount equals the
// number of references to it (header, L1 tables, L2 tables, data, compressed data, snapshot
// table, refcount table and blocks); the COPIED bit in the active tables is set exactly when
// the refcount is 1; metadata lies inside the file and is aligned.

#include <cstring>

#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"

namespace kumo::block {

using namespace qcow2;  // NOLINT(google-build-using-namespace)

Status Qcow2Image::count_references(std::vector<uint64_t>* refs, bool include_refcounts,
                                    CheckReport* report) {
  const uint64_t cs = cluster_size();
  const uint64_t nb = div_round_up(host_end_, cs);
  refs->assign(nb, 0);
  auto add = [&](uint64_t off, uint64_t len, const char* what) {
    if (len == 0) {
      return;
    }
    const uint64_t first = off / cs;
    const uint64_t last = (off + len - 1) / cs;
    for (uint64_t c = first; c <= last; ++c) {
      if (c >= nb) {
        if (report != nullptr) {
          ++report->corruptions;
          report->messages.push_back(fmt::format(
              "ERROR {} at offset {:#x} lies past the end of the image file", what, c * cs));
        }
        return;
      }
      ++(*refs)[c];
    }
  };
  const uint32_t x = 62 - (header_.cluster_bits - 8);
  const uint64_t eb = header_.l2_entry_bytes();
  std::vector<uint8_t> table(cs);
  auto walk = [&](const std::vector<uint64_t>& l1, bool active) -> Status {
    uint64_t prev_host = 0;
    for (size_t i = 0; i < l1.size(); ++i) {
      const uint64_t off = l1[i] & kL1OffsetMask;
      if (off == 0) {
        continue;
      }
      if (off % cs != 0 || off >= host_end_) {
        if (report != nullptr) {
          ++report->corruptions;
          report->messages.push_back(
              fmt::format("ERROR L2 table offset {:#x} (L1 index {}) is invalid", off, i));
        }
        continue;
      }
      add(off, cs, "L2 table");
      KUMO_TRY(file_.pread_full(off, table));
      for (uint64_t j = 0; j < header_.l2_entries(); ++j) {
        const uint64_t w = load_be64(table.data() + j * eb);
        if (header_.extended_l2() && report != nullptr) {
          // "Extended L2 Entries": no bitmap for compressed clusters; a subcluster is never
          // both allocated and zero; allocated subclusters need a host cluster.
          const uint64_t bitmap = load_be64(table.data() + j * eb + 8);
          const uint64_t alloc = bitmap & kBitmapAllocMask;
          const bool bad = (w & kOflagCompressed) != 0
                               ? bitmap != 0
                               : (alloc & (bitmap >> kBitmapZeroShift)) != 0 ||
                                     (alloc != 0 && (w & kL2OffsetMask) == 0);
          if (bad) {
            ++report->corruptions;
            report->messages.push_back(fmt::format(
                "ERROR L2 entry {:#x} (L1 index {}, entry {}) has a corrupt subcluster "
                "allocation bitmap {:#x}",
                w, i, j, bitmap));
          }
        }
        if ((w & kOflagCompressed) != 0) {
          const uint64_t coff = w & ((uint64_t{1} << x) - 1);
          const uint64_t sectors = ((w & ~kOflagCopied & ~kOflagCompressed) >> x) + 1;
          const uint64_t end = (coff / 512 + sectors) * 512;
          add(coff, end - coff, "compressed cluster");
          if (active && report != nullptr) {
            ++report->compressed_clusters;
            ++report->allocated_clusters;
          }
          continue;
        }
        const uint64_t host = w & kL2OffsetMask;
        if (host == 0) {
          continue;
        }
        if (host % cs != 0) {
          if (report != nullptr) {
            ++report->corruptions;
            report->messages.push_back(
                fmt::format("ERROR data cluster offset {:#x} is not cluster aligned", host));
          }
          continue;
        }
        add(host, cs, "data cluster");
        if (active && report != nullptr) {
          ++report->allocated_clusters;
          if (prev_host != 0 && host != prev_host + cs) {
            ++report->fragmented_clusters;
          }
          prev_host = host;
        }
      }
    }
    return {};
  };
  add(0, cs, "header");
  add(header_.l1_table_offset, uint64_t{header_.l1_size} * 8, "L1 table");
  KUMO_TRY(walk(l1_, true));
  for (const Snapshot& s : snapshots_) {
    add(s.l1_table_offset, uint64_t{s.l1_size} * 8, "snapshot L1 table");
    auto l1 = read_l1(s.l1_table_offset, s.l1_size);
    if (!l1) {
      return tl::unexpected(l1.error());
    }
    KUMO_TRY(walk(*l1, false));
  }
  if (header_.nb_snapshots > 0) {
    add(header_.snapshots_offset, snapshot_table_bytes_, "snapshot table");
  }
  if (include_refcounts) {
    add(refcounts_->table_offset(), uint64_t{refcounts_->table_clusters()} * cs,
        "refcount table");
    for (uint64_t off : refcounts_->table()) {
      if (off != 0) {
        add(off, cs, "refcount block");
      }
    }
  }
  return {};
}

Status Qcow2Image::rebuild_refcounts(const std::vector<uint64_t>& expected) {
  const uint64_t cs = cluster_size();
  const uint64_t per_block = refcounts_->entries_per_block();
  const uint64_t entries_per_cluster = cs / 8;
  uint64_t used = expected.size();
  while (used > 0 && expected[used - 1] == 0) {
    --used;
  }
  // New structure after everything in use: table, then blocks; grow until it covers itself.
  const uint64_t start = std::max<uint64_t>(used, 1);
  uint64_t table_clusters = 1;
  uint64_t blocks = 0;
  for (;;) {
    const uint64_t end = start + table_clusters + blocks;
    const uint64_t need_blocks = div_round_up(end, per_block);
    const uint64_t need_table = div_round_up(need_blocks, entries_per_cluster);
    if (need_blocks == blocks && need_table == table_clusters) {
      break;
    }
    blocks = need_blocks;
    table_clusters = need_table;
  }
  if (table_clusters * cs > kMaxRefcountTableBytes) {
    return invalid_input("'{}': image too large to rebuild its refcounts", file_.path());
  }
  const uint64_t total = start + table_clusters + blocks;
  std::vector<uint64_t> table(table_clusters * entries_per_cluster, 0);
  for (uint64_t b = 0; b < blocks; ++b) {
    table[b] = (start + table_clusters + b) * cs;
  }
  // Write blocks straight to disk (not through the cache, which describes the old structure).
  std::vector<uint8_t> block(cs);
  const uint32_t bits = header_.refcount_bits();
  for (uint64_t b = 0; b < blocks; ++b) {
    std::fill(block.begin(), block.end(), uint8_t{0});
    for (uint64_t k = 0; k < per_block; ++k) {
      const uint64_t c = b * per_block + k;
      uint64_t v = c < expected.size() ? expected[c] : 0;
      if (c >= start && c < total) {
        v = 1;
      }
      if (v == 0) {
        continue;
      }
      if (bits < 8) {
        const uint64_t bit = k * bits;
        block[bit / 8] = static_cast<uint8_t>(block[bit / 8] | (v << (bit % 8)));
      } else {
        const uint64_t bytes = bits / 8;
        for (uint64_t byte = 0; byte < bytes; ++byte) {
          block[k * bytes + byte] = static_cast<uint8_t>(v >> (8 * (bytes - 1 - byte)));
        }
      }
    }
    KUMO_TRY(file_.pwrite_full(table[b], block));
  }
  std::vector<uint8_t> raw(table_clusters * cs, 0);
  for (size_t i = 0; i < table.size(); ++i) {
    store_be64(raw.data() + i * 8, table[i]);
  }
  KUMO_TRY(file_.pwrite_full(start * cs, raw));
  KUMO_TRY(datasync());
  header_.refcount_table_offset = start * cs;
  header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  uint8_t hb[12];
  store_be64(hb, header_.refcount_table_offset);
  store_be32(hb + 8, header_.refcount_table_clusters);
  KUMO_TRY(write_header_field(48, hb));
  KUMO_TRY(datasync());
  host_end_ = std::max(host_end_, total * cs);
  refcounts_->drop_cache();
  KUMO_TRY(refcounts_->load(header_.refcount_table_offset, header_.refcount_table_clusters,
                            host_end_));
  return {};
}

Result<CheckReport> Qcow2Image::check(RepairMode repair) {
  if (repair != RepairMode::kNone) {
    KUMO_TRY(ensure_writable());
  }
  if (!read_only_) {
    KUMO_TRY(flush());
  }
  const uint64_t cs = cluster_size();
  CheckReport report;
  std::vector<uint64_t> refs;
  KUMO_TRY(count_references(&refs, true, &report));
  report.total_clusters = div_round_up(header_.size_bytes, cs);

  // Compare against the stored refcounts, over the file and whatever the table covers.
  const uint64_t covered = refcounts_->table().size() * refcounts_->entries_per_block();
  const uint64_t limit = std::max<uint64_t>(refs.size(), std::min(covered, refs.size() + (1u << 20)));
  std::vector<uint64_t> leaked;
  bool any_error = false;
  uint64_t highest = 0;
  for (uint64_t c = 0; c < limit; ++c) {
    const uint64_t expected = c < refs.size() ? refs[c] : 0;
    const uint64_t stored = KUMO_TRY(refcounts_->get(c));
    if (expected > 0 || stored > 0) {
      highest = c;
    }
    if (stored < expected) {
      ++report.corruptions;
      any_error = true;
      report.messages.push_back(
          fmt::format("ERROR cluster {} refcount={} reference={}", c, stored, expected));
    } else if (stored > expected) {
      ++report.leaks;
      leaked.push_back(c);
      report.messages.push_back(
          fmt::format("Leaked cluster {} refcount={} reference={}", c, stored, expected));
    }
  }
  report.image_end_offset = (highest + 1) * cs;

  // COPIED bits of the active tables.
  const uint64_t eb = header_.l2_entry_bytes();
  std::vector<uint8_t> table(cs);
  uint64_t copied_errors = 0;
  for (size_t i = 0; i < l1_.size(); ++i) {
    const uint64_t off = l1_[i] & kL1OffsetMask;
    if (off == 0 || off % cs != 0 || off >= host_end_) {
      continue;
    }
    const uint64_t rc = KUMO_TRY(refcounts_->get(off / cs));
    if ((rc == 1) != ((l1_[i] & kOflagCopied) != 0)) {
      ++copied_errors;
      report.messages.push_back(fmt::format(
          "ERROR OFLAG_COPIED L2 cluster: l1_index={} l1_entry={:x} refcount={}", i, l1_[i], rc));
    }
    KUMO_TRY(file_.pread_full(off, table));
    for (uint64_t j = 0; j < header_.l2_entries(); ++j) {
      const uint64_t w = load_be64(table.data() + j * eb);
      const uint64_t host = w & kL2OffsetMask;
      if ((w & kOflagCompressed) != 0 || host == 0 || host % cs != 0) {
        continue;
      }
      const uint64_t drc = KUMO_TRY(refcounts_->get(host / cs));
      if ((drc == 1) != ((w & kOflagCopied) != 0)) {
        ++copied_errors;
        report.messages.push_back(
            fmt::format("ERROR OFLAG_COPIED data cluster: l2_entry={:x} refcount={}", w, drc));
      }
    }
  }
  report.corruptions += copied_errors;
  any_error = any_error || copied_errors > 0;

  const bool flags_set =
      (header_.incompatible_features & (kIncompatDirty | kIncompatCorrupt)) != 0;
  if (repair == RepairMode::kNone || (report.corruptions == 0 && report.leaks == 0 &&
                                      !flags_set)) {
    return report;
  }
  if (!any_error) {
    for (uint64_t c : leaked) {
      KUMO_TRY(refcounts_->set(c, c < refs.size() ? refs[c] : 0));
    }
    if (repair == RepairMode::kAll && flags_set) {
      header_.incompatible_features &= ~(kIncompatDirty | kIncompatCorrupt);
      uint8_t b[8];
      store_be64(b, header_.incompatible_features);
      KUMO_TRY(write_header_field(72, b));
      dirty_set_by_us_ = false;
    }
    KUMO_TRY(flush());
    report.leaks_fixed = report.leaks;
    report.leaks = 0;
    report.messages.clear();
    return report;
  }
  if (repair == RepairMode::kLeaks) {
    return report;  // corruptions need -r all
  }
  // Rebuild everything, then fix COPIED flags, clear dirty/corrupt, and check again.
  std::vector<uint64_t> data_refs;
  KUMO_TRY(count_references(&data_refs, false, nullptr));
  KUMO_TRY(rebuild_refcounts(data_refs));
  KUMO_TRY(fix_copied_flags());
  KUMO_TRY(flush());
  if (flags_set) {
    header_.incompatible_features &= ~(kIncompatDirty | kIncompatCorrupt);
    uint8_t b[8];
    store_be64(b, header_.incompatible_features);
    KUMO_TRY(write_header_field(72, b));
    KUMO_TRY(datasync());
    dirty_set_by_us_ = false;
  }
  CheckReport after = KUMO_TRY(check(RepairMode::kNone));
  after.corruptions_fixed = report.corruptions > after.corruptions
                                ? report.corruptions - after.corruptions
                                : 0;
  after.leaks_fixed = report.leaks > after.leaks ? report.leaks - after.leaks : 0;
  return after;
}

}  // namespace kumo::block
