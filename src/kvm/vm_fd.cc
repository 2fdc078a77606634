#include "kvm/vm_fd.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <memory>

#include "kvm/kvm_abi.h"

namespace kumo::kvm {

Status VmFd::set_user_memory_region(uint32_t slot, uint64_t guest_phys_addr, uint64_t size_bytes,
                                    void* host_addr, uint32_t flags) const {
  kvm_userspace_memory_region region{};
  region.slot = slot;
  region.flags = flags;
  region.guest_phys_addr = guest_phys_addr;
  region.memory_size = size_bytes;
  region.userspace_addr = reinterpret_cast<uint64_t>(host_addr);
  if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &region) != 0) {
    return host_error("KVM_SET_USER_MEMORY_REGION slot {} at {:#x} ({} bytes)", slot,
                      guest_phys_addr, size_bytes);
  }
  return {};
}

Status VmFd::set_tss_addr(uint64_t gpa) const {
  if (::ioctl(fd_.get(), KVM_SET_TSS_ADDR, gpa) != 0) {
    return host_error("KVM_SET_TSS_ADDR");
  }
  return {};
}

Status VmFd::set_identity_map_addr(uint64_t gpa) const {
  if (::ioctl(fd_.get(), KVM_SET_IDENTITY_MAP_ADDR, &gpa) != 0) {
    return host_error("KVM_SET_IDENTITY_MAP_ADDR");
  }
  return {};
}

Status VmFd::create_irqchip() const {
  if (::ioctl(fd_.get(), KVM_CREATE_IRQCHIP, 0) != 0) {
    return host_error("KVM_CREATE_IRQCHIP");
  }
  return {};
}

Status VmFd::create_pit2() const {
  kvm_pit_config config{};
  config.flags = KVM_PIT_SPEAKER_DUMMY;
  if (::ioctl(fd_.get(), KVM_CREATE_PIT2, &config) != 0) {
    return host_error("KVM_CREATE_PIT2");
  }
  return {};
}

Result<kvm_irqchip> VmFd::get_irqchip(uint32_t chip_id) const {
  kvm_irqchip chip{};
  chip.chip_id = chip_id;
  if (::ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip) != 0) {
    return host_error("KVM_GET_IRQCHIP {}", chip_id);
  }
  return chip;
}

Status VmFd::set_irqchip(const kvm_irqchip& chip) const {
  if (::ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip) != 0) {
    return host_error("KVM_SET_IRQCHIP {}", chip.chip_id);
  }
  return {};
}

Result<kvm_pit_state2> VmFd::get_pit2() const {
  kvm_pit_state2 state{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &state) != 0) {
    return host_error("KVM_GET_PIT2");
  }
  return state;
}

Status VmFd::set_pit2(const kvm_pit_state2& state) const {
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &state) != 0) {
    return host_error("KVM_SET_PIT2");
  }
  return {};
}

Status VmFd::irq_line(uint32_t gsi, bool level) const {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) != 0) {
    return host_error("KVM_IRQ_LINE gsi {}", gsi);
  }
  return {};
}

Status VmFd::signal_msi(uint64_t address, uint32_t data) const {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  if (::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) < 0) {
    return host_error("KVM_SIGNAL_MSI");
  }
  return {};
}

Status VmFd::irqfd(int eventfd, uint32_t gsi, bool deassign) const {
  kvm_irqfd req{};
  req.fd = static_cast<uint32_t>(eventfd);
  req.gsi = gsi;
  req.flags = deassign ? KVM_IRQFD_FLAG_DEASSIGN : 0;
  if (::ioctl(fd_.get(), KVM_IRQFD, &req) != 0) {
    return host_error("KVM_IRQFD gsi {}", gsi);
  }
  return {};
}

Status VmFd::ioeventfd(int eventfd, uint64_t addr, uint32_t len, bool pio,
                       const uint64_t* datamatch, bool deassign) const {
  kvm_ioeventfd req{};
  req.fd = eventfd;
  req.addr = addr;
  req.len = len;
  req.flags = (pio ? KVM_IOEVENTFD_FLAG_PIO : 0u) | (deassign ? KVM_IOEVENTFD_FLAG_DEASSIGN : 0u);
  if (datamatch != nullptr) {
    req.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    req.datamatch = *datamatch;
  }
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &req) != 0) {
    return host_error("KVM_IOEVENTFD at {:#x}", addr);
  }
  return {};
}

Status VmFd::set_gsi_routing(std::span<const kvm_irq_routing_entry> entries) const {
  abi::VarBuffer<abi::IrqRoutingHeader, kvm_irq_routing_entry> buffer(entries.size());
  buffer.header().nr = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  if (::ioctl(fd_.get(), abi::kSetGsiRouting, buffer.data()) != 0) {
    return host_error("KVM_SET_GSI_ROUTING ({} entries)", entries.size());
  }
  return {};
}

Status VmFd::enable_cap(uint32_t cap, uint64_t arg0) const {
  kvm_enable_cap req{};
  req.cap = cap;
  req.args[0] = arg0;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &req) != 0) {
    return host_error("KVM_ENABLE_CAP {}", cap);
  }
  return {};
}

Status VmFd::get_dirty_log(uint32_t slot, void* bitmap) const {
  kvm_dirty_log log{};
  log.slot = slot;
  log.dirty_bitmap = bitmap;
  if (::ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log) != 0) {
    return host_error("KVM_GET_DIRTY_LOG slot {}", slot);
  }
  return {};
}

Result<VcpuFd> VmFd::create_vcpu(uint32_t id) const {
  UniqueFd fd(::ioctl(fd_.get(), KVM_CREATE_VCPU, static_cast<unsigned long>(id)));
  if (!fd) {
    return host_error("KVM_CREATE_VCPU {}", id);
  }
  void* run = ::mmap(nullptr, static_cast<size_t>(vcpu_mmap_size_), PROT_READ | PROT_WRITE,
                     MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED) {
    return host_error("mapping kvm_run of vCPU {}", id);
  }
  return VcpuFd(std::move(fd), static_cast<kvm_run*>(run), static_cast<size_t>(vcpu_mmap_size_));
}

}  // namespace kumo::kvm
