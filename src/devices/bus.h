#pragma once
// Bus: maps address ranges (port I/O or MMIO) to devices. vCPU threads dispatch exits here.
//
// Devices are registered before vCPUs start; afterwards only move() changes the map (a guest
// re-programming a PCI BAR). Lookups take a shared lock, move() an exclusive one; a device is
// called with the shared lock held, so a device must not move ranges on its own bus. Each
// BusDevice synchronizes its own state (it may be called from several vCPU threads at once). The offset passed to a device is relative to its range base.
// Access widths and offsets come from the guest: devices must handle any width 1..8 and
// any offset inside their range.

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <span>

#include "base/result.h"

namespace kumo::devices {

class BusDevice {
 public:
  virtual ~BusDevice() = default;
  virtual void read(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write(uint64_t offset, std::span<const uint8_t> data) = 0;
};

class Bus final {
 public:
  // Fails if [base, base+len) overlaps an existing range or wraps.
  [[nodiscard]] Status insert(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device);
  // Moves the range based at old_base to new_base (same length). If the new range would
  // overlap another one, the device is left unmapped and kInvalidInput returned (the guest
  // programmed a conflicting BAR; accesses there then miss).
  [[nodiscard]] Status move(uint64_t old_base, uint64_t new_base);
  // Unmaps the range based at `base` (kInvalidInput when nothing is mapped there).
  [[nodiscard]] Status remove(uint64_t base);
  // Returns false when nothing is mapped at addr (the caller decides: reads return all-ones).
  bool read(uint64_t addr, std::span<uint8_t> data) const;
  bool write(uint64_t addr, std::span<const uint8_t> data) const;

 private:
  struct Range {
    uint64_t len;
    std::shared_ptr<BusDevice> device;
  };
  // Returns the device and the offset of addr inside it, or nullptr.
  BusDevice* find(uint64_t addr, uint64_t access_len, uint64_t* offset) const;
  [[nodiscard]] Status insert_locked(uint64_t base, uint64_t len, std::shared_ptr<BusDevice> device);

  mutable std::shared_mutex mutex_;
  std::map<uint64_t, Range> ranges_;  // keyed by base
};

}  // namespace kumo::devices
