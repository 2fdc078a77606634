#pragma once
// MsixTable: the MSI-X Table and Pending Bit Array of one PCI function (PCI 3.0 §6.8.2),
// emulated in a BAR, plus the Message Control bits of the MSI-X capability.
//
// Guest-controlled: every table/PBA access (offset, width, value) and Message Control
// writes. Table accesses must be aligned dwords or qwords (§6.8.2: other widths are
// undefined); anything else is ignored (reads return zero).
//
// Thread-safety: all methods lock an internal mutex; trigger() may be called from device
// worker threads while vCPU threads access the table. MsiVector::update() and trigger()
// are called with that mutex held, so implementations must not call back into the table.

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"
#include "devices/pci/msi.h"

namespace kumo::devices::pci {

inline constexpr uint16_t kMsixNoVector = 0xffff;

class MsixTable final {
 public:
  // One MsiVector per table entry (1..2048 entries).
  explicit MsixTable(std::vector<std::unique_ptr<MsiVector>> vectors);

  [[nodiscard]] uint16_t size() const { return static_cast<uint16_t>(entries_.size()); }
  [[nodiscard]] uint64_t table_bytes() const { return entries_.size() * 16; }
  [[nodiscard]] uint64_t pba_bytes() const { return ((entries_.size() + 63) / 64) * 8; }

  // The capability body (after ID/next) for a table at bar/table_offset and a PBA at
  // bar/pba_offset, and its writable mask (only Enable and Function Mask are writable).
  [[nodiscard]] std::vector<uint8_t> capability_body(uint8_t bar, uint32_t table_offset,
                                                     uint32_t pba_offset) const;
  [[nodiscard]] static std::vector<uint8_t> capability_writable_mask();
  // The guest wrote Message Control (bits 15 Enable, 14 Function Mask).
  void set_message_control(uint16_t control);
  // Back to the power-on state (§6.8.2): MSI-X disabled, Function Mask clear, every entry
  // zero and masked, no pending bits; each vector is updated as masked.
  void reset();

  void table_read(uint64_t offset, std::span<uint8_t> data);
  void table_write(uint64_t offset, std::span<const uint8_t> data);
  void pba_read(uint64_t offset, std::span<uint8_t> data);

  [[nodiscard]] bool enabled();
  // Fires `vector`, or latches its pending bit while masked. Out-of-range vectors (a guest
  // may program any queue vector number) are ignored.
  [[nodiscard]] Status trigger(uint16_t vector);

 private:
  struct Entry {
    uint32_t address_lo = 0;
    uint32_t address_hi = 0;
    uint32_t data = 0;
    uint32_t control = 1;  // masked after reset (§6.8.2.9)
    bool pending = false;
  };
  [[nodiscard]] bool masked_locked(const Entry& e) const {
    return !enabled_ || function_mask_ || (e.control & 1) != 0;
  }
  // Tells the VMM and delivers the pending interrupt if the entry just became unmasked.
  void refresh_locked(size_t index);

  std::mutex mutex_;
  std::vector<Entry> entries_;
  std::vector<std::unique_ptr<MsiVector>> vectors_;
  bool enabled_ = false;
  bool function_mask_ = false;
};

}  // namespace kumo::devices::pci
