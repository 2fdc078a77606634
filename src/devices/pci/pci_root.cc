#include "devices/pci/pci_root.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace kumo::devices::pci {
namespace {

constexpr uint32_t kConfigAddressEnable = 1U << 31;
constexpr uint32_t kConfigAddressMask = 0x80ff'fffc;

void fill_ones(std::span<uint8_t> data) { std::fill(data.begin(), data.end(), uint8_t{0xff}); }

// What PciDevice::config_read/config_write accept: 1, 2 or 4 bytes inside one dword.
bool valid_config_access(uint64_t offset, size_t len) {
  return (len == 1 || len == 2 || len == 4) && offset < kConfigSpaceBytes && offset % 4 + len <= 4;
}

}  // namespace

Result<uint64_t> AddressAllocator::allocate(uint64_t size_bytes) {
  if (size_bytes == 0 || !std::has_single_bit(size_bytes)) {
    return invalid_input("allocation of {:#x} bytes is not a power of two", size_bytes);
  }
  const uint64_t aligned = (next_ + size_bytes - 1) & ~(size_bytes - 1);
  if (aligned < next_ || aligned > end_ || end_ - aligned < size_bytes) {
    return invalid_input("no room for {:#x} bytes in the PCI window (next {:#x}, end {:#x})",
                         size_bytes, next_, end_);
  }
  next_ = aligned + size_bytes;
  return aligned;
}

PciHostBridge::PciHostBridge()
    : config_(PciIdentity{.vendor_id = 0x8086,
                          .device_id = 0x0d57,
                          .revision = 0,
                          .class_code = 0x06,
                          .subclass = 0x00,
                          .prog_if = 0,
                          .subsystem_vendor_id = 0,
                          .subsystem_id = 0,
                          .interrupt_pin = 0}) {}

void PciHostBridge::config_read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  config_.read_bytes(offset, data);
}

std::vector<BarMove> PciHostBridge::config_write(uint64_t offset,
                                                 std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  return config_.write(offset, data);
}

std::vector<BarMove> PciHostBridge::reset() {
  std::lock_guard lock(mutex_);
  return config_.reset();
}

void PciHostBridge::bar_read(uint8_t, uint64_t, std::span<uint8_t> data) { fill_ones(data); }

PciRoot::PciRoot()
    : PciRoot(AddressAllocator(kMmioWindowBase, kMmioWindowEnd),
              AddressAllocator(kIoWindowBase, kIoWindowEnd)) {}

PciRoot::PciRoot(AddressAllocator mmio, AddressAllocator io) : mmio_(mmio), io_(io) {
  slots_[0] = std::make_shared<PciHostBridge>();
}

Result<AttachedDevice> PciRoot::attach(std::shared_ptr<PciDevice> device,
                                       std::optional<uint8_t> irq) {
  std::lock_guard lock(mutex_);
  auto free_slot = std::find(slots_.begin(), slots_.end(), nullptr);
  if (free_slot == slots_.end()) {
    return invalid_input("PCI bus 0 is full ({} slots)", kSlotsPerBus);
  }
  const auto slot = static_cast<size_t>(free_slot - slots_.begin());
  Firmware firmware{{}, irq};
  for (const BarSpec& spec : device->bars()) {
    AddressAllocator& window = spec.kind == BarKind::kIo ? io_ : mmio_;
    const uint64_t address = KUMO_TRY(window.allocate(spec.size_bytes));
    firmware.bars.push_back(BarPlacement{spec.index, address, spec.size_bytes, spec.kind});
  }
  apply(*device, firmware);
  AttachedDevice attached{static_cast<uint8_t>(slot), firmware.bars};
  firmware_[slot] = std::move(firmware);
  *free_slot = std::move(device);
  return attached;
}

void PciRoot::apply(PciDevice& device, const Firmware& firmware) {
  for (const BarPlacement& bar : firmware.bars) {
    device.set_bar_address(bar.index, bar.address);
  }
  if (firmware.irq) {
    const uint8_t line = *firmware.irq;
    (void)device.config_write(kRegInterruptLine, std::span(&line, 1));
  }
}

