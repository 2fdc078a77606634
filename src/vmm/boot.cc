#include "vmm/boot.h"

#include <unistd.h>

#include <fmt/format.h>

#include "arch/x86_64/kernel_loader.h"
#include "arch/x86_64/vcpu/cpuid.h"
#include "vmm/cpuid_probe.h"
#include "arch/x86_64/layout.h"

namespace kumo::vmm {
namespace {

kvm_segment to_kvm(const arch::x86_64::Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  return k;
}

uint64_t host_physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size)
                                    : 0;
}

constexpr char kLinuxWorkaround[] = "noxsave clearcpuid=cx16";

}  // namespace

Result<std::string> kernel_cmdline_for_host(const kvm::KvmSystem& kvm, const VmConfig& config) {
  if (arch::x86_64::probe_host_cpu().hardware_virtualization) {
    return config.cmdline;
  }
  auto is_linux = arch::x86_64::is_linux_kernel(config.kernel_path);
  if (!is_linux || !*is_linux) {
    return config.cmdline;  // not Linux, or unreadable: load_kernel() reports the error
  }
  if (KUMO_TRY(guest_cpuid_is_controllable(kvm))) {
    return config.cmdline;
  }
  fmt::print(stderr,
             "kumo: this host has no VT-x/AMD-V and guest CPUID shows host features; "
             "appending '{}' so Linux avoids XSAVE and CMPXCHG16B\n",
             kLinuxWorkaround);
  return config.cmdline.empty() ? std::string(kLinuxWorkaround)
                                : config.cmdline + " " + kLinuxWorkaround;
}

Result<std::vector<memory::RegionSpec>> guest_ram_regions(uint64_t memory_bytes) {
  const uint64_t host_bytes = host_physical_memory_bytes();
  if (host_bytes != 0 && memory_bytes > host_bytes) {
    return invalid_input("--memory {} MiB is more than this host's {} MiB of RAM",
                         memory_bytes >> 20, host_bytes >> 20);
  }
  auto regions = arch::x86_64::ram_regions(memory_bytes);
  if (!regions) {
    return tl::unexpected(regions.error().with_context("--memory"));
  }
  return regions;
}

Result<BootPlan> load_guest(const memory::GuestMemory& memory, const VmConfig& config) {
  arch::x86_64::KernelSpec spec;
  spec.kernel_path = config.kernel_path;
  spec.initrd_path = config.initrd_path;
  spec.options.cmdline = config.cmdline;
  spec.options.vcpu_count = config.vcpus;
  spec.options.has_i8042 = true;
  spec.options.has_cmos_rtc = false;
  return arch::x86_64::load_kernel(const_cast<memory::GuestMemory&>(memory), spec);
}

Status apply_boot_entry(const kvm::VcpuFd& vcpu, const BootPlan& plan) {
  kvm_sregs sregs = KUMO_TRY(vcpu.get_sregs());
  sregs.cs = to_kvm(plan.cs);
  sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = to_kvm(plan.ds);
  sregs.tr = to_kvm(plan.tr);
  sregs.gdt.base = plan.gdt.base;
  sregs.gdt.limit = plan.gdt.limit;
  sregs.idt.base = plan.idt.base;
  sregs.idt.limit = plan.idt.limit;
  sregs.cr0 = plan.cr0;
  sregs.cr3 = plan.cr3;
  sregs.cr4 = plan.cr4;
  sregs.efer = plan.efer;
  KUMO_TRY(vcpu.set_sregs(sregs));

  kvm_regs regs{};
  regs.rip = plan.rip;
  regs.rsp = plan.rsp;
  regs.rflags = plan.rflags;
  regs.rsi = plan.rsi;
  regs.rbx = plan.rbx;
  return vcpu.set_regs(regs);
}

}  // namespace kumo::vmm
