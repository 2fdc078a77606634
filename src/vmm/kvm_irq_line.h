#pragma once
// KvmIrqLine: a devices::InterruptLine wired to one GSI of KVM's in-kernel IOAPIC/PIC.

#include "devices/interrupt.h"
#include "kvm/vm_fd.h"

namespace kumo::vmm {

class KvmIrqLine final : public devices::InterruptLine {
 public:
  // `vm` must outlive this object.
  KvmIrqLine(const kvm::VmFd& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  Status set_level(bool asserted) override { return vm_.irq_line(gsi_, asserted); }
  Status pulse() override {
    KUMO_TRY(vm_.irq_line(gsi_, true));
    return vm_.irq_line(gsi_, false);
  }

 private:
  const kvm::VmFd& vm_;
  uint32_t gsi_;
};

}  // namespace kumo::vmm
