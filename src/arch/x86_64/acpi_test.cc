#include "arch/x86_64/acpi.h"

#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/layout.h"
#include "arch/x86_64/memory_test_util.h"
#include "arch/x86_64/mptable.h"

namespace kumo::arch::x86_64 {
namespace {

using memory::GuestAddress;

std::vector<uint8_t> read_bytes(const memory::GuestMemory& mem, uint64_t gpa, size_t len) {
  std::vector<uint8_t> b(len);
  EXPECT_TRUE(mem.read(GuestAddress(gpa), b));
  return b;
}

uint8_t sum(const std::vector<uint8_t>& b) {
  return static_cast<uint8_t>(std::accumulate(b.begin(), b.end(), 0u));
}

// A whole system description table, by its header's length.
std::vector<uint8_t> read_table(const memory::GuestMemory& mem, uint64_t gpa) {
  const auto header = read_bytes(mem, gpa, 36);
  return read_bytes(mem, gpa, load_le<uint32_t>(header, 4));
}

std::string signature(const std::vector<uint8_t>& t) { return std::string(t.begin(), t.begin() + 4); }

struct Tables {
  std::vector<uint8_t> rsdp, xsdt, fadt, dsdt, madt;
};

Tables walk(const memory::GuestMemory& mem, GuestAddress rsdp_gpa) {
  Tables t;
  t.rsdp = read_bytes(mem, rsdp_gpa.raw(), 36);
  t.xsdt = read_table(mem, load_le<uint64_t>(t.rsdp, 24));
  for (size_t at = 36; at + 8 <= t.xsdt.size(); at += 8) {
    auto table = read_table(mem, load_le<uint64_t>(t.xsdt, at));
    if (signature(table) == "FACP") t.fadt = std::move(table);
    else if (signature(table) == "APIC") t.madt = std::move(table);
  }
  if (!t.fadt.empty()) t.dsdt = read_table(mem, load_le<uint64_t>(t.fadt, 140));
  return t;
}

TEST(Acpi, EveryTableChecksumsToZero) {
  auto mem = testing::make_guest_memory();
  const GuestAddress rsdp = write_acpi_tables(mem, {.vcpu_count = 4}).value();
  EXPECT_EQ(rsdp.raw(), kAcpiGpa);
  const Tables t = walk(mem, rsdp);
  EXPECT_EQ(std::string(t.rsdp.begin(), t.rsdp.begin() + 8), "RSD PTR ");
  EXPECT_EQ(sum(std::vector<uint8_t>(t.rsdp.begin(), t.rsdp.begin() + 20)), 0);
  EXPECT_EQ(sum(t.rsdp), 0);
  EXPECT_EQ(signature(t.xsdt), "XSDT");
  EXPECT_EQ(sum(t.xsdt), 0);
  EXPECT_EQ(signature(t.fadt), "FACP");
  EXPECT_EQ(sum(t.fadt), 0);
  EXPECT_EQ(signature(t.dsdt), "DSDT");
  EXPECT_EQ(sum(t.dsdt), 0);
  EXPECT_EQ(signature(t.madt), "APIC");
  EXPECT_EQ(sum(t.madt), 0);
}

TEST(Acpi, RsdpIsRevisionTwoWithXsdtOnly) {
  auto mem = testing::make_guest_memory();
  const Tables t = walk(mem, write_acpi_tables(mem, {}).value());
  EXPECT_EQ(t.rsdp[15], 2);
  EXPECT_EQ(load_le<uint32_t>(t.rsdp, 16), 0u);
  EXPECT_EQ(load_le<uint32_t>(t.rsdp, 20), 36u);
}

TEST(Acpi, FadtIsHardwareReducedRevisionSixPointingAtDsdt) {
  auto mem = testing::make_guest_memory();
  const Tables t = walk(mem, write_acpi_tables(mem, {}).value());
  EXPECT_EQ(t.fadt.size(), 276u);
  EXPECT_EQ(t.fadt[8], 6);
  EXPECT_NE(load_le<uint32_t>(t.fadt, 112) & (1u << 20), 0u);
  EXPECT_EQ(load_le<uint32_t>(t.fadt, 40), load_le<uint64_t>(t.fadt, 140));
  EXPECT_EQ(t.dsdt.size(), 36u);
}

TEST(Acpi, FadtBootArchFollowsConfig) {
  auto mem = testing::make_guest_memory();
  const Tables none = walk(mem, write_acpi_tables(mem, {}).value());
  EXPECT_EQ(load_le<uint16_t>(none.fadt, 109), (1u << 2) | (1u << 5));
  const Tables both = walk(
      mem, write_acpi_tables(mem, {.vcpu_count = 1, .has_i8042 = true, .has_cmos_rtc = true})
               .value());
  EXPECT_EQ(load_le<uint16_t>(both.fadt, 109), (1u << 1) | (1u << 2));
}

struct MadtEntry {
  uint8_t type;
  std::vector<uint8_t> bytes;
};

std::vector<MadtEntry> madt_entries(const std::vector<uint8_t>& madt) {
  std::vector<MadtEntry> out;
  for (size_t at = 44; at < madt.size();) {
    const uint8_t len = madt[at + 1];
    out.push_back({madt[at], std::vector<uint8_t>(madt.begin() + static_cast<long>(at),
                                                  madt.begin() + static_cast<long>(at + len))});
    at += len;
  }
  return out;
}

TEST(Acpi, MadtHasOneEnabledLocalApicPerVcpuAndTheIoapic) {
  auto mem = testing::make_guest_memory();
  const Tables t = walk(mem, write_acpi_tables(mem, {.vcpu_count = 3}).value());
  EXPECT_EQ(load_le<uint32_t>(t.madt, 36), kLapicGpa);
  const auto entries = madt_entries(t.madt);
  std::vector<uint8_t> apic_ids;
  int ioapics = 0;
  int overrides = 0;
  for (const MadtEntry& e : entries) {
    if (e.type == 0) {
      EXPECT_EQ(e.bytes.size(), 8u);
      EXPECT_EQ(load_le<uint32_t>(e.bytes, 4) & 1, 1u);
      apic_ids.push_back(e.bytes[3]);
    } else if (e.type == 1) {
      ++ioapics;
      EXPECT_EQ(e.bytes[2], 3);
      EXPECT_EQ(load_le<uint32_t>(e.bytes, 4), kIoapicGpa);
      EXPECT_EQ(load_le<uint32_t>(e.bytes, 8), 0u);
    } else if (e.type == 2) {
      ++overrides;
      EXPECT_EQ(e.bytes[3], 0);                       // IRQ 0
      EXPECT_EQ(load_le<uint32_t>(e.bytes, 4), 2u);   // GSI 2
    }
  }
  EXPECT_EQ(apic_ids, (std::vector<uint8_t>{0, 1, 2}));
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(overrides, 1);
}

TEST(Acpi, MaximumVcpusFitAndChecksum) {
  auto mem = testing::make_guest_memory();
  const Tables t = walk(mem, write_acpi_tables(mem, {.vcpu_count = kMaxVcpus}).value());
  EXPECT_EQ(sum(t.madt), 0);
  EXPECT_EQ(sum(t.xsdt), 0);
}

TEST(Acpi, ZeroOrTooManyVcpusAreInvalidInput) {
  auto mem = testing::make_guest_memory();
  EXPECT_EQ(write_acpi_tables(mem, {.vcpu_count = 0}).error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(write_acpi_tables(mem, {.vcpu_count = kMaxVcpus + 1}).error().kind,
            ErrorKind::kInvalidInput);
}

TEST(MpTable, FloatingPointerAndConfigTableChecksumToZero) {
  auto mem = testing::make_guest_memory();
  const GuestAddress fp = write_mptable(mem, 2).value();
  const auto pointer = read_bytes(mem, fp.raw(), 16);
  EXPECT_EQ(std::string(pointer.begin(), pointer.begin() + 4), "_MP_");
  EXPECT_EQ(sum(pointer), 0);
  const uint32_t config_gpa = load_le<uint32_t>(pointer, 4);
  const auto header = read_bytes(mem, config_gpa, 44);
  EXPECT_EQ(std::string(header.begin(), header.begin() + 4), "PCMP");
  const auto config = read_bytes(mem, config_gpa, load_le<uint16_t>(header, 4));
  EXPECT_EQ(sum(config), 0);
  // 2 processors, bus, IOAPIC, 15 I/O interrupts, 2 local interrupts.
  EXPECT_EQ(load_le<uint16_t>(header, 34), 2 + 1 + 1 + 15 + 2);
  EXPECT_EQ(config[44], 0);                 // processor entry
  EXPECT_EQ(config[44 + 3], 0x3);           // CPU 0: enabled, bootstrap
  EXPECT_EQ(config[44 + 20 + 3], 0x1);      // CPU 1: enabled
}

TEST(MpTable, ZeroVcpusIsInvalidInput) {
  auto mem = testing::make_guest_memory();
  EXPECT_EQ(write_mptable(mem, 0).error().kind, ErrorKind::kInvalidInput);
  EXPECT_TRUE(write_mptable(mem, kMaxVcpus));
}

}  // namespace
}  // namespace kumo::arch::x86_64
