#include "vmm/irq_routing.h"

#include <vector>

namespace kumo::vmm {
namespace {

// KVM_CAP_IRQ_ROUTING reports the table size; 1024 is a safe floor on every kernel that
// has irqfd (KVM_MAX_IRQ_ROUTES has been 4096 since Linux 3.x).
constexpr uint32_t kMaxGsi = 1024;

kvm_irq_routing_entry irqchip_route(uint32_t gsi, uint32_t chip, uint32_t pin) {
  kvm_irq_routing_entry e{};
  e.gsi = gsi;
  e.type = KVM_IRQ_ROUTING_IRQCHIP;
  e.u.irqchip.irqchip = chip;
  e.u.irqchip.pin = pin;
  return e;
}

}  // namespace

Status IrqRouting::install() {
  std::lock_guard lock(mutex_);
  return commit_locked();
}

Result<uint32_t> IrqRouting::allocate_msi_gsi() {
  std::lock_guard lock(mutex_);
  if (next_gsi_ >= kMaxGsi) {
    return host_error_errno(ENOSPC, "no free GSI for another MSI vector ({} in use)",
                            kMaxGsi - kFirstMsiGsi);
  }
  return next_gsi_++;
}

Status IrqRouting::set_msi(uint32_t gsi, uint64_t address, uint32_t data, bool masked) {
  std::lock_guard lock(mutex_);
  if (gsi < kFirstMsiGsi || gsi >= next_gsi_) {
    return invalid_input("GSI {} was not allocated for MSI", gsi);
  }
  if (masked) {
    if (msi_routes_.erase(gsi) == 0) {
      return {};
    }
  } else {
    auto it = msi_routes_.find(gsi);
    if (it != msi_routes_.end() && it->second.address == address && it->second.data == data) {
      return {};
    }
    msi_routes_[gsi] = Msi{address, data};
  }
  return commit_locked();
}

Status IrqRouting::commit_locked() {
  std::vector<kvm_irq_routing_entry> entries;
  for (uint32_t gsi = 0; gsi < 16; ++gsi) {
    if (gsi == 2) {
      continue;  // the cascade input of the master PIC
    }
    entries.push_back(gsi < 8 ? irqchip_route(gsi, KVM_IRQCHIP_PIC_MASTER, gsi)
                              : irqchip_route(gsi, KVM_IRQCHIP_PIC_SLAVE, gsi - 8));
  }
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    if (gsi == 2) {
      continue;
    }
    entries.push_back(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi));
  }
  for (const auto& [gsi, msi] : msi_routes_) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(msi.address);
    e.u.msi.address_hi = static_cast<uint32_t>(msi.address >> 32);
    e.u.msi.data = msi.data;
    entries.push_back(e);
  }
  return vm_.set_gsi_routing(entries);
}

}  // namespace kumo::vmm
