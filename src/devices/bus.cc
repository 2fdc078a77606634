#include "devices/bus.h"

#include <mutex>

namespace kumo::devices {

Status Bus::insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device) {
  std::unique_lock lock(mutex_);
  return insert_locked(base, len, std::move(device));
}

Status Bus::move(uint64_t old_base, uint64_t new_base) {
  std::unique_lock lock(mutex_);
  auto it = ranges_.find(old_base);
  if (it == ranges_.end()) {
    return invalid_input("nothing is mapped at {:#x}", old_base);
  }
  Range range = std::move(it->second);
  ranges_.erase(it);
  return insert_locked(new_base, range.len, std::move(range.device));
}

Status Bus::remove(uint64_t base) {
  std::unique_lock lock(mutex_);
  if (ranges_.erase(base) == 0) {
    return invalid_input("nothing is mapped at {:#x}", base);
  }
  return {};
}

Status Bus::insert_locked(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device) {
  uint64_t end = 0;
  if (len == 0 || __builtin_add_overflow(base, len, &end)) {
    return invalid_input("bus range {:#x}+{:#x} is empty or wraps", base, len);
  }
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first < end) {
    return invalid_input("bus range {:#x}+{:#x} overlaps {:#x}", base, len, next->first);
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + prev->second.len > base) {
      return invalid_input("bus range {:#x}+{:#x} overlaps {:#x}", base, len, prev->first);
    }
  }
  ranges_.emplace(base, Range{len, std::move(device)});
  return {};
}

BusDevice* Bus::find(uint64_t addr, uint64_t access_len, uint64_t* offset) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) {
    return nullptr;
  }
  --it;
  const uint64_t off = addr - it->first;
  if (off >= it->second.len || access_len > it->second.len - off) {
    return nullptr;
  }
  *offset = off;
  return it->second.device.get();
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  std::shared_lock lock(mutex_);
  uint64_t offset = 0;
  BusDevice* device = find(addr, data.size(), &offset);
  if (device == nullptr) {
    return false;
  }
  device->read(offset, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  std::shared_lock lock(mutex_);
  uint64_t offset = 0;
  BusDevice* device = find(addr, data.size(), &offset);
  if (device == nullptr) {
    return false;
  }
  device->write(offset, data);
  return true;
}

}  // namespace kumo::devices
