#pragma once
// The Intel MultiProcessor Specification 1.4 tables, a fallback for guests that do not read
// ACPI (e.g. a kernel booted with acpi=off): the MP floating pointer structure (§4.1) at
// kMpTableGpa — inside the BIOS ROM area 0xf0000-0xfffff the OS scans — followed by the MP
// configuration table (§4.2) with one processor entry per vCPU (APIC id 0..n-1, CPU 0 the
// bootstrap processor), an ISA bus, the IOAPIC (id n, kIoapicGpa), I/O interrupt entries
// for ISA IRQs 0-15 (IRQ 0 → INTIN 2, IRQ 2 absent, the rest identity, matching the ACPI
// MADT's override) and local interrupt entries ExtINT → LINT0, NMI → LINT1.

#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace kumo::arch::x86_64 {

// Writes the tables; returns the floating pointer's gpa. kInvalidInput if vcpu_count is 0 or
// above kMaxVcpus (acpi.h).
[[nodiscard]] Result<memory::GuestAddress> write_mptable(memory::GuestMemory& mem,
                                                         uint32_t vcpu_count);

}  // namespace kumo::arch::x86_64
