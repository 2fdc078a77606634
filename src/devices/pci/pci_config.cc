#include "devices/pci/pci_config.h"

#include <bit>

namespace kumo::devices::pci {
namespace {

constexpr uint32_t kBarIoFlag = 0x1;
constexpr uint32_t kBarMem64Flag = 0x4;
constexpr uint32_t kBarPrefetchFlag = 0x8;

}  // namespace

PciConfigSpace::PciConfigSpace(const PciIdentity& id) {
  auto put16 = [this](size_t off, uint16_t v) {
    bytes_[off] = static_cast<uint8_t>(v);
    bytes_[off + 1] = static_cast<uint8_t>(v >> 8);
  };
  put16(kRegVendorId, id.vendor_id);
  put16(kRegVendorId + 2, id.device_id);
  bytes_[kRegRevision] = id.revision;
  bytes_[kRegRevision + 1] = id.prog_if;
  bytes_[kRegRevision + 2] = id.subclass;
  bytes_[kRegRevision + 3] = id.class_code;
  bytes_[kRegHeaderType] = 0;  // type 0, single function
  put16(kRegSubsystemVendorId, id.subsystem_vendor_id);
  put16(kRegSubsystemVendorId + 2, id.subsystem_id);
  bytes_[kRegInterruptPin] = id.interrupt_pin;

  // Command: I/O, memory, bus master, interrupt disable are the bits we honour.
  const uint16_t command_mask =
      kCommandIoSpace | kCommandMemorySpace | kCommandBusMaster | kCommandInterruptDisable;
  writable_[kRegCommand] = static_cast<uint8_t>(command_mask);
  writable_[kRegCommand + 1] = static_cast<uint8_t>(command_mask >> 8);
  // Status error bits are write-one-to-clear (PCI 3.0 §6.2.3); we never set them, but a
  // guest clearing them must not change anything else.
  write_one_to_clear_[kRegStatus + 1] = 0xf9;
  writable_[kRegInterruptLine] = 0xff;
  // Cache line size and latency timer are scratch registers for the guest.
  writable_[0x0c] = 0xff;
  writable_[0x0d] = 0xff;
}

Status PciConfigSpace::add_bar(const BarSpec& spec) {
  const bool is64 = spec.kind == BarKind::kMmio64;
  const uint64_t min_size = spec.kind == BarKind::kIo ? 4 : 16;
  if (spec.index >= kNumBars || (is64 && spec.index + 1 >= static_cast<int>(kNumBars))) {
    return invalid_input("BAR index {} out of range", spec.index);
  }
  if (spec.size_bytes < min_size || !std::has_single_bit(spec.size_bytes) ||
      (!is64 && spec.size_bytes > (uint64_t{1} << 31)) ||
      (spec.kind == BarKind::kIo && spec.size_bytes > 256)) {
    return invalid_input("BAR {} size {:#x} is not a valid power of two", spec.index,
                         spec.size_bytes);
  }
  if (bars_[spec.index] || (is64 && bars_[spec.index + 1]) ||
      (spec.index > 0 && bars_[spec.index - 1] &&
       bars_[spec.index - 1]->kind == BarKind::kMmio64)) {
    return invalid_input("BAR {} is already in use", spec.index);
  }
  bars_[spec.index] = spec;
  uint32_t flags = 0;
  if (spec.kind == BarKind::kIo) {
    flags = kBarIoFlag;
  } else {
    flags = (is64 ? kBarMem64Flag : 0) | (spec.prefetchable ? kBarPrefetchFlag : 0);
  }
  const uint64_t address_mask = ~(spec.size_bytes - 1);
  const uint32_t flag_bits = spec.kind == BarKind::kIo ? 0x3 : 0xf;
  const uint32_t low_mask = static_cast<uint32_t>(address_mask) & ~flag_bits;
  const size_t off = kRegBar0 + size_t{spec.index} * 4;
  for (size_t i = 0; i < 4; ++i) {
    writable_[off + i] = static_cast<uint8_t>(low_mask >> (8 * i));
    bytes_[off + i] = static_cast<uint8_t>(flags >> (8 * i));
  }
  if (is64) {
    const uint32_t high_mask = static_cast<uint32_t>(address_mask >> 32);
    for (size_t i = 0; i < 4; ++i) {
      writable_[off + 4 + i] = static_cast<uint8_t>(high_mask >> (8 * i));
    }
  }
  return {};
}

Result<uint8_t> PciConfigSpace::add_capability(uint8_t cap_id, std::span<const uint8_t> body,
                                               std::span<const uint8_t> writable) {
  if (!writable.empty() && writable.size() != body.size()) {
    return invalid_input("capability {:#x}: writable mask length differs from body", cap_id);
  }
  // Capabilities are dword aligned (PCI 3.0 §6.7).
  const size_t total = (2 + body.size() + 3) & ~size_t{3};
  const size_t start = next_free_capability_;
  if (start + total > kConfigSpaceBytes) {
    return invalid_input("capability {:#x} of {} bytes does not fit", cap_id, body.size());
  }
  const auto offset = static_cast<uint8_t>(start);
  bytes_[start] = cap_id;
  bytes_[start + 1] = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    bytes_[start + 2 + i] = power_on_[start + 2 + i] = body[i];
    writable_[start + 2 + i] = writable.empty() ? 0 : writable[i];
  }
  if (last_capability_ == 0) {
    bytes_[kRegCapabilitiesPointer] = offset;
    bytes_[kRegStatus] = static_cast<uint8_t>(bytes_[kRegStatus] | kStatusCapabilitiesList);
  } else {
    bytes_[last_capability_ + 1u] = offset;
  }
  last_capability_ = offset;
  next_free_capability_ = static_cast<uint8_t>(start + total);
  return offset;
}

