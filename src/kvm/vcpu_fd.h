#pragma once
// VcpuFd: one KVM vCPU fd and its mapped kvm_run page; one method per vCPU ioctl.
// A VcpuFd is used by one thread at a time (its vCPU thread), except set_immediate_exit(),
// which another thread may call to kick the vCPU out of KVM_RUN (with a signal).

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace kumo::kvm {

class VcpuFd final {
 public:
  VcpuFd(UniqueFd fd, kvm_run* run, size_t run_size) : fd_(std::move(fd)), run_(run),
                                                       run_size_(run_size) {}
  VcpuFd(VcpuFd&& other) noexcept
      : fd_(std::move(other.fd_)),
        run_(std::exchange(other.run_, nullptr)),
        run_size_(std::exchange(other.run_size_, 0)) {}
  VcpuFd& operator=(VcpuFd&&) = delete;
  VcpuFd(const VcpuFd&) = delete;
  VcpuFd& operator=(const VcpuFd&) = delete;
  ~VcpuFd();

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] kvm_run* run_state() const { return run_; }

  // KVM_RUN. Returns EINTR/EAGAIN as an error with that errno (the caller checks for a kick).
  [[nodiscard]] Status run() const;
  void set_immediate_exit(bool on) const {
    std::atomic_ref<uint8_t>(run_->immediate_exit).store(on ? 1 : 0);
  }

  [[nodiscard]] Result<kvm_regs> get_regs() const;
  [[nodiscard]] Status set_regs(const kvm_regs& regs) const;
  [[nodiscard]] Result<kvm_sregs> get_sregs() const;
  [[nodiscard]] Status set_sregs(const kvm_sregs& sregs) const;
  [[nodiscard]] Result<kvm_fpu> get_fpu() const;
  [[nodiscard]] Status set_fpu(const kvm_fpu& fpu) const;
  [[nodiscard]] Status set_cpuid2(std::span<const kvm_cpuid_entry2> entries) const;
  [[nodiscard]] Status set_msrs(std::span<const kvm_msr_entry> entries) const;
  [[nodiscard]] Result<kvm_lapic_state> get_lapic() const;
  [[nodiscard]] Status set_lapic(const kvm_lapic_state& lapic) const;
  [[nodiscard]] Result<kvm_vcpu_events> get_vcpu_events() const;
  [[nodiscard]] Status set_vcpu_events(const kvm_vcpu_events& events) const;
  [[nodiscard]] Result<kvm_mp_state> get_mp_state() const;
  [[nodiscard]] Status set_mp_state(const kvm_mp_state& state) const;

 private:
  UniqueFd fd_;
  kvm_run* run_;
  size_t run_size_;
};

}  // namespace kumo::kvm
