#pragma once
// The ACPI tables that tell a guest about its CPUs and interrupt controllers, written at
// kAcpiGpa (inside the e820-reserved area below 1 MiB, where an OS without a pointer from
// the boot loader also scans for the RSDP — ACPI 6.4 §5.2.5.1):
//
//   RSDP  ACPI 6.4 §5.2.5.3, revision 2, XSDT address (no RSDT), both checksums
//   XSDT  §5.2.8, points at FADT and MADT
//   FADT  §5.2.9, revision 6, HW_REDUCED_ACPI (no PM1/GPE blocks, no SCI), X_DSDT set
//   DSDT  §5.2.11.1, header only (empty AML body)
//   MADT  §5.2.12, revision 5: one enabled Processor Local APIC per vCPU (UID = APIC id =
//         0..n-1), one IOAPIC (id n, kIoapicGpa, GSI base 0), an Interrupt Source Override
//         ISA IRQ 0 → GSI 2 (the 8254 PIT on IOAPIC pin 2, as QEMU wires it: the KVM IRQ
//         routing must match), and a Local APIC NMI on LINT1 for all processors.
//
// Each table is 16-byte aligned; everything fits in kAcpiMaxBytes for up to kMaxVcpus.

#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

// xAPIC ids are 8 bits, 0xff is broadcast and the IOAPIC takes id n.
inline constexpr uint32_t kMaxVcpus = 254;

struct AcpiConfig {
  uint32_t vcpu_count = 1;
  // FADT IAPC_BOOT_ARCH "8042" bit: tells Linux whether to probe the i8042 controller.
  bool has_i8042 = false;
  // FADT IAPC_BOOT_ARCH "CMOS RTC Not Present" is set unless this is true.
  bool has_cmos_rtc = false;
};

// Writes the tables and returns the RSDP's gpa (kAcpiGpa). kInvalidInput if vcpu_count is
// 0 or above kMaxVcpus.
[[nodiscard]] Result<memory::GuestAddress> write_acpi_tables(memory::GuestMemory& mem,
                                                             const AcpiConfig& config);

}  // namespace kumo::arch::x86_64