void PciRoot::reset() {
  std::lock_guard lock(mutex_);
  config_address_ = 0;
  for (size_t slot = 0; slot < kSlotsPerBus; ++slot) {
    if (!slots_[slot]) {
      continue;
    }
    for (const BarMove& move : slots_[slot]->reset()) {
      if (bar_moved_) {
        bar_moved_(static_cast<uint8_t>(slot), move);
      }
    }
    apply(*slots_[slot], firmware_[slot]);
  }
}

void PciRoot::set_bar_moved_handler(BarMovedHandler handler) {
  std::lock_guard lock(mutex_);
  bar_moved_ = std::move(handler);
}

PciDevice* PciRoot::lookup(uint8_t bus, uint8_t slot, uint8_t function) const {
  if (bus != 0 || function != 0 || slot >= kSlotsPerBus) {
    return nullptr;
  }
  return slots_[slot].get();
}

uint32_t PciRoot::config_read(uint8_t slot, uint8_t function, uint64_t offset, size_t len) {
  std::array<uint8_t, 4> buf{};
  len = std::min<size_t>(len, 4);
  std::lock_guard lock(mutex_);
  PciDevice* device = lookup(0, slot, function);
  if (device == nullptr || !valid_config_access(offset, len)) {
    return len == 4 ? 0xffff'ffffU : (1U << (8 * len)) - 1;
  }
  device->config_read(offset, std::span(buf.data(), len));
  uint32_t v = 0;
  for (size_t i = 0; i < len; ++i) {
    v |= uint32_t{buf[i]} << (8 * i);
  }
  return v;
}

void PciRoot::config_write(uint8_t slot, uint8_t function, uint64_t offset,
                           std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  config_write_locked(slot, function, offset, data);
}

void PciRoot::config_write_locked(uint8_t slot, uint8_t function, uint64_t offset,
                                  std::span<const uint8_t> data) {
  PciDevice* device = lookup(0, slot, function);
  if (device == nullptr || !valid_config_access(offset, data.size())) {
    return;
  }
  for (const BarMove& move : device->config_write(offset, data)) {
    if (bar_moved_) {
      bar_moved_(slot, move);
    }
  }
}

void PciRoot::read(uint64_t offset, std::span<uint8_t> data) {
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) {
      std::lock_guard lock(mutex_);
      std::memcpy(data.data(), &config_address_, 4);
    } else {
      fill_ones(data);
    }
    return;
  }
  const uint64_t in_dword = offset - 4;
  if (data.size() > 4 || in_dword + data.size() > 4) {
    fill_ones(data);
    return;
  }
  std::lock_guard lock(mutex_);
  const uint32_t address = config_address_;
  const auto bus = static_cast<uint8_t>(address >> 16);
  const auto slot = static_cast<uint8_t>((address >> 11) & 0x1f);
  const auto function = static_cast<uint8_t>((address >> 8) & 0x7);
  PciDevice* device = lookup(bus, slot, function);
  if ((address & kConfigAddressEnable) == 0 || device == nullptr) {
    fill_ones(data);
    return;
  }
  device->config_read((address & 0xfc) + in_dword, data);
}

void PciRoot::write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset < 4) {
    if (offset == 0 && data.size() == 4) {
      uint32_t v = 0;
      std::memcpy(&v, data.data(), 4);
      std::lock_guard lock(mutex_);
      config_address_ = v & kConfigAddressMask;
    }
    return;
  }
  const uint64_t in_dword = offset - 4;
  if (data.size() > 4 || in_dword + data.size() > 4) {
    return;
  }
  std::lock_guard lock(mutex_);
  const uint32_t address = config_address_;
  if ((address & kConfigAddressEnable) == 0 || ((address >> 16) & 0xff) != 0) {
    return;
  }
  const auto slot = static_cast<uint8_t>((address >> 11) & 0x1f);
  const auto function = static_cast<uint8_t>((address >> 8) & 0x7);
  config_write_locked(slot, function, (address & 0xfc) + in_dword, data);
}

}  // namespace kumo::devices::pci
