#include "arch/x86_64/acpi.h"

#include <array>
#include <vector>

#include "arch/x86_64/acpi_table.h"
#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/layout.h"
#include "base/check.h"

namespace kumo::arch::x86_64 {
namespace {

constexpr uint64_t kTableAlign = 16;
constexpr size_t kRsdpBytes = 36;
constexpr size_t kRsdpV1ChecksumBytes = 20;

// FADT (ACPI 6.4 §5.2.9, Table 5.9).
constexpr uint32_t kFadtFlagHwReducedAcpi = 1u << 20;
constexpr uint16_t kIapcBootArch8042 = 1u << 1;
constexpr uint16_t kIapcBootArchVgaNotPresent = 1u << 2;
constexpr uint16_t kIapcBootArchCmosRtcNotPresent = 1u << 5;
constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorRevision = 4;

// MADT (ACPI 6.4 §5.2.12).
constexpr uint8_t kMadtRevision = 5;
constexpr uint32_t kMadtFlagPcatCompat = 1u << 0;
constexpr uint8_t kMadtLocalApic = 0;
constexpr uint8_t kMadtIoApic = 1;
constexpr uint8_t kMadtInterruptSourceOverride = 2;
constexpr uint8_t kMadtLocalApicNmi = 4;
constexpr uint32_t kMadtLocalApicEnabled = 1u << 0;
constexpr uint16_t kMpsIntiPolarityHigh = 0x1;
constexpr uint16_t kMpsIntiTriggerEdge = 0x4;

std::vector<uint8_t> build_dsdt() { return AcpiTable("DSDT", 2).finish(); }

std::vector<uint8_t> build_fadt(uint64_t dsdt_gpa, const AcpiConfig& config) {
  AcpiTable t("FACP", kFadtRevision);
  t.u32(0);                                        // 36 FIRMWARE_CTRL: no FACS
  t.u32(static_cast<uint32_t>(dsdt_gpa));          // 40 DSDT
  t.zeros(109 - 44);                               // 44..108: no fixed-hardware blocks
  uint16_t boot_arch = kIapcBootArchVgaNotPresent;
  if (config.has_i8042) {
    boot_arch |= kIapcBootArch8042;
  }
  if (!config.has_cmos_rtc) {
    boot_arch |= kIapcBootArchCmosRtcNotPresent;
  }
  t.u16(boot_arch);                                // 109 IAPC_BOOT_ARCH
  t.u8(0);                                         // 111 reserved
  t.u32(kFadtFlagHwReducedAcpi);                   // 112 Flags
  t.zeros(12);                                     // 116 RESET_REG
  t.u8(0);                                         // 128 RESET_VALUE
  t.u16(0);                                        // 129 ARM_BOOT_ARCH
  t.u8(kFadtMinorRevision);                        // 131 FADT Minor Version
  t.u64(0);                                        // 132 X_FIRMWARE_CTRL
  t.u64(dsdt_gpa);                                 // 140 X_DSDT
  t.zeros(268 - 148);                              // 148..267: X_ blocks, sleep registers
  t.bytes("KUMOKUMO");                             // 268 Hypervisor Vendor Identity
  KUMO_CHECK(t.size() == 276);
  return std::move(t).finish();
}

std::vector<uint8_t> build_madt(const AcpiConfig& config) {
  AcpiTable t("APIC", kMadtRevision);
  t.u32(static_cast<uint32_t>(kLapicGpa));
  t.u32(kMadtFlagPcatCompat);
  for (uint32_t cpu = 0; cpu < config.vcpu_count; ++cpu) {
    t.u8(kMadtLocalApic);
    t.u8(8);
    t.u8(static_cast<uint8_t>(cpu));  // ACPI processor UID
    t.u8(static_cast<uint8_t>(cpu));  // APIC id
    t.u32(kMadtLocalApicEnabled);
  }
  t.u8(kMadtIoApic);
  t.u8(12);
  t.u8(static_cast<uint8_t>(config.vcpu_count));  // IOAPIC id
  t.u8(0);
  t.u32(static_cast<uint32_t>(kIoapicGpa));
  t.u32(0);  // GSI base
  t.u8(kMadtInterruptSourceOverride);
  t.u8(10);
  t.u8(0);  // bus: ISA
  t.u8(0);  // source: IRQ 0
  t.u32(2);  // GSI 2
  t.u16(kMpsIntiPolarityHigh | kMpsIntiTriggerEdge);
  t.u8(kMadtLocalApicNmi);
  t.u8(6);
  t.u8(0xff);  // all processors
  t.u16(kMpsIntiPolarityHigh | kMpsIntiTriggerEdge);
  t.u8(1);  // LINT1
  return std::move(t).finish();
}

std::vector<uint8_t> build_xsdt(std::span<const uint64_t> tables) {
  AcpiTable t("XSDT", 1);
  for (uint64_t gpa : tables) {
    t.u64(gpa);
  }
  return std::move(t).finish();
}

std::array<uint8_t, kRsdpBytes> build_rsdp(uint64_t xsdt_gpa) {
  std::array<uint8_t, kRsdpBytes> r{};
  const std::string_view sig = "RSD PTR ";
  std::copy(sig.begin(), sig.end(), r.begin());
  std::copy(kAcpiOemId.begin(), kAcpiOemId.end(), r.begin() + 9);
  r[15] = 2;                                    // revision: ACPI 2.0+
  store_le<uint32_t>(r, 16, 0);                 // RsdtAddress: none, XSDT only
  store_le<uint32_t>(r, 20, kRsdpBytes);        // Length
  store_le<uint64_t>(r, 24, xsdt_gpa);          // XsdtAddress
  r[8] = acpi_checksum(std::span(r).first(kRsdpV1ChecksumBytes));
  r[32] = acpi_checksum(r);
  return r;
}

uint64_t align_up(uint64_t v, uint64_t align) { return (v + align - 1) / align * align; }

}  // namespace

Result<memory::GuestAddress> write_acpi_tables(memory::GuestMemory& mem,
                                               const AcpiConfig& config) {
  if (config.vcpu_count == 0 || config.vcpu_count > kMaxVcpus) {
    return invalid_input("vCPU count {} is outside 1..{}", config.vcpu_count, kMaxVcpus);
  }
  // Layout: RSDP, then each table at the next 16-byte boundary.
  uint64_t next = align_up(kAcpiGpa + kRsdpBytes, kTableAlign);
  auto place = [&](const std::vector<uint8_t>& table) -> Result<uint64_t> {
    const uint64_t gpa = next;
    next = align_up(gpa + table.size(), kTableAlign);
    KUMO_CHECK(next <= kAcpiGpa + kAcpiMaxBytes);
    KUMO_TRY(mem.write(memory::GuestAddress(gpa), table));
    return gpa;
  };
  const uint64_t dsdt = KUMO_TRY(place(build_dsdt()));
  const uint64_t fadt = KUMO_TRY(place(build_fadt(dsdt, config)));
  const uint64_t madt = KUMO_TRY(place(build_madt(config)));
  const std::array<uint64_t, 2> xsdt_entries = {fadt, madt};
  const uint64_t xsdt = KUMO_TRY(place(build_xsdt(xsdt_entries)));
  const auto rsdp = build_rsdp(xsdt);
  KUMO_TRY(mem.write(memory::GuestAddress(kAcpiGpa), rsdp));
  return memory::GuestAddress(kAcpiGpa);
}

}  // namespace kumo::arch::x86_64
