#include "vmm/cpuid_probe.h"

#include <sys/mman.h>

#include <cstring>

#include "arch/x86_64/boot_entry.h"
#include "vmm/boot.h"

namespace kumo::vmm {
namespace {

constexpr uint64_t kCodeGpa = 0x1000;
constexpr uint16_t kReportPort = 0xf4;
constexpr uint32_t kEcxXsave = 1u << 26;

// 32-bit protected mode: mov eax,1; cpuid; mov eax,ecx; out 0xf4,eax; hlt
constexpr uint8_t kProbeCode[] = {0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x89,
                                  0xc8, 0xe7, 0xf4, 0xf4};

}  // namespace

Result<bool> guest_cpuid_is_controllable(const kvm::KvmSystem& kvm) {
  auto vm = KUMO_TRY(kvm.create_vm());
  void* page = ::mmap(nullptr, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    return host_error("mapping the CPUID probe's memory");
  }
  struct Unmap {
    void* p;
    ~Unmap() { ::munmap(p, 0x2000); }
  } unmap{page};
  std::memcpy(static_cast<uint8_t*>(page) + kCodeGpa, kProbeCode, sizeof(kProbeCode));
  KUMO_TRY(vm.set_user_memory_region(0, 0, 0x2000, page));
  auto vcpu = KUMO_TRY(vm.create_vcpu(0));

  auto cpuid = KUMO_TRY(kvm.supported_cpuid());
  uint32_t expected_ecx = 0;
  for (kvm_cpuid_entry2& e : cpuid) {
    if (e.function == 1) {
      e.ecx &= ~kEcxXsave;
      expected_ecx = e.ecx;
    }
  }
  KUMO_TRY(vcpu.set_cpuid2(cpuid));

  // The PVH entry state is exactly what the probe needs: 32-bit protected mode, paging off.
  KUMO_TRY(apply_boot_entry(vcpu, arch::x86_64::pvh_boot_entry(memory::GuestAddress(kCodeGpa),
                                                               memory::GuestAddress(0),
                                                               memory::GuestAddress(0))));

  KUMO_TRY(vcpu.run());
  const kvm_run* run = vcpu.run_state();
  if (run->exit_reason != KVM_EXIT_IO || run->io.port != kReportPort || run->io.size != 4) {
    return host_error_errno(0, "CPUID probe guest stopped unexpectedly (exit reason {})",
                            run->exit_reason);
  }
  uint32_t seen_ecx = 0;
  std::memcpy(&seen_ecx, reinterpret_cast<const uint8_t*>(run) + run->io.data_offset, 4);
  // OSXSAVE (bit 27) mirrors CR4 and may differ; compare XSAVE itself.
  return (seen_ecx & kEcxXsave) == (expected_ecx & kEcxXsave);
}

}  // namespace kumo::vmm
