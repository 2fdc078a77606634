#include "arch/x86_64/mptable.h"

#include <vector>

#include "arch/x86_64/acpi.h"
#include "arch/x86_64/acpi_table.h"
#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/layout.h"
#include "base/check.h"

namespace kumo::arch::x86_64 {
namespace {

constexpr size_t kFloatingPointerBytes = 16;
constexpr size_t kConfigHeaderBytes = 44;
constexpr uint8_t kSpecRevision = 4;  // MP spec 1.4
constexpr uint8_t kLocalApicVersion = 0x14;
constexpr uint8_t kIoApicVersion = 0x11;

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoApic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kCpuEnabled = 1u << 0;
constexpr uint8_t kCpuBootstrap = 1u << 1;
constexpr uint32_t kCpuSignatureFamily6 = 0x600;
constexpr uint32_t kCpuFeatureFpuApic = (1u << 0) | (1u << 9);
constexpr uint8_t kIntTypeInt = 0;
constexpr uint8_t kIntTypeNmi = 1;
constexpr uint8_t kIntTypeExtInt = 3;
constexpr uint8_t kAllLocalApics = 0xff;
constexpr uint8_t kIsaIrqs = 16;

class Bytes final {
 public:
  void u8(uint8_t v) { b_.push_back(v); }
  void u16(uint16_t v) { u8(static_cast<uint8_t>(v)), u8(static_cast<uint8_t>(v >> 8)); }
  void u32(uint32_t v) { u16(static_cast<uint16_t>(v)), u16(static_cast<uint16_t>(v >> 16)); }
  void text(std::string_view s) { b_.insert(b_.end(), s.begin(), s.end()); }
  void zeros(size_t n) { b_.insert(b_.end(), n, 0); }
  std::vector<uint8_t>& get() { return b_; }

 private:
  std::vector<uint8_t> b_;
};

void local_interrupt(Bytes& b, uint8_t type, uint8_t lint) {
  b.u8(kEntryLocalInterrupt);
  b.u8(type);
  b.u16(0);  // polarity and trigger conform to the bus
  b.u8(0);   // source bus
  b.u8(0);   // source bus IRQ
  b.u8(kAllLocalApics);
  b.u8(lint);
}

}  // namespace

Result<memory::GuestAddress> write_mptable(memory::GuestMemory& mem, uint32_t vcpu_count) {
  if (vcpu_count == 0 || vcpu_count > kMaxVcpus) {
    return invalid_input("vCPU count {} is outside 1..{}", vcpu_count, kMaxVcpus);
  }
  const uint64_t config_gpa = kMpTableGpa + kFloatingPointerBytes;
  const auto ioapic_id = static_cast<uint8_t>(vcpu_count);

  Bytes entries;
  uint16_t count = 0;
  for (uint32_t cpu = 0; cpu < vcpu_count; ++cpu, ++count) {
    entries.u8(kEntryProcessor);
    entries.u8(static_cast<uint8_t>(cpu));
    entries.u8(kLocalApicVersion);
    entries.u8(static_cast<uint8_t>(kCpuEnabled | (cpu == 0 ? kCpuBootstrap : 0)));
    entries.u32(kCpuSignatureFamily6);
    entries.u32(kCpuFeatureFpuApic);
    entries.zeros(8);
  }
  entries.u8(kEntryBus);
  entries.u8(0);
  entries.text("ISA   ");
  ++count;
  entries.u8(kEntryIoApic);
  entries.u8(ioapic_id);
  entries.u8(kIoApicVersion);
  entries.u8(1);  // enabled
  entries.u32(static_cast<uint32_t>(kIoapicGpa));
  ++count;
  for (uint8_t irq = 0; irq < kIsaIrqs; ++irq) {
    if (irq == 2) {
      continue;  // the cascade; IOAPIC pin 2 carries IRQ 0
    }
    entries.u8(kEntryIoInterrupt);
    entries.u8(kIntTypeInt);
    entries.u16(0);
    entries.u8(0);  // ISA bus
    entries.u8(irq);
    entries.u8(ioapic_id);
    entries.u8(irq == 0 ? uint8_t{2} : irq);
    ++count;
  }
  local_interrupt(entries, kIntTypeExtInt, 0);
  local_interrupt(entries, kIntTypeNmi, 1);
  count = static_cast<uint16_t>(count + 2);

  Bytes config;
  config.text("PCMP");
  config.u16(static_cast<uint16_t>(kConfigHeaderBytes + entries.get().size()));
  config.u8(kSpecRevision);
  config.u8(0);  // checksum
  config.text("KUMO    ");
  config.text("KUMOVMM     ");
  config.u32(0);  // OEM table
  config.u16(0);
  config.u16(count);
  config.u32(static_cast<uint32_t>(kLapicGpa));
  config.u16(0);  // extended table
  config.u8(0);
  config.u8(0);
  KUMO_CHECK(config.get().size() == kConfigHeaderBytes);
  config.get().insert(config.get().end(), entries.get().begin(), entries.get().end());
  config.get()[7] = acpi_checksum(config.get());
  KUMO_CHECK(kFloatingPointerBytes + config.get().size() <= kMpTableMaxBytes);

  Bytes pointer;
  pointer.text("_MP_");
  pointer.u32(static_cast<uint32_t>(config_gpa));
  pointer.u8(1);  // length in 16-byte units
  pointer.u8(kSpecRevision);
  pointer.u8(0);  // checksum
  pointer.zeros(5);  // feature bytes: a configuration table is present
  pointer.get()[10] = acpi_checksum(pointer.get());

  KUMO_TRY(mem.write(memory::GuestAddress(config_gpa), config.get()));
  KUMO_TRY(mem.write(memory::GuestAddress(kMpTableGpa), pointer.get()));
  return memory::GuestAddress(kMpTableGpa);
}

}  // namespace kumo::arch::x86_64
