#pragma once
// Guest CPUID, built from KVM_GET_SUPPORTED_CPUID and filtered to what the host really runs.
//
// When the host CPU has neither VT-x nor AMD-V (CPUID.1:ECX.VMX and CPUID.80000001h:ECX.SVM
// clear), KVM itself runs nested on a hypervisor that emulates guest ring-0 code, and that
// emulator cannot execute XSAVE-family instructions or CMPXCHG16B. We then hide XSAVE, OSXSAVE,
// AVX (which needs XSAVE state), the AVX-dependent leaf-7 features and CX16, so a guest kernel
// chooses code paths the host can run. On a VT-x/AMD-V host nothing is hidden.

#include <linux/kvm.h>

#include <cstdint>
#include <span>
#include <vector>

namespace kumo::arch::x86_64 {

struct HostCpuFeatures {
  bool hardware_virtualization = true;  // VT-x or AMD-V visible to this process
};

// Reads the host CPUID (the real one, via the cpuid instruction).
HostCpuFeatures probe_host_cpu();

// Returns the CPUID table for vCPU `vcpu_index` of `vcpu_count`: APIC ids, topology counts,
// the hypervisor bit, and the nested-host filtering above.
std::vector<kvm_cpuid_entry2> build_guest_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                                const HostCpuFeatures& host, uint32_t vcpu_index,
                                                uint32_t vcpu_count);

}  // namespace kumo::arch::x86_64
