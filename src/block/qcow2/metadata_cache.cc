#include "block/qcow2/metadata_cache.h"

namespace kumo::block::qcow2 {

MetadataCache::Entry* MetadataCache::lookup(uint64_t offset) {
  Entry*& recent = recent_[recent_slot(offset)];
  if (recent != nullptr && recent->offset == offset) {
    return recent;
  }
  auto it = entries_.find(offset);
  if (it == entries_.end()) {
    return nullptr;
  }
  recent = &it->second;
  return recent;
}

void MetadataCache::forget(const Entry* e) {
  for (Entry*& r : recent_) {
    if (r == e) {
      r = nullptr;
    }
  }
}

Status MetadataCache::write_back(Entry& e) {
  if (!e.dirty) {
    return {};
  }
  if (barrier_) {
    KUMO_TRY(barrier_());
  }
  KUMO_TRY(file_->pwrite_full(e.offset, e.data));
  e.dirty = false;
  --dirty_count_;
  return {};
}

Result<MetadataCache::Entry*> MetadataCache::claim(uint64_t offset) {
  if (entries_.size() < capacity_) {
    Entry& e = entries_[offset];
    e.offset = offset;
    e.data.resize(table_bytes_);
    return &e;
  }
  // Full: the least recently used table gives up its node and buffer (no allocation).
  auto victim = entries_.begin();
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->second.last_use < victim->second.last_use) {
      victim = it;
    }
  }
  KUMO_TRY(write_back(victim->second));
  forget(&victim->second);
  auto node = entries_.extract(victim);
  node.key() = offset;
  node.mapped().offset = offset;
  return &entries_.insert(std::move(node)).position->second;
}

Result<uint8_t*> MetadataCache::get(uint64_t offset) {
  if (Entry* e = lookup(offset)) {
    e->last_use = ++tick_;
    return e->data.data();
  }
  Entry* e = KUMO_TRY(claim(offset));
  if (auto st = file_->pread_full(offset, e->data); !st) {
    forget(e);
    entries_.erase(offset);  // holds no table
    return tl::unexpected(st.error());
  }
  e->last_use = ++tick_;
  recent_[recent_slot(offset)] = e;
  return e->data.data();
}

Result<uint8_t*> MetadataCache::get_fresh(uint64_t offset) {
  Entry* e = lookup(offset);
  if (e == nullptr) {
    e = KUMO_TRY(claim(offset));
    recent_[recent_slot(offset)] = e;
  }
  std::fill(e->data.begin(), e->data.end(), uint8_t{0});
  e->last_use = ++tick_;
  if (!e->dirty) {
    e->dirty = true;
    ++dirty_count_;
  }
  return e->data.data();
}

void MetadataCache::mark_dirty(uint64_t offset) {
  Entry* e = lookup(offset);
  if (e != nullptr && !e->dirty) {
    e->dirty = true;
    ++dirty_count_;
  }
}

Status MetadataCache::flush() {
  if (dirty_count_ == 0) {
    return {};
  }
  for (auto& [off, e] : entries_) {
    KUMO_TRY(write_back(e));
  }
  return {};
}

Status MetadataCache::flush_one(uint64_t offset) {
  Entry* e = lookup(offset);
  return e != nullptr ? write_back(*e) : Status{};
}

void MetadataCache::discard(uint64_t offset) {
  auto it = entries_.find(offset);
  if (it == entries_.end()) {
    return;
  }
  if (it->second.dirty) {
    --dirty_count_;
  }
  forget(&it->second);
  entries_.erase(it);
}

}  // namespace kumo::block::qcow2
