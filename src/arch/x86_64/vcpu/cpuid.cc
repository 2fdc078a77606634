#include "arch/x86_64/vcpu/cpuid.h"

#include <cpuid.h>

namespace kumo::arch::x86_64 {
namespace {

// CPUID.1:ECX
constexpr uint32_t kEcxVmx = 1u << 5;
constexpr uint32_t kEcxCx16 = 1u << 13;
constexpr uint32_t kEcxXsave = 1u << 26;
constexpr uint32_t kEcxOsxsave = 1u << 27;
constexpr uint32_t kEcxAvx = 1u << 28;
constexpr uint32_t kEcxF16c = 1u << 29;
constexpr uint32_t kEcxFma = 1u << 12;
constexpr uint32_t kEcxHypervisor = 1u << 31;
// CPUID.80000001h:ECX
constexpr uint32_t kExtEcxSvm = 1u << 2;
// CPUID.7.0:EBX — features that need AVX/XSAVE state.
constexpr uint32_t kLeaf7EbxAvx2 = 1u << 5;
constexpr uint32_t kLeaf7EbxAvx512Mask = (1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) |
                                         (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31);
// CPUID.7.0:ECX AVX-512 extensions, VAES, VPCLMULQDQ.
constexpr uint32_t kLeaf7EcxAvxMask = (1u << 1) | (1u << 6) | (1u << 9) | (1u << 10) |
                                      (1u << 11) | (1u << 12) | (1u << 14);
constexpr uint32_t kLeaf7EdxAvx512Mask = (1u << 2) | (1u << 3) | (1u << 8) | (1u << 23);

}  // namespace

HostCpuFeatures probe_host_cpu() {
  HostCpuFeatures host;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  bool vmx = false;
  bool svm = false;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0) {
    vmx = (ecx & kEcxVmx) != 0;
  }
  if (__get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx) != 0) {
    svm = (ecx & kExtEcxSvm) != 0;
  }
  host.hardware_virtualization = vmx || svm;
  return host;
}

std::vector<kvm_cpuid_entry2> build_guest_cpuid(std::span<const kvm_cpuid_entry2> supported,
                                                const HostCpuFeatures& host, uint32_t vcpu_index,
                                                uint32_t vcpu_count) {
  std::vector<kvm_cpuid_entry2> out;
  out.reserve(supported.size());
  const bool nested_without_vmx = !host.hardware_virtualization;
  for (kvm_cpuid_entry2 e : supported) {
    switch (e.function) {
      case 1:
        // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package.
        e.ebx = (e.ebx & 0x0000ffffu) | (vcpu_index << 24) | ((vcpu_count & 0xffu) << 16);
        e.ecx |= kEcxHypervisor;
        e.edx |= 1u << 28;  // HTT: EBX[23:16] is valid
        if (nested_without_vmx) {
          e.ecx &= ~(kEcxXsave | kEcxOsxsave | kEcxAvx | kEcxF16c | kEcxFma | kEcxCx16);
        }
        break;
      case 7:
        if (nested_without_vmx && e.index == 0) {
          e.ebx &= ~(kLeaf7EbxAvx2 | kLeaf7EbxAvx512Mask);
          e.ecx &= ~kLeaf7EcxAvxMask;
          e.edx &= ~kLeaf7EdxAvx512Mask;
        }
        break;
      case 0xb:
      case 0x1f:
        e.edx = vcpu_index;  // x2APIC id
        break;
      case 0xd:
        if (nested_without_vmx) {
          continue;  // no XSAVE state components
        }
        break;
      default:
        break;
    }
    out.push_back(e);
  }
  return out;
}

}  // namespace kumo::arch::x86_64
