#pragma once
// Whether this host lets kumo choose the CPUID a guest sees.
//
// On a host with VT-x/AMD-V, KVM intercepts CPUID and answers from KVM_SET_CPUID2. Where KVM
// itself runs nested without them (e.g. KVM PVM), guest CPUID may execute natively and show
// the host's features — including XSAVE and CMPXCHG16B, which that host's ring-0 emulator
// cannot run. The probe runs a one-page guest that executes CPUID leaf 1 under a table with
// XSAVE cleared and reports whether the guest saw the bit anyway. It costs one tiny VM
// (a few milliseconds), so callers run it only when it matters.

#include "base/result.h"
#include "kvm/kvm_system.h"

namespace kumo::vmm {

// True when the guest sees exactly the CPUID leaf-1 ECX that KVM_SET_CPUID2 set.
[[nodiscard]] Result<bool> guest_cpuid_is_controllable(const kvm::KvmSystem& kvm);

}  // namespace kumo::vmm
