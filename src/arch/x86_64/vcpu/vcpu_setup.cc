#include "arch/x86_64/vcpu/vcpu_setup.h"

#include <algorithm>

namespace kumo::arch::x86_64 {
namespace {

constexpr uint32_t kMsrIa32Tsc = 0x10;
constexpr uint32_t kMsrIa32SysenterCs = 0x174;
constexpr uint32_t kMsrIa32SysenterEsp = 0x175;
constexpr uint32_t kMsrIa32SysenterEip = 0x176;
constexpr uint32_t kMsrIa32MiscEnable = 0x1a0;
constexpr uint32_t kMsrMtrrDefType = 0x2ff;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrCstar = 0xc0000083;
constexpr uint32_t kMsrSyscallMask = 0xc0000084;
constexpr uint32_t kMsrKernelGsBase = 0xc0000102;

constexpr uint64_t kMiscEnableFastStrings = 1;
constexpr uint64_t kMtrrEnableWriteBackDefault = (1u << 11) | 6;


// LAPIC register offsets and LVT delivery modes (Intel SDM vol. 3 §11.5.1).
constexpr size_t kApicLvtLint0 = 0x350;
constexpr size_t kApicLvtLint1 = 0x360;
constexpr uint32_t kDeliveryExtInt = 7u << 8;
constexpr uint32_t kDeliveryNmi = 4u << 8;

uint32_t get_apic_reg(const kvm_lapic_state& s, size_t offset) {
  uint32_t v = 0;
  std::copy_n(reinterpret_cast<const uint8_t*>(s.regs) + offset, 4, reinterpret_cast<uint8_t*>(&v));
  return v;
}
void set_apic_reg(kvm_lapic_state& s, size_t offset, uint32_t v) {
  std::copy_n(reinterpret_cast<const uint8_t*>(&v), 4, reinterpret_cast<uint8_t*>(s.regs) + offset);
}

}  // namespace

Status configure_vcpu(const kvm::VcpuFd& vcpu, std::span<const kvm_cpuid_entry2> cpuid,
                      std::span<const uint32_t> supported_msrs) {
  KUMO_TRY(vcpu.set_cpuid2(cpuid));

  const kvm_msr_entry wanted[] = {
      {kMsrIa32SysenterCs, 0, 0},     {kMsrIa32SysenterEsp, 0, 0},
      {kMsrIa32SysenterEip, 0, 0},    {kMsrStar, 0, 0},
      {kMsrCstar, 0, 0},              {kMsrKernelGsBase, 0, 0},
      {kMsrSyscallMask, 0, 0},        {kMsrLstar, 0, 0},
      {kMsrIa32Tsc, 0, 0},            {kMsrIa32MiscEnable, 0, kMiscEnableFastStrings},
      {kMsrMtrrDefType, 0, kMtrrEnableWriteBackDefault},
  };
  std::vector<kvm_msr_entry> msrs;
  for (const kvm_msr_entry& m : wanted) {
    if (std::find(supported_msrs.begin(), supported_msrs.end(), m.index) != supported_msrs.end()) {
      msrs.push_back(m);
    }
  }
  KUMO_TRY(vcpu.set_msrs(msrs));

  kvm_fpu fpu{};
  fpu.fcw = 0x37f;
  fpu.mxcsr = 0x1f80;
  KUMO_TRY(vcpu.set_fpu(fpu));

  // LINT0 takes the PIC's ExtINT, LINT1 is the NMI pin (MP spec "virtual wire" mode).
  kvm_lapic_state lapic = KUMO_TRY(vcpu.get_lapic());
  set_apic_reg(lapic, kApicLvtLint0, (get_apic_reg(lapic, kApicLvtLint0) & ~0x700u) | kDeliveryExtInt);
  set_apic_reg(lapic, kApicLvtLint1, (get_apic_reg(lapic, kApicLvtLint1) & ~0x700u) | kDeliveryNmi);
  KUMO_TRY(vcpu.set_lapic(lapic));
  return {};
}

}  // namespace kumo::arch::x86_64
