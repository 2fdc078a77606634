#pragma once
// The VMM's use of the x86-64 boot code: guest RAM layout, loading the kernel (PVH ELF or
// bzImage) with its initrd, command line and firmware tables, and the boot vCPU's registers.

#include <cstdint>
#include <vector>

#include "arch/x86_64/boot_entry.h"
#include "base/result.h"
#include "kvm/kvm_system.h"
#include "kvm/vcpu_fd.h"
#include "memory/guest_memory.h"
#include "vmm/vm_config.h"

namespace kumo::vmm {

using BootPlan = arch::x86_64::BootEntry;

// RAM regions for `memory_bytes`; kInvalidInput when it is below the minimum, not a whole
// number of pages, or larger than this host's physical memory.
[[nodiscard]] Result<std::vector<memory::RegionSpec>> guest_ram_regions(uint64_t memory_bytes);

// The command line the kernel gets on this host: config.cmdline, plus "noxsave
// clearcpuid=cx16" for a Linux kernel (bzImage, or ELF whose Xen GUEST_OS note says "linux")
// when the host has no VT-x/AMD-V and the CPUID probe shows guest CPUID cannot be filtered
// (see cpuid_probe.h): the only way left to keep Linux off instructions the host cannot run.
// Logs one line on stderr when it appends.
[[nodiscard]] Result<std::string> kernel_cmdline_for_host(const kvm::KvmSystem& kvm,
                                                          const VmConfig& config);

// Loads kernel, initrd and command line, and writes e820, ACPI and MP tables for
// config.vcpus CPUs. Bad images are kInvalidInput naming the file and the problem.
[[nodiscard]] Result<BootPlan> load_guest(const memory::GuestMemory& memory,
                                          const VmConfig& config);

// Sets the boot vCPU's registers to the entry state the kernel expects.
[[nodiscard]] Status apply_boot_entry(const kvm::VcpuFd& vcpu, const BootPlan& plan);

}  // namespace kumo::vmm
