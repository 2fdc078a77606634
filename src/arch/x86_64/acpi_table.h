#pragma once
// AcpiTable: builds one ACPI system description table as bytes — the 36-byte header of
// ACPI 6.4 §5.2.6 "System Description Table Header", a body appended field by field, then
// length and checksum fixed up by finish(). Also the checksum helper used for the RSDP.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace kumo::arch::x86_64 {

inline constexpr size_t kAcpiHeaderBytes = 36;
inline constexpr std::string_view kAcpiOemId = "KUMO  ";        // 6 bytes
inline constexpr std::string_view kAcpiOemTableId = "KUMOVMM ";  // 8 bytes
inline constexpr std::string_view kAcpiCreatorId = "KUMO";       // 4 bytes

// The byte that makes `bytes` sum to zero mod 256 when stored in place of a zero.
[[nodiscard]] uint8_t acpi_checksum(std::span<const uint8_t> bytes);

class AcpiTable final {
 public:
  // `signature` must be 4 characters (KUMO_CHECKed: always a kumo constant).
  AcpiTable(std::string_view signature, uint8_t revision);

  void u8(uint8_t v);
  void u16(uint16_t v);
  void u32(uint32_t v);
  void u64(uint64_t v);
  void bytes(std::string_view s);
  void zeros(size_t n);
  [[nodiscard]] size_t size() const { return bytes_.size(); }

  // Sets the header's length and checksum and returns the finished table.
  [[nodiscard]] std::vector<uint8_t> finish() &&;

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace kumo::arch::x86_64
