#pragma once
// KVM implementations of the interrupt and notification interfaces PCI devices are given
// (devices/pci/msi.h): MSI-X vectors as GSIs with an irqfd each and an MSI route while
// unmasked, and virtqueue notify addresses as KVM ioeventfds.

#include <memory>

#include "devices/pci/msi.h"
#include "kvm/vm_fd.h"
#include "vmm/irq_routing.h"

namespace kumo::vmm {

// `vm` and `routing` must outlive the allocator and every vector it hands out.
class KvmMsiVectorAllocator final : public devices::pci::MsiVectorAllocator {
 public:
  KvmMsiVectorAllocator(const kvm::VmFd& vm, IrqRouting& routing) : vm_(vm), routing_(routing) {}
  [[nodiscard]] Result<std::unique_ptr<devices::pci::MsiVector>> allocate() override;

 private:
  const kvm::VmFd& vm_;
  IrqRouting& routing_;
};

class KvmIoEventRegistry final : public devices::pci::IoEventRegistry {
 public:
  explicit KvmIoEventRegistry(const kvm::VmFd& vm) : vm_(vm) {}
  [[nodiscard]] Status add(uint64_t gpa, uint32_t len_bytes, int eventfd) override;
  [[nodiscard]] Status remove(uint64_t gpa, uint32_t len_bytes, int eventfd) override;

 private:
  const kvm::VmFd& vm_;
};

}  // namespace kumo::vmm
