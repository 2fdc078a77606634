#pragma once
// Refcounts: the two-level refcount structure and cluster allocation (qcow2.rst "Host cluster
// management"). Any refcount width 1..64 bits (refcount_order 0..6).
//
// Crash ordering: a new refcount block is written (with its own refcount when it covers
// itself) before the table entry that points at it; a new refcount table is written, then
// synced, then the header switched to it, then the old table freed. Refcount updates to
// existing blocks stay in the cache until flush(); the image layer orders that flush before
// the L2 tables that depend on it.
// Single-threaded.

#include <cstdint>
#include <functional>
#include <vector>

#include "base/result.h"
#include "block/host_file.h"
#include "block/qcow2/metadata_cache.h"

namespace kumo::block::qcow2 {

class Refcounts final {
 public:
  // Writes the header's refcount-table fields (offset, clusters) after a table move.
  using TableMovedFn = std::function<Status(uint64_t table_offset, uint32_t table_clusters)>;

  Refcounts(HostFile* file, uint32_t cluster_bits, uint32_t refcount_order,
            size_t cache_tables, TableMovedFn on_table_moved);

  // Reads the refcount table; entries must be cluster aligned and inside the file.
  [[nodiscard]] Status load(uint64_t table_offset, uint32_t table_clusters, uint64_t file_size);

  [[nodiscard]] Result<uint64_t> get(uint64_t cluster_index);
  // Adds delta; fails (kInvalidInput) on overflow past the refcount width or below zero.
  [[nodiscard]] Status update(uint64_t cluster_index, int64_t delta);
  [[nodiscard]] Status set(uint64_t cluster_index, uint64_t value);
  // Finds n contiguous free clusters, sets their refcounts to 1, returns the first index.
  [[nodiscard]] Result<uint64_t> allocate(uint64_t n);
  // Allocates exactly at cluster_index if [cluster_index, +n) is free; false otherwise.
  [[nodiscard]] Result<bool> allocate_at(uint64_t cluster_index, uint64_t n);
  [[nodiscard]] Status flush() { return cache_.flush(); }
  [[nodiscard]] bool dirty() const { return cache_.has_dirty(); }

  [[nodiscard]] uint64_t max_refcount() const { return max_; }
  [[nodiscard]] uint64_t entries_per_block() const { return per_block_; }
  [[nodiscard]] const std::vector<uint64_t>& table() const { return table_; }
  [[nodiscard]] uint64_t table_offset() const { return table_offset_; }
  [[nodiscard]] uint32_t table_clusters() const { return table_clusters_; }
  // Clusters past the highest one ever seen in use (file end or allocations).
  [[nodiscard]] uint64_t end_cluster() const { return end_cluster_; }
  void note_in_use(uint64_t cluster_index) {
    if (cluster_index + 1 > end_cluster_) {
      end_cluster_ = cluster_index + 1;
    }
  }
  // Repair mode: allocate only at or after `cluster_index` (stale refcounts below it).
  void set_allocation_floor(uint64_t cluster_index) {
    floor_ = cluster_index;
    if (hint_ < floor_) {
      hint_ = floor_;
    }
  }
  // Drops every cached block without writing (after a rebuild wrote them directly).
  void drop_cache() { cache_.clear(); }

 private:
  [[nodiscard]] uint64_t read_entry(const uint8_t* block, uint64_t index) const;
  void write_entry(uint8_t* block, uint64_t index, uint64_t value) const;
  // Makes sure the block covering `slot` exists; never places it in [avoid_begin, avoid_end).
  [[nodiscard]] Status ensure_block(uint64_t slot, uint64_t avoid_begin, uint64_t avoid_end);
  [[nodiscard]] Status grow_table(uint64_t min_slots, uint64_t avoid_end);
  [[nodiscard]] Result<uint64_t> find_free(uint64_t n, uint64_t from);
  [[nodiscard]] Status write_table_entry(uint64_t slot);

  HostFile* file_;
  uint32_t cluster_bits_;
  uint64_t cluster_size_;
  uint32_t refcount_order_;
  uint64_t per_block_;
  uint64_t max_;
  MetadataCache cache_;
  TableMovedFn on_table_moved_;
  std::vector<uint64_t> table_;
  uint64_t table_offset_ = 0;
  uint32_t table_clusters_ = 0;
  uint64_t hint_ = 0;   // no free cluster below this index
  uint64_t floor_ = 0;
  uint64_t end_cluster_ = 0;
};

}  // namespace kumo::block::qcow2
