#include "kvm/vcpu_fd.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <memory>

#include "kvm/kvm_abi.h"

namespace kumo::kvm {
namespace {

template <typename T>
Status ioctl_in(int fd, unsigned long request, const T& value, const char* name) {
  if (::ioctl(fd, request, &value) != 0) {
    return host_error("{}", name);
  }
  return {};
}

template <typename T>
Result<T> ioctl_out(int fd, unsigned long request, const char* name) {
  T value{};
  if (::ioctl(fd, request, &value) != 0) {
    return host_error("{}", name);
  }
  return value;
}

}  // namespace

VcpuFd::~VcpuFd() {
  if (run_ != nullptr) {
    ::munmap(run_, run_size_);
  }
}

Status VcpuFd::run() const {
  if (::ioctl(fd_.get(), KVM_RUN, 0) != 0) {
    return host_error("KVM_RUN");
  }
  return {};
}

Result<kvm_regs> VcpuFd::get_regs() const { return ioctl_out<kvm_regs>(fd_.get(), KVM_GET_REGS, "KVM_GET_REGS"); }
Status VcpuFd::set_regs(const kvm_regs& r) const { return ioctl_in(fd_.get(), KVM_SET_REGS, r, "KVM_SET_REGS"); }
Result<kvm_sregs> VcpuFd::get_sregs() const { return ioctl_out<kvm_sregs>(fd_.get(), KVM_GET_SREGS, "KVM_GET_SREGS"); }
Status VcpuFd::set_sregs(const kvm_sregs& s) const { return ioctl_in(fd_.get(), KVM_SET_SREGS, s, "KVM_SET_SREGS"); }
Result<kvm_fpu> VcpuFd::get_fpu() const { return ioctl_out<kvm_fpu>(fd_.get(), KVM_GET_FPU, "KVM_GET_FPU"); }
Status VcpuFd::set_fpu(const kvm_fpu& f) const { return ioctl_in(fd_.get(), KVM_SET_FPU, f, "KVM_SET_FPU"); }
Result<kvm_lapic_state> VcpuFd::get_lapic() const { return ioctl_out<kvm_lapic_state>(fd_.get(), KVM_GET_LAPIC, "KVM_GET_LAPIC"); }
Status VcpuFd::set_lapic(const kvm_lapic_state& l) const { return ioctl_in(fd_.get(), KVM_SET_LAPIC, l, "KVM_SET_LAPIC"); }
Result<kvm_vcpu_events> VcpuFd::get_vcpu_events() const { return ioctl_out<kvm_vcpu_events>(fd_.get(), KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS"); }
Status VcpuFd::set_vcpu_events(const kvm_vcpu_events& e) const { return ioctl_in(fd_.get(), KVM_SET_VCPU_EVENTS, e, "KVM_SET_VCPU_EVENTS"); }
Result<kvm_mp_state> VcpuFd::get_mp_state() const { return ioctl_out<kvm_mp_state>(fd_.get(), KVM_GET_MP_STATE, "KVM_GET_MP_STATE"); }
Status VcpuFd::set_mp_state(const kvm_mp_state& m) const { return ioctl_in(fd_.get(), KVM_SET_MP_STATE, m, "KVM_SET_MP_STATE"); }

Status VcpuFd::set_cpuid2(std::span<const kvm_cpuid_entry2> entries) const {
  abi::VarBuffer<abi::CpuidHeader, kvm_cpuid_entry2> buffer(entries.size());
  buffer.header().nent = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  if (::ioctl(fd_.get(), abi::kSetCpuid2, buffer.data()) != 0) {
    return host_error("KVM_SET_CPUID2");
  }
  return {};
}

Status VcpuFd::set_msrs(std::span<const kvm_msr_entry> entries) const {
  abi::VarBuffer<abi::MsrsHeader, kvm_msr_entry> buffer(entries.size());
  buffer.header().nmsrs = static_cast<uint32_t>(entries.size());
  std::copy(entries.begin(), entries.end(), buffer.entries());
  const int written = ::ioctl(fd_.get(), abi::kSetMsrs, buffer.data());
  if (written < 0) {
    return host_error("KVM_SET_MSRS");
  }
  if (static_cast<size_t>(written) != entries.size()) {
    return host_error_errno(0, "KVM_SET_MSRS set {} of {} MSRs (first refused: {:#x})", written,
                            entries.size(), entries[static_cast<size_t>(written)].index);
  }
  return {};
}

}  // namespace kumo::kvm
