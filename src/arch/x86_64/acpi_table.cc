#include "arch/x86_64/acpi_table.h"

#include "arch/x86_64/byte_order.h"
#include "base/check.h"

namespace kumo::arch::x86_64 {
namespace {
constexpr size_t kLengthOffset = 4;
constexpr size_t kChecksumOffset = 9;
constexpr uint32_t kOemRevision = 1;
constexpr uint32_t kCreatorRevision = 1;
}  // namespace

uint8_t acpi_checksum(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) {
    sum = static_cast<uint8_t>(sum + b);
  }
  return static_cast<uint8_t>(0x100 - sum);
}

AcpiTable::AcpiTable(std::string_view signature, uint8_t revision) {
  KUMO_CHECK(signature.size() == 4);
  bytes(signature);
  u32(0);  // length, set by finish()
  u8(revision);
  u8(0);  // checksum, set by finish()
  bytes(kAcpiOemId);
  bytes(kAcpiOemTableId);
  u32(kOemRevision);
  bytes(kAcpiCreatorId);
  u32(kCreatorRevision);
  KUMO_CHECK(bytes_.size() == kAcpiHeaderBytes);
}

void AcpiTable::u8(uint8_t v) { bytes_.push_back(v); }

void AcpiTable::u16(uint16_t v) {
  for (int i = 0; i < 2; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void AcpiTable::u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void AcpiTable::u64(uint64_t v) {
  for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

void AcpiTable::bytes(std::string_view s) { bytes_.insert(bytes_.end(), s.begin(), s.end()); }

void AcpiTable::zeros(size_t n) { bytes_.insert(bytes_.end(), n, 0); }

std::vector<uint8_t> AcpiTable::finish() && {
  KUMO_CHECK(bytes_.size() <= UINT32_MAX);
  store_le<uint32_t>(bytes_, kLengthOffset, static_cast<uint32_t>(bytes_.size()));
  bytes_[kChecksumOffset] = 0;
  bytes_[kChecksumOffset] = acpi_checksum(bytes_);
  return std::move(bytes_);
}

}  // namespace kumo::arch::x86_64
