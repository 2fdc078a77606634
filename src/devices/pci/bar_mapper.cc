#include "devices/pci/bar_mapper.h"

namespace kumo::devices::pci {

void PciBarMapper::add(const std::shared_ptr<PciDevice>& device, const AttachedDevice& attached) {
  std::lock_guard lock(mutex_);
  for (const BarPlacement& bar : attached.bars) {
    if (bar.kind != BarKind::kIo) {
      bars_[{attached.slot, bar.index}] =
          Mapping{std::make_shared<PciBarRegion>(device, bar.index), bar.size_bytes, std::nullopt};
    }
  }
}

Status PciBarMapper::on_move(uint8_t slot, const BarMove& move) {
  std::lock_guard lock(mutex_);
  auto it = bars_.find({slot, move.index});
  if (it == bars_.end()) {
    return {};  // an I/O BAR, or a device the mapper was not given
  }
  Mapping& m = it->second;
  if (m.address) {
    KUMO_TRY(mmio_.remove(*m.address));
    m.address.reset();
  }
  if (move.new_address == 0) {
    return {};
  }
  KUMO_TRY(mmio_.insert(move.new_address, m.size_bytes, m.region));
  m.address = move.new_address;
  return {};
}

std::optional<uint64_t> PciBarMapper::mapped_address(uint8_t slot, uint8_t index) const {
  std::lock_guard lock(mutex_);
  auto it = bars_.find({slot, index});
  return it == bars_.end() ? std::nullopt : it->second.address;
}

}  // namespace kumo::devices::pci
