#pragma once
// Puts a KVM vCPU into the state a boot protocol expects: CPUID, MSRs, FPU, LAPIC LINT pins,
// and the entry registers (PVH 32-bit protected mode, or Linux 64-bit long mode).

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/vcpu_fd.h"

namespace kumo::arch::x86_64 {

// Where and how the boot CPU enters the guest.
struct EntryState {
  enum class Mode { kProtected32, kLong64 };
  Mode mode = Mode::kProtected32;
  uint64_t rip = 0;
  uint64_t rbx = 0;  // PVH: hvm_start_info gpa
  uint64_t rsi = 0;  // Linux 64-bit: boot_params gpa
  uint64_t cr3 = 0;  // kLong64: identity page tables (PML4 gpa)
  uint64_t gdt_gpa = 0;  // kLong64: GDT with code at selector 0x10, data at 0x18
  uint16_t gdt_limit = 0;
};

// CPUID, MSRs, FPU and LAPIC for every vCPU (BSP and APs).
[[nodiscard]] Status configure_vcpu(const kvm::VcpuFd& vcpu,
                                    std::span<const kvm_cpuid_entry2> cpuid,
                                    std::span<const uint32_t> supported_msrs);

// Entry registers for the boot vCPU. APs stay in KVM's wait-for-SIPI state.
[[nodiscard]] Status set_entry_registers(const kvm::VcpuFd& vcpu, const EntryState& entry);

}  // namespace kumo::arch::x86_64
