#pragma once
// MetadataCache: an LRU write-back cache of cluster-sized metadata tables (L2 tables,
// refcount blocks), keyed by host offset. qcow2.rst "Cluster mapping" / "Refcounts"; sizing
// follows QEMU docs/qcow2-cache.txt (one L2 table maps cluster_size²/8 guest bytes).
//
// Contract:
//  - get()/get_fresh() return a pointer to the table bytes (big-endian, as on disk) that stays
//    valid only until the next get()/get_fresh()/discard()/clear() on this cache.
//  - A dirty table is written back on eviction or flush(); before any write-back the barrier
//    (if set) runs, which is how "refcount blocks before L2 tables" ordering is enforced.
//  - A hit allocates nothing and usually needs no hashing (recently used tables are found
//    by table index); once the cache is full, a miss reuses the evicted table's memory.
//  - Single-threaded.

#include <array>
#include <bit>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "block/host_file.h"

namespace kumo::block::qcow2 {

class MetadataCache final {
 public:
  MetadataCache(HostFile* file, uint64_t table_bytes, size_t capacity_tables)
      : file_(file),
        table_bytes_(table_bytes),
        table_shift_(static_cast<unsigned>(std::countr_zero(table_bytes))),
        capacity_(capacity_tables < 2 ? 2 : capacity_tables) {}

  [[nodiscard]] Result<uint8_t*> get(uint64_t offset);
  // For a table being created: zero-filled, marked dirty, not read from disk.
  [[nodiscard]] Result<uint8_t*> get_fresh(uint64_t offset);
  void mark_dirty(uint64_t offset);
  [[nodiscard]] Status flush();
  // Writes one table now if it is dirty (used when a new table must precede its pointer).
  [[nodiscard]] Status flush_one(uint64_t offset);
  // Forgets a table without writing it (its cluster was freed).
  void discard(uint64_t offset);
  void clear() {
    entries_.clear();
    recent_.fill(nullptr);
  }
  [[nodiscard]] bool has_dirty() const { return dirty_count_ > 0; }
  void set_barrier(std::function<Status()> barrier) { barrier_ = std::move(barrier); }
  [[nodiscard]] size_t capacity() const { return capacity_; }
  [[nodiscard]] uint64_t table_bytes() const { return table_bytes_; }

 private:
  struct Entry {
    uint64_t offset = 0;
    std::vector<uint8_t> data;
    bool dirty = false;
    uint64_t last_use = 0;
  };
  [[nodiscard]] Status write_back(Entry& e);
  // An entry keyed `offset` with a table-sized buffer of unspecified content, clean; when the
  // cache is full it is the least recently used entry's node, written back and re-keyed.
  [[nodiscard]] Result<Entry*> claim(uint64_t offset);
  Entry* lookup(uint64_t offset);
  // Drops `e` from recent_ before its node is destroyed.
  void forget(const Entry* e);
  [[nodiscard]] size_t recent_slot(uint64_t offset) const {
    return (offset >> table_shift_) % kRecentSlots;
  }

  // Tables found recently, direct-mapped by table index: most lookups end here, without
  // hashing. A slot may name a table re-keyed since; lookup() compares offsets.
  static constexpr size_t kRecentSlots = 8;

  HostFile* file_;
  uint64_t table_bytes_;
  unsigned table_shift_;
  size_t capacity_;
  std::unordered_map<uint64_t, Entry> entries_;
  std::array<Entry*, kRecentSlots> recent_{};
  uint64_t tick_ = 0;
  size_t dirty_count_ = 0;
  std::function<Status()> barrier_;
};

}  // namespace kumo::block::qcow2