uint32_t PciConfigSpace::dword(size_t offset) const {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    v |= uint32_t{bytes_[offset + i]} << (8 * i);
  }
  return v;
}

uint32_t PciConfigSpace::read(uint64_t offset, size_t len) const {
  uint32_t v = 0;
  for (size_t i = 0; i < len && i < 4; ++i) {
    const uint64_t at = offset + i;
    const uint8_t b = at < kConfigSpaceBytes ? bytes_[at] : 0xff;
    v |= uint32_t{b} << (8 * i);
  }
  return v;
}

void PciConfigSpace::read_bytes(uint64_t offset, std::span<uint8_t> out) const {
  for (size_t i = 0; i < out.size(); ++i) {
    const uint64_t at = offset + i;
    out[i] = at < kConfigSpaceBytes ? bytes_[at] : 0xff;
  }
}

std::vector<BarMove> PciConfigSpace::write(uint64_t offset, std::span<const uint8_t> data) {
  const BarAddresses before = decoding_addresses();
  std::array<bool, kNumBars> touched{};
  std::array<bool, kNumBars> probe{};
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    if (at >= kConfigSpaceBytes) {
      break;
    }
    const uint8_t mask = writable_[at];
    const uint8_t w1c = write_one_to_clear_[at];
    uint8_t b = static_cast<uint8_t>((bytes_[at] & ~mask) | (data[i] & mask));
    b = static_cast<uint8_t>(b & ~(data[i] & w1c));
    bytes_[at] = b;
    if (at >= kRegBar0 && at < kRegBar0 + 4 * kNumBars) {
      const size_t reg = (at - kRegBar0) / 4;
      touched[reg] = true;
      // A probe writes all-ones to the whole dword (Linux: __pci_read_base).
      probe[reg] = data.size() == 4 && offset == kRegBar0 + 4 * reg && data[0] == 0xff &&
                   data[1] == 0xff && data[2] == 0xff && data[3] == 0xff;
    }
  }
  for (uint8_t reg = 0; reg < kNumBars; ++reg) {
    if (!touched[reg] || probe[reg]) {
      continue;
    }
    // Which BAR does this register belong to, and is this the write that completes it?
    uint8_t index = reg;
    if (!bars_[reg]) {
      if (reg == 0 || !bars_[reg - 1] || bars_[reg - 1]->kind != BarKind::kMmio64) {
        continue;
      }
      index = static_cast<uint8_t>(reg - 1);  // the high dword of a 64-bit BAR
    } else if (bars_[reg]->kind == BarKind::kMmio64) {
      continue;  // low dword of a 64-bit BAR: wait for the high dword
    }
    reported_bar_address_[index] = decode_bar(index);
  }
  return moves_since(before);
}

