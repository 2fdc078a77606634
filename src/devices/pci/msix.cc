#include "devices/pci/msix.h"

#include <algorithm>
#include <cstring>

#include "base/check.h"

namespace kumo::devices::pci {
namespace {
constexpr uint16_t kControlEnable = 1U << 15;
constexpr uint16_t kControlFunctionMask = 1U << 14;
}  // namespace

MsixTable::MsixTable(std::vector<std::unique_ptr<MsiVector>> vectors)
    : entries_(vectors.size()), vectors_(std::move(vectors)) {
  KUMO_CHECK(!vectors_.empty() && vectors_.size() <= 2048);
}

std::vector<uint8_t> MsixTable::capability_body(uint8_t bar, uint32_t table_offset,
                                                uint32_t pba_offset) const {
  std::vector<uint8_t> body(10, 0);
  const auto control = static_cast<uint16_t>(entries_.size() - 1);
  std::memcpy(&body[0], &control, 2);
  const uint32_t table = table_offset | bar;
  const uint32_t pba = pba_offset | bar;
  std::memcpy(&body[2], &table, 4);
  std::memcpy(&body[6], &pba, 4);
  return body;
}

std::vector<uint8_t> MsixTable::capability_writable_mask() {
  std::vector<uint8_t> mask(10, 0);
  mask[1] = 0xc0;
  return mask;
}

void MsixTable::set_message_control(uint16_t control) {
  std::lock_guard lock(mutex_);
  const bool enabled = (control & kControlEnable) != 0;
  const bool fmask = (control & kControlFunctionMask) != 0;
  if (enabled == enabled_ && fmask == function_mask_) {
    return;
  }
  enabled_ = enabled;
  function_mask_ = fmask;
  for (size_t i = 0; i < entries_.size(); ++i) {
    refresh_locked(i);
  }
}

void MsixTable::reset() {
  std::lock_guard lock(mutex_);
  enabled_ = false;
  function_mask_ = false;
  for (size_t i = 0; i < entries_.size(); ++i) {
    entries_[i] = Entry{};
    refresh_locked(i);
  }
}

bool MsixTable::enabled() {
  std::lock_guard lock(mutex_);
  return enabled_;
}

void MsixTable::refresh_locked(size_t index) {
  Entry& e = entries_[index];
  const MsiMessage message{(uint64_t{e.address_hi} << 32) | e.address_lo, e.data};
  const bool masked = masked_locked(e);
  // A failing route is the VMM's problem to log; the guest just loses the interrupt.
  (void)vectors_[index]->update(message, masked);
  if (!masked && e.pending) {
    e.pending = false;
    (void)vectors_[index]->trigger();
  }
}

void MsixTable::table_read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if ((data.size() != 4 && data.size() != 8) || offset % 4 != 0 ||
      offset >= table_bytes() || table_bytes() - offset < data.size()) {
    return;
  }
  std::lock_guard lock(mutex_);
  for (size_t done = 0; done < data.size(); done += 4) {
    const uint64_t at = offset + done;
    const Entry& e = entries_[at / 16];
    uint32_t v = 0;
    switch (at % 16) {
      case 0: v = e.address_lo; break;
      case 4: v = e.address_hi; break;
      case 8: v = e.data; break;
      default: v = e.control; break;
    }
    std::memcpy(data.data() + done, &v, 4);
  }
}

void MsixTable::table_write(uint64_t offset, std::span<const uint8_t> data) {
  if ((data.size() != 4 && data.size() != 8) || offset % 4 != 0 ||
      offset >= table_bytes() || table_bytes() - offset < data.size()) {
    return;
  }
  std::lock_guard lock(mutex_);
  for (size_t done = 0; done < data.size(); done += 4) {
    const uint64_t at = offset + done;
    const size_t index = at / 16;
    Entry& e = entries_[index];
    uint32_t v = 0;
    std::memcpy(&v, data.data() + done, 4);
    switch (at % 16) {
      case 0: e.address_lo = v & ~uint32_t{3}; break;
      case 4: e.address_hi = v; break;
      case 8: e.data = v; break;
      default: e.control = v & 1; break;
    }
    refresh_locked(index);
  }
}

void MsixTable::pba_read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t byte = offset + i;
    for (uint64_t bit = 0; bit < 8; ++bit) {
      const uint64_t index = byte * 8 + bit;
      if (index < entries_.size() && entries_[index].pending) {
        data[i] = static_cast<uint8_t>(data[i] | (1U << bit));
      }
    }
  }
}

Status MsixTable::trigger(uint16_t vector) {
  std::lock_guard lock(mutex_);
  if (vector >= entries_.size()) {
    return {};
  }
  Entry& e = entries_[vector];
  if (masked_locked(e)) {
    e.pending = true;
    return {};
  }
  return vectors_[vector]->trigger();
}

}  // namespace kumo::devices::pci
