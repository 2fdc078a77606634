#include "block/qcow2/refcount.h"

#include <algorithm>

#include "block/qcow2/format.h"

namespace kumo::block::qcow2 {

Refcounts::Refcounts(HostFile* file, uint32_t cluster_bits, uint32_t refcount_order,
                     size_t cache_tables, TableMovedFn on_table_moved)
    : file_(file),
      cluster_bits_(cluster_bits),
      cluster_size_(uint64_t{1} << cluster_bits),
      refcount_order_(refcount_order),
      per_block_((uint64_t{1} << cluster_bits) * 8 >> refcount_order),
      max_(refcount_order == 6 ? UINT64_MAX : (uint64_t{1} << (1u << refcount_order)) - 1),
      cache_(file, uint64_t{1} << cluster_bits, cache_tables),
      on_table_moved_(std::move(on_table_moved)) {}

Status Refcounts::load(uint64_t table_offset, uint32_t table_clusters, uint64_t file_size) {
  table_offset_ = table_offset;
  table_clusters_ = table_clusters;
  std::vector<uint8_t> raw(uint64_t{table_clusters} * cluster_size_);
  KUMO_TRY(file_->pread_full(table_offset, raw));
  table_.resize(raw.size() / 8);
  for (size_t i = 0; i < table_.size(); ++i) {
    const uint64_t e = load_be64(raw.data() + i * 8);
    if ((e & ~kReftOffsetMask) != 0 || e % cluster_size_ != 0) {
      return invalid_input("refcount table entry {} ({:#x}) is not cluster aligned", i, e);
    }
    if (e != 0 && (e > file_size || cluster_size_ > file_size - e)) {
      return invalid_input("refcount block {} at offset {:#x} lies outside the {}-byte file", i,
                           e, file_size);
    }
    table_[i] = e;
  }
  end_cluster_ = div_round_up(file_size, cluster_size_);
  hint_ = std::max<uint64_t>(hint_, 1);
  return {};
}

uint64_t Refcounts::read_entry(const uint8_t* block, uint64_t index) const {
  switch (refcount_order_) {
    case 0:
    case 1:
    case 2: {
      const uint32_t bits = 1u << refcount_order_;
      const uint64_t bit = index * bits;
      return (block[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
    case 3:
      return block[index];
    case 4:
      return load_be16(block + index * 2);
    case 5:
      return load_be32(block + index * 4);
    default:
      return load_be64(block + index * 8);
  }
}

void Refcounts::write_entry(uint8_t* block, uint64_t index, uint64_t value) const {
  switch (refcount_order_) {
    case 0:
    case 1:
    case 2: {
      const uint32_t bits = 1u << refcount_order_;
      const uint64_t bit = index * bits;
      const auto mask = static_cast<uint8_t>(((1u << bits) - 1) << (bit % 8));
      block[bit / 8] = static_cast<uint8_t>((block[bit / 8] & ~mask) |
                                            ((value << (bit % 8)) & mask));
      break;
    }
    case 3:
      block[index] = static_cast<uint8_t>(value);
      break;
    case 4:
      store_be16(block + index * 2, static_cast<uint16_t>(value));
      break;
    case 5:
      store_be32(block + index * 4, static_cast<uint32_t>(value));
      break;
    default:
      store_be64(block + index * 8, value);
      break;
  }
}

Result<uint64_t> Refcounts::get(uint64_t cluster_index) {
  const uint64_t slot = cluster_index / per_block_;
  if (slot >= table_.size() || table_[slot] == 0) {
    return 0;
  }
  const uint8_t* block = KUMO_TRY(cache_.get(table_[slot]));
  return read_entry(block, cluster_index % per_block_);
}

Status Refcounts::write_table_entry(uint64_t slot) {
  uint8_t buf[8];
  store_be64(buf, table_[slot]);
  return file_->pwrite_full(table_offset_ + slot * 8, buf);
}

Status Refcounts::ensure_block(uint64_t slot, uint64_t avoid_begin, uint64_t avoid_end) {
  if (slot >= table_.size()) {
    KUMO_TRY(grow_table(slot + 1, avoid_end));
  }
  if (table_[slot] != 0) {
    return {};
  }
  // Place the block inside the range it describes when possible (it then counts itself).
  uint64_t candidate = std::max(slot * per_block_, floor_);
  if (candidate >= avoid_begin && candidate < avoid_end) {
    candidate = avoid_end;
  }
  const bool self = candidate / per_block_ == slot;
  if (!self) {
    candidate = KUMO_TRY(find_free(1, 0));
    if (candidate >= avoid_begin && candidate < avoid_end) {
      candidate = std::max(avoid_end, end_cluster_);
    }
  }
  const uint64_t offset = candidate << cluster_bits_;
  uint8_t* block = KUMO_TRY(cache_.get_fresh(offset));
  if (self) {
    write_entry(block, candidate % per_block_, 1);
  }
  KUMO_TRY(cache_.flush_one(offset));
  table_[slot] = offset;
  KUMO_TRY(write_table_entry(slot));
  note_in_use(candidate);
  if (!self) {
    KUMO_TRY(update(candidate, 1));
  }
  return {};
}

Status Refcounts::grow_table(uint64_t min_slots, uint64_t avoid_end) {
  const uint64_t entries_per_cluster = cluster_size_ / 8;
  uint64_t new_slots = std::max<uint64_t>(min_slots, table_.size() + table_.size() / 2);
  // Place the new table and the blocks that cover it after everything in use.
  const uint64_t start = std::max({end_cluster_, floor_, avoid_end, uint64_t{1}});
  uint64_t table_clusters = 0;
  uint64_t new_blocks = 0;
  std::vector<uint64_t> block_slots;
  for (int iter = 0; iter < 8; ++iter) {
    table_clusters = div_round_up(new_slots, entries_per_cluster);
    const uint64_t end = start + table_clusters + new_blocks;
    block_slots.clear();
    for (uint64_t s = start / per_block_; s <= (end - 1) / per_block_; ++s) {
      if (s >= table_.size() || table_[s] == 0) {
        block_slots.push_back(s);
      }
    }
    new_slots = std::max(new_slots, (end - 1) / per_block_ + 1);
    new_slots = align_up(new_slots, entries_per_cluster);
    if (block_slots.size() == new_blocks &&
        div_round_up(new_slots, entries_per_cluster) == table_clusters) {
      break;
    }
    new_blocks = block_slots.size();
  }
  if (table_clusters * cluster_size_ > kMaxRefcountTableBytes) {
    return invalid_input("'{}': refcount table would exceed {} bytes", file_->path(),
                         kMaxRefcountTableBytes);
  }
  const uint64_t old_offset = table_offset_;
  const uint32_t old_clusters = table_clusters_;
  table_.resize(new_slots, 0);
  for (size_t i = 0; i < block_slots.size(); ++i) {
    const uint64_t idx = start + table_clusters + i;
    table_[block_slots[i]] = idx << cluster_bits_;
    KUMO_TRY(cache_.get_fresh(idx << cluster_bits_));
  }
  table_offset_ = start << cluster_bits_;
  table_clusters_ = static_cast<uint32_t>(table_clusters);
  for (uint64_t i = start; i < start + table_clusters + block_slots.size(); ++i) {
    note_in_use(i);
    const uint64_t slot = i / per_block_;
    uint8_t* block = KUMO_TRY(cache_.get(table_[slot]));
    write_entry(block, i % per_block_, 1);
    cache_.mark_dirty(table_[slot]);
  }
  KUMO_TRY(cache_.flush());
  std::vector<uint8_t> raw(table_clusters * cluster_size_, 0);
  for (size_t i = 0; i < table_.size(); ++i) {
    store_be64(raw.data() + i * 8, table_[i]);
  }
  KUMO_TRY(file_->pwrite_full(table_offset_, raw));
  KUMO_TRY(file_->datasync());
  KUMO_TRY(on_table_moved_(table_offset_, table_clusters_));
  KUMO_TRY(file_->datasync());
  for (uint64_t i = 0; i < old_clusters; ++i) {
    KUMO_TRY(update((old_offset >> cluster_bits_) + i, -1));
  }
  return {};
}

Result<uint64_t> Refcounts::find_free(uint64_t n, uint64_t from) {
  uint64_t start = std::max({hint_, floor_, from});
  uint64_t run = 0;
  for (uint64_t i = start;; ++i) {
    if (i >= end_cluster_) {
      return run > 0 ? start : i;  // nothing is in use from here on
    }
    const uint64_t rc = KUMO_TRY(get(i));
    if (rc == 0) {
      if (run == 0) {
        start = i;
      }
      if (++run == n) {
        return start;
      }
    } else {
      run = 0;
      if (i == hint_) {
        hint_ = i + 1;
      }
    }
  }
}

Result<bool> Refcounts::allocate_at(uint64_t first, uint64_t n) {
  if (first < floor_) {
    return false;
  }
  for (uint64_t i = first; i < first + n; ++i) {
    if (KUMO_TRY(get(i)) != 0) {
      return false;
    }
  }
  for (uint64_t s = first / per_block_; s <= (first + n - 1) / per_block_; ++s) {
    KUMO_TRY(ensure_block(s, first, first + n));
  }
  for (uint64_t i = first; i < first + n; ++i) {
    if (KUMO_TRY(get(i)) != 0) {
      return false;
    }
  }
  for (uint64_t i = first; i < first + n; ++i) {
    KUMO_TRY(set(i, 1));
    note_in_use(i);
  }
  return true;
}

Result<uint64_t> Refcounts::allocate(uint64_t n) {
  uint64_t from = 0;
  for (;;) {
    const uint64_t start = KUMO_TRY(find_free(n, from));
    if (KUMO_TRY(allocate_at(start, n))) {
      if (start == hint_) {
        hint_ = start + n;
      }
      return start;
    }
    from = start + 1;
  }
}

Status Refcounts::set(uint64_t cluster_index, uint64_t value) {
  const uint64_t slot = cluster_index / per_block_;
  if (slot >= table_.size() || table_[slot] == 0) {
    if (value == 0) {
      return {};
    }
    KUMO_TRY(ensure_block(slot, cluster_index, cluster_index + 1));
  }
  if (value > max_) {
    return invalid_input("'{}': refcount overflow for cluster {} ({} > {})", file_->path(),
                         cluster_index, value, max_);
  }
  uint8_t* block = KUMO_TRY(cache_.get(table_[slot]));
  write_entry(block, cluster_index % per_block_, value);
  cache_.mark_dirty(table_[slot]);
  if (value == 0 && cluster_index < hint_) {
    hint_ = std::max(cluster_index, floor_);
  }
  return {};
}

Status Refcounts::update(uint64_t cluster_index, int64_t delta) {
  const uint64_t cur = KUMO_TRY(get(cluster_index));
  if (delta < 0 && cur < static_cast<uint64_t>(-delta)) {
    return invalid_input("'{}': refcount underflow for cluster {} (refcount {}); the image is "
                         "corrupt, run 'kumo img check -r all'",
                         file_->path(), cluster_index, cur);
  }
  if (delta > 0 && max_ - cur < static_cast<uint64_t>(delta)) {
    return invalid_input("'{}': refcount overflow for cluster {} (refcount {} at the {}-bit "
                         "maximum)",
                         file_->path(), cluster_index, cur, 1u << refcount_order_);
  }
  return set(cluster_index, delta < 0 ? cur - static_cast<uint64_t>(-delta)
                                      : cur + static_cast<uint64_t>(delta));
}

}  // namespace kumo::block::qcow2