std::vector<BarMove> PciConfigSpace::reset() {
  const BarAddresses before = decoding_addresses();
  for (size_t i = 0; i < kConfigSpaceBytes; ++i) {
    bytes_[i] = static_cast<uint8_t>((bytes_[i] & ~writable_[i]) | (power_on_[i] & writable_[i]));
  }
  for (uint8_t i = 0; i < kNumBars; ++i) {
    reported_bar_address_[i] = decode_bar(i);
  }
  return moves_since(before);
}

uint64_t PciConfigSpace::decode_bar(uint8_t index) const {
  const auto& spec = bars_[index];
  if (!spec) {
    return 0;
  }
  const size_t off = kRegBar0 + size_t{index} * 4;
  const uint32_t low = dword(off);
  if (spec->kind == BarKind::kIo) {
    return low & ~uint32_t{0x3};
  }
  uint64_t address = low & ~uint32_t{0xf};
  if (spec->kind == BarKind::kMmio64) {
    address |= uint64_t{dword(off + 4)} << 32;
  }
  return address;
}

void PciConfigSpace::set_bar_address(uint8_t index, uint64_t address) {
  const auto& spec = bars_[index];
  if (!spec) {
    return;
  }
  const size_t off = kRegBar0 + size_t{index} * 4;
  const uint32_t flag_bits = spec->kind == BarKind::kIo ? 0x3 : 0xf;
  const uint32_t low = (static_cast<uint32_t>(address) & ~flag_bits) | (dword(off) & flag_bits);
  for (size_t i = 0; i < 4; ++i) {
    bytes_[off + i] = static_cast<uint8_t>(low >> (8 * i));
  }
  if (spec->kind == BarKind::kMmio64) {
    const auto high = static_cast<uint32_t>(address >> 32);
    for (size_t i = 0; i < 4; ++i) {
      bytes_[off + 4 + i] = static_cast<uint8_t>(high >> (8 * i));
    }
  }
  reported_bar_address_[index] = decode_bar(index);
}

std::optional<BarSpec> PciConfigSpace::bar(uint8_t index) const {
  if (index >= kNumBars) {
    return std::nullopt;
  }
  return bars_[index];
}

uint64_t PciConfigSpace::bar_address(uint8_t index) const {
  return index < kNumBars ? decode_bar(index) : 0;
}

uint64_t PciConfigSpace::decoding_address(uint8_t index) const {
  if (index >= kNumBars || !bars_[index]) {
    return 0;
  }
  const uint16_t enable =
      bars_[index]->kind == BarKind::kIo ? kCommandIoSpace : kCommandMemorySpace;
  return (command() & enable) != 0 ? reported_bar_address_[index] : 0;
}

PciConfigSpace::BarAddresses PciConfigSpace::decoding_addresses() const {
  BarAddresses addresses{};
  for (uint8_t i = 0; i < kNumBars; ++i) {
    addresses[i] = decoding_address(i);
  }
  return addresses;
}

std::vector<BarMove> PciConfigSpace::moves_since(const BarAddresses& before) const {
  std::vector<BarMove> moves;
  for (uint8_t i = 0; i < kNumBars; ++i) {
    const uint64_t now = decoding_address(i);
    if (now != before[i]) {
      moves.push_back(BarMove{i, before[i], now, bars_[i]->size_bytes, bars_[i]->kind});
    }
  }
  return moves;
}

uint16_t PciConfigSpace::command() const {
  return static_cast<uint16_t>(bytes_[kRegCommand] | (bytes_[kRegCommand + 1] << 8));
}

}  // namespace kumo::devices::pci
