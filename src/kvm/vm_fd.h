#pragma once
// VmFd: one KVM virtual machine fd; one method per VM ioctl (Documentation/virt/kvm/api.rst §4).
// Thread-safety: the ioctls used after start (irq_line, signal_msi, irqfd, ioeventfd,
// set_gsi_routing) are safe to call from any thread; KVM serializes them.

#include <linux/kvm.h>

#include <cstdint>
#include <span>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/vcpu_fd.h"

namespace kumo::kvm {

class VmFd final {
 public:
  VmFd(UniqueFd fd, int vcpu_mmap_size) : fd_(std::move(fd)), vcpu_mmap_size_(vcpu_mmap_size) {}

  [[nodiscard]] int fd() const { return fd_.get(); }

  [[nodiscard]] Status set_user_memory_region(uint32_t slot, uint64_t guest_phys_addr,
                                              uint64_t size_bytes, void* host_addr,
                                              uint32_t flags = 0) const;
  [[nodiscard]] Status set_tss_addr(uint64_t gpa) const;
  [[nodiscard]] Status set_identity_map_addr(uint64_t gpa) const;
  [[nodiscard]] Status create_irqchip() const;
  // In-kernel i8254 PIT (KVM_CREATE_PIT2), with speaker port dummy.
  [[nodiscard]] Status create_pit2() const;
  // Saved state of the in-kernel PIC master (0), PIC slave (1) or IOAPIC (2).
  [[nodiscard]] Result<kvm_irqchip> get_irqchip(uint32_t chip_id) const;
  [[nodiscard]] Status set_irqchip(const kvm_irqchip& chip) const;
  [[nodiscard]] Result<kvm_pit_state2> get_pit2() const;
  [[nodiscard]] Status set_pit2(const kvm_pit_state2& state) const;
  [[nodiscard]] Status irq_line(uint32_t gsi, bool level) const;
  [[nodiscard]] Status signal_msi(uint64_t address, uint32_t data) const;
  // KVM_IRQFD: a write to `eventfd` injects `gsi`. deassign=true removes the binding.
  [[nodiscard]] Status irqfd(int eventfd, uint32_t gsi, bool deassign = false) const;
  // KVM_IOEVENTFD on MMIO (pio=false) or PIO; datamatch optional.
  [[nodiscard]] Status ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                                 const uint64_t* datamatch, bool deassign = false) const;
  [[nodiscard]] Status set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const;
  [[nodiscard]] Status enable_cap(uint32_t cap, uint64_t arg0) const;
  [[nodiscard]] Status get_dirty_log(uint32_t slot, void* bitmap) const;
  [[nodiscard]] Result<VcpuFd> create_vcpu(uint32_t id) const;

 private:
  UniqueFd fd_;
  int vcpu_mmap_size_;
};

}  // namespace kumo::kvm
