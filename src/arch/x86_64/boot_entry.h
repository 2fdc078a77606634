#pragma once
// BootEntry: the vCPU state a loaded kernel expects at its first instruction. The KVM layer
// copies these values into the boot vCPU's registers (KVM_SET_REGS / KVM_SET_SREGS); nothing
// here touches /dev/kvm.

#include <cstdint>

#include "arch/x86_64/gdt.h"
#include "memory/guest_address.h"

namespace kumo::arch::x86_64 {

enum class CpuMode {
  kProtected32,  // PVH boot ABI: 32-bit protected mode, flat segments, paging off
  kLong64,       // Linux boot protocol 2.15 §"64-bit Boot Protocol": long mode, identity map
};

struct DescriptorTable {
  uint64_t base = 0;
  uint16_t limit = 0;
};

inline constexpr uint64_t kCr0Pe = 1ull << 0;
inline constexpr uint64_t kCr0Et = 1ull << 4;
inline constexpr uint64_t kCr0Pg = 1ull << 31;
inline constexpr uint64_t kCr4Pae = 1ull << 5;
inline constexpr uint64_t kEferLme = 1ull << 8;
inline constexpr uint64_t kEferLma = 1ull << 10;
inline constexpr uint64_t kRflagsReserved1 = 1ull << 1;  // always set; IF, TF, VM clear

struct BootEntry {
  CpuMode mode = CpuMode::kLong64;
  uint64_t rip = 0;
  uint64_t rsp = 0;
  uint64_t rflags = kRflagsReserved1;
  uint64_t rsi = 0;  // bzImage: boot_params (zero page) gpa
  uint64_t rbx = 0;  // PVH: hvm_start_info gpa
  uint64_t cr0 = 0;
  uint64_t cr3 = 0;
  uint64_t cr4 = 0;
  uint64_t efer = 0;
  Segment cs;
  Segment ds;  // also ES, FS, GS, SS
  Segment tr;
  DescriptorTable gdt;
  DescriptorTable idt;  // limit 0: the kernel installs its own before enabling interrupts
  memory::GuestAddress boot_params_gpa;  // zero page or hvm_start_info
  memory::GuestAddress rsdp_gpa;         // ACPI RSDP kumo wrote
};

// PVH: rip = entry, ebx = start_info, CR0.PE only, CS = kCode32Selector.
[[nodiscard]] BootEntry pvh_boot_entry(memory::GuestAddress entry, memory::GuestAddress start_info,
                                       memory::GuestAddress rsdp);

// Linux 64-bit boot: rip = entry, rsi = boot_params, paging on with CR3 = kPml4Gpa,
// CS = kCode64Selector (__BOOT_CS), DS = kDataSelector (__BOOT_DS).
[[nodiscard]] BootEntry linux64_boot_entry(memory::GuestAddress entry,
                                           memory::GuestAddress boot_params,
                                           memory::GuestAddress rsdp);

}  // namespace kumo::arch::x86_64
