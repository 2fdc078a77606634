#include "arch/x86_64/boot_entry.h"

#include "arch/x86_64/layout.h"

namespace kumo::arch::x86_64 {
namespace {

BootEntry common(memory::GuestAddress rip, memory::GuestAddress params,
                 memory::GuestAddress rsdp) {
  BootEntry e;
  e.rip = rip.raw();
  e.rsp = kBootStackTopGpa;
  e.rflags = kRflagsReserved1;
  e.ds = boot_segment(kDataSelector);
  e.tr = boot_segment(kTssSelector);
  e.gdt = {kBootGdtGpa, static_cast<uint16_t>(kBootGdtEntries * 8 - 1)};
  e.idt = {0, 0};
  e.boot_params_gpa = params;
  e.rsdp_gpa = rsdp;
  return e;
}

}  // namespace

BootEntry pvh_boot_entry(memory::GuestAddress entry, memory::GuestAddress start_info,
                         memory::GuestAddress rsdp) {
  BootEntry e = common(entry, start_info, rsdp);
  e.mode = CpuMode::kProtected32;
  e.rbx = start_info.raw();
  e.cr0 = kCr0Pe | kCr0Et;
  e.cs = boot_segment(kCode32Selector);
  return e;
}

BootEntry linux64_boot_entry(memory::GuestAddress entry, memory::GuestAddress boot_params,
                             memory::GuestAddress rsdp) {
  BootEntry e = common(entry, boot_params, rsdp);
  e.mode = CpuMode::kLong64;
  e.rsi = boot_params.raw();
  e.cr0 = kCr0Pe | kCr0Et | kCr0Pg;
  e.cr3 = kPml4Gpa;
  e.cr4 = kCr4Pae;
  e.efer = kEferLme | kEferLma;
  e.cs = boot_segment(kCode64Selector);
  return e;
}

}  // namespace kumo::arch::x86_64
