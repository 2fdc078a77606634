#pragma once
// PciRoot: PCI bus 0 behind a host bridge, reached through configuration mechanism #1
// (PCI 3.0 §3.2.2.3.2): a 32-bit address register at I/O port 0xcf8 (bit 31 enable,
// bus 23:16, device 15:11, function 10:8, register 7:2) and a data window at 0xcfc–0xcff.
//
// The VMM inserts the PciRoot into its PIO Bus at kConfigIoBase/kConfigIoLen, attaches
// devices (which allocates their BARs from the MMIO window, as firmware would) and keeps
// their BARs on its MMIO Bus with PciBarMapper. When a BAR starts, stops or moves decoding
// (the guest reprograms it or toggles Memory Space Enable), PciRoot calls the BarMoved
// handler so the VMM can re-map it.
//
// Guest-controlled: everything arriving through read()/write(). Non-existent functions read
// as all-ones; writes to them are dropped.
//
// Thread-safety: attach(), set_bar_moved_handler() and reset() while no vCPU runs.
// read()/write() may run on several vCPU threads at once (one mutex guards the address
// register and the dispatch); the BarMoved handler is called on the vCPU thread (or
// reset()'s caller) with that mutex held, so it must not call back into PciRoot.

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/result.h"
#include "devices/bus.h"
#include "devices/pci/pci_device.h"

namespace kumo::devices::pci {

inline constexpr uint64_t kConfigIoBase = 0xcf8;
inline constexpr uint64_t kConfigIoLen = 8;
inline constexpr uint64_t kMmioWindowBase = 0xc000'0000;
inline constexpr uint64_t kMmioWindowEnd = 0xfec0'0000;  // exclusive; the IOAPIC follows
inline constexpr uint64_t kIoWindowBase = 0xc000;
inline constexpr uint64_t kIoWindowEnd = 0x1'0000;
inline constexpr size_t kSlotsPerBus = 32;

// Hands out naturally aligned ranges from [base, end); never frees (devices live as long
// as the VM). Not thread-safe.
class AddressAllocator final {
 public:
  AddressAllocator(uint64_t base, uint64_t end) : next_(base), end_(end) {}
  // size_bytes must be a power of two; the range is aligned to its size.
  [[nodiscard]] Result<uint64_t> allocate(uint64_t size_bytes);

 private:
  uint64_t next_;
  uint64_t end_;
};

// Where attach() put one BAR.
struct BarPlacement {
  uint8_t index = 0;
  uint64_t address = 0;
  uint64_t size_bytes = 0;
  BarKind kind = BarKind::kMmio32;
};

struct AttachedDevice {
  uint8_t slot = 0;  // device number on bus 0; function is always 0
  std::vector<BarPlacement> bars;
};

// Called when a BAR of the device in `slot` moves, starts or stops decoding (BarMove).
using BarMovedHandler = std::function<void(uint8_t slot, const BarMove& move)>;

// A BusDevice that forwards accesses in one BAR to its PciDevice (map one per BarPlacement).
class PciBarRegion final : public BusDevice {
 public:
  PciBarRegion(std::shared_ptr<PciDevice> device, uint8_t index)
      : device_(std::move(device)), index_(index) {}
  void read(uint64_t offset, std::span<uint8_t> data) override {
    device_->bar_read(index_, offset, data);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    device_->bar_write(index_, offset, data);
  }

 private:
  std::shared_ptr<PciDevice> device_;
  uint8_t index_;
};

// The host bridge at 00:00.0 (Intel vendor id, device 0x0d57, class 0x0600). No BARs.
class PciHostBridge final : public PciDevice {
 public:
  PciHostBridge();
  void config_read(uint64_t offset, std::span<uint8_t> data) override;
  std::vector<BarMove> config_write(uint64_t offset, std::span<const uint8_t> data) override;
  std::vector<BarMove> reset() override;
  [[nodiscard]] std::vector<BarSpec> bars() const override { return {}; }
  void set_bar_address(uint8_t, uint64_t) override {}
  void bar_read(uint8_t, uint64_t, std::span<uint8_t> data) override;
  void bar_write(uint8_t, uint64_t, std::span<const uint8_t>) override {}

 private:
  std::mutex mutex_;
  PciConfigSpace config_;
};

class PciRoot final : public BusDevice {
 public:
  // Puts the host bridge in slot 0. BARs come from the default windows unless given.
  PciRoot();
  PciRoot(AddressAllocator mmio, AddressAllocator io);

  // Puts `device` in the next free slot, allocates its BARs (memory BARs from the MMIO
  // window, I/O BARs from the I/O window) and, when `irq` is set, writes it to the
  // Interrupt Line register (the GSI its INTA# is wired to).
  [[nodiscard]] Result<AttachedDevice> attach(std::shared_ptr<PciDevice> device,
                                              std::optional<uint8_t> irq = std::nullopt);
  void set_bar_moved_handler(BarMovedHandler handler);
  // Platform reset (the guest rebooted): resets every function (PciDevice::reset; the
  // BarMoved handler hears of each BAR that stops decoding) and, as firmware at power-on,
  // places its BARs and writes its Interrupt Line as attach() did. Call while no vCPU runs.
  void reset();

  // Direct configuration access for bus 0 (tests, and a future ECAM window). Like the
  // devices behind it, it takes 1, 2 or 4 bytes inside one dword; other accesses read as
  // all-ones and write nothing.
  [[nodiscard]] uint32_t config_read(uint8_t slot, uint8_t function, uint64_t offset,
                                     size_t len);
  void config_write(uint8_t slot, uint8_t function, uint64_t offset,
                    std::span<const uint8_t> data);

  // BusDevice at kConfigIoBase: offset 0..3 = CONFIG_ADDRESS, 4..7 = CONFIG_DATA.
  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  // What attach() did as firmware for one slot; reset() does it again.
  struct Firmware {
    std::vector<BarPlacement> bars;
    std::optional<uint8_t> irq;
  };
  static void apply(PciDevice& device, const Firmware& firmware);
  PciDevice* lookup(uint8_t bus, uint8_t slot, uint8_t function) const;
  void config_write_locked(uint8_t slot, uint8_t function, uint64_t offset,
                           std::span<const uint8_t> data);

  std::mutex mutex_;
  uint32_t config_address_ = 0;
  std::array<std::shared_ptr<PciDevice>, kSlotsPerBus> slots_{};
  std::array<Firmware, kSlotsPerBus> firmware_{};
  AddressAllocator mmio_;
  AddressAllocator io_;
  BarMovedHandler bar_moved_;
};

}  // namespace kumo::devices::pci
