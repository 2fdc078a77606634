#pragma once
// Puts a KVM vCPU into its power-on state for kumo's machine: CPUID, MSRs, FPU, LAPIC LINT
// pins. (Entry registers come from the boot loader's BootEntry, see vmm/boot.h.)

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "kvm/vcpu_fd.h"

namespace kumo::arch::x86_64 {

// CPUID, MSRs, FPU and LAPIC for every vCPU (BSP and APs).
[[nodiscard]] Status configure_vcpu(const kvm::VcpuFd& vcpu,
                                    std::span<const kvm_cpuid_entry2> cpuid,
                                    std::span<const uint32_t> supported_msrs);

}  // namespace kumo::arch::x86_64
