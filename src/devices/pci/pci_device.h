#pragma once
// PciDevice: one PCI function as the PCI host bridge sees it — a configuration space and
// up to six BARs whose contents the device decodes.
//
// Guest-controlled inputs: every offset, width and value of config_write/config_read and of
// bar_read/bar_write. Implementations never abort on them; unknown registers read as zero
// (or all-ones outside the 256-byte header) and writes to them are ignored.
//
// Thread-safety: implementations are called from any vCPU thread, concurrently, and
// serialize their own state.

#include <cstdint>
#include <span>
#include <vector>

#include "devices/pci/pci_config.h"

namespace kumo::devices::pci {

class PciDevice {
 public:
  virtual ~PciDevice() = default;

  // Configuration space accesses: `offset` < 256, `data` 1, 2 or 4 bytes and not crossing
  // a dword boundary (the config mechanism guarantees this).
  virtual void config_read(uint64_t offset, std::span<uint8_t> data) = 0;
  // Returns the BAR moves the write caused (PciConfigSpace::write), so the root can tell the
  // VMM to re-map them.
  [[nodiscard]] virtual std::vector<BarMove> config_write(uint64_t offset,
                                                          std::span<const uint8_t> data) = 0;

  // The BARs this device wants (fixed at construction).
  [[nodiscard]] virtual std::vector<BarSpec> bars() const = 0;
  // Places a BAR as firmware does (PciRoot::attach before the guest runs), while the
  // function does not decode it.
  virtual void set_bar_address(uint8_t index, uint64_t address) = 0;

  // PCI reset of the function (a platform reset: the guest rebooted): configuration space
  // at its power-on values (PciConfigSpace::reset, BARs at 0 until placed again) and the
  // device behind it reset, interrupts deasserted. Returns the BAR moves it caused (the
  // BARs that were decoding stop). Called while no vCPU runs.
  [[nodiscard]] virtual std::vector<BarMove> reset() = 0;

  // Accesses inside BAR `index`, `offset` relative to the BAR base; width 1..8.
  virtual void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) = 0;
};

}  // namespace kumo::devices::pci
