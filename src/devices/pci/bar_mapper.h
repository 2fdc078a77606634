#pragma once
// PciBarMapper: keeps the memory BARs of the devices on a PciRoot mapped on the MMIO Bus
// where they decode; on_move() is PciRoot's BarMoved handler.
//
// A BAR is mapped only while its function decodes it: from the guest setting Memory Space
// Enable until it clears it (Command is 0 at power-on, so nothing is mapped before the
// guest enables a function), at the address the guest programmed. The mapper remembers
// where each BAR is mapped, not where the guest had it: a BAR moved to address 0 is
// unassigned and unmapped (as QEMU treats it), a BAR moved over another range is unmapped,
// and either is mapped again at the next address the guest gives it that does not overlap
// anything. Accesses to an unmapped BAR miss (reads return all-ones).
//
// I/O BARs are not mapped: remapping the PIO Bus from a configuration access that arrives
// through the PIO Bus itself would deadlock (a device must not move ranges on its own bus),
// and no kumo device has one.
//
// Thread-safety: add() before vCPUs run. on_move() runs on vCPU threads (PciRoot calls it
// with its mutex held); the mapper takes its own mutex, then the Bus's exclusive lock.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>

#include "base/result.h"
#include "devices/bus.h"
#include "devices/pci/pci_root.h"

namespace kumo::devices::pci {

class PciBarMapper final {
 public:
  // `mmio` must outlive the mapper.
  explicit PciBarMapper(Bus& mmio) : mmio_(mmio) {}

  // Takes the memory BARs of `device` (as PciRoot::attach placed them), unmapped: they are
  // mapped when the function starts decoding them.
  void add(const std::shared_ptr<PciDevice>& device, const AttachedDevice& attached);
  // A BAR of the device in `slot` moved, started or stopped decoding. Fails (kInvalidInput,
  // the guest's doing) when the new range overlaps another one; the BAR is then unmapped.
  [[nodiscard]] Status on_move(uint8_t slot, const BarMove& move);
  // Where a BAR is mapped now; nullopt when it is unmapped or unknown.
  [[nodiscard]] std::optional<uint64_t> mapped_address(uint8_t slot, uint8_t index) const;

 private:
  struct Mapping {
    std::shared_ptr<PciBarRegion> region;
    uint64_t size_bytes = 0;
    std::optional<uint64_t> address;
  };

  Bus& mmio_;
  mutable std::mutex mutex_;
  std::map<std::pair<uint8_t, uint8_t>, Mapping> bars_;  // by (slot, BAR index)
};

}  // namespace kumo::devices::pci
