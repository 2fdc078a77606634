#pragma once
// IrqRouting: KVM's GSI routing table (KVM_SET_GSI_ROUTING replaces it whole, so kumo keeps
// the whole table here).
//
// Fixed part, as on a PC (and as QEMU's kvm_pc_setup_irq_routing): GSI 0–15 reach the
// 8259 PICs (except GSI 2, the cascade); GSI 1–23 reach the IOAPIC pin of the same number
// and GSI 0 — the PIT — reaches IOAPIC pin 2, matching the MADT's interrupt source override
// IRQ0 → GSI2. GSIs from 24 up are handed out for MSI vectors; each has an MSI route while
// its vector is unmasked.
//
// Thread-safety: every method locks; set_msi() is called from vCPU threads.

#include <cstdint>
#include <map>
#include <mutex>

#include "base/result.h"
#include "kvm/vm_fd.h"

namespace kumo::vmm {

class IrqRouting final {
 public:
  static constexpr uint32_t kIoapicPins = 24;
  static constexpr uint32_t kFirstMsiGsi = 24;

  // `vm` must outlive this object. Call install() once after the irqchip exists.
  explicit IrqRouting(const kvm::VmFd& vm) : vm_(vm) {}
  [[nodiscard]] Status install();

  // A fresh GSI for an MSI vector (no route until set_msi()); kHost error when KVM's
  // routing table is full.
  [[nodiscard]] Result<uint32_t> allocate_msi_gsi();
  // Routes `gsi` to the MSI (address, data), or removes the route when `masked`.
  // address and data are guest-controlled; KVM validates them.
  [[nodiscard]] Status set_msi(uint32_t gsi, uint64_t address, uint32_t data, bool masked);

 private:
  struct Msi {
    uint64_t address;
    uint32_t data;
  };
  [[nodiscard]] Status commit_locked();

  const kvm::VmFd& vm_;
  std::mutex mutex_;
  uint32_t next_gsi_ = kFirstMsiGsi;
  std::map<uint32_t, Msi> msi_routes_;
};

}  // namespace kumo::vmm
