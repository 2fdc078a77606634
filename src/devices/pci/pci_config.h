#pragma once
// PciConfigSpace: the 256-byte type-0 configuration header of one PCI function, with
// per-byte writable and write-1-to-clear masks, BARs with the sizing protocol and a
// capability list (PCI Local Bus Specification 3.0 §6.1, §6.2.5, §6.7).
//
// Every offset, width and value passed to write() is guest-controlled: writes only change
// bits the masks allow, out-of-range offsets are ignored and never abort.
//
// Thread-safety: none. The owning PciDevice serializes access (it may be called from
// several vCPU threads).

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace kumo::devices::pci {

inline constexpr size_t kConfigSpaceBytes = 256;
inline constexpr size_t kNumBars = 6;

// Standard register offsets (PCI 3.0 §6.1).
inline constexpr uint8_t kRegVendorId = 0x00;
inline constexpr uint8_t kRegCommand = 0x04;
inline constexpr uint8_t kRegStatus = 0x06;
inline constexpr uint8_t kRegRevision = 0x08;
inline constexpr uint8_t kRegHeaderType = 0x0e;
inline constexpr uint8_t kRegBar0 = 0x10;
inline constexpr uint8_t kRegSubsystemVendorId = 0x2c;
inline constexpr uint8_t kRegCapabilitiesPointer = 0x34;
inline constexpr uint8_t kRegInterruptLine = 0x3c;
inline constexpr uint8_t kRegInterruptPin = 0x3d;

inline constexpr uint16_t kCommandIoSpace = 1U << 0;
inline constexpr uint16_t kCommandMemorySpace = 1U << 1;
inline constexpr uint16_t kCommandBusMaster = 1U << 2;
inline constexpr uint16_t kCommandInterruptDisable = 1U << 10;
inline constexpr uint16_t kStatusInterrupt = 1U << 3;
inline constexpr uint16_t kStatusCapabilitiesList = 1U << 4;

inline constexpr uint8_t kCapIdMsix = 0x11;
inline constexpr uint8_t kCapIdVendor = 0x09;

enum class BarKind : uint8_t { kMmio32, kMmio64, kIo };

// A BAR a device asks for. size_bytes is a power of two: >= 16 for memory, >= 4 for I/O.
// A 64-bit BAR uses index and index+1.
struct BarSpec {
  uint8_t index = 0;
  uint64_t size_bytes = 0;
  BarKind kind = BarKind::kMmio32;
  bool prefetchable = false;
};

// A change of where a BAR decodes: the guest reprogrammed it, or toggled the Command bit that
// enables its address space. Address 0 means "not decoding" (PCI 3.0 §6.2.2: a function
// with Memory Space or I/O Space Enable clear ignores accesses to its memory or I/O BARs).
struct BarMove {
  uint8_t index = 0;
  uint64_t old_address = 0;
  uint64_t new_address = 0;
  uint64_t size_bytes = 0;
  BarKind kind = BarKind::kMmio32;
};

struct PciIdentity {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint8_t revision = 0;
  uint8_t class_code = 0;  // base class
  uint8_t subclass = 0;
  uint8_t prog_if = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  uint8_t interrupt_pin = 0;  // 0 = none, 1 = INTA#
};

class PciConfigSpace final {
 public:
  explicit PciConfigSpace(const PciIdentity& identity);

  // Declares a BAR (kumo-chosen values; fails on a bad size, index or overlap).
  [[nodiscard]] Status add_bar(const BarSpec& spec);
  // Appends a capability: `body` is the capability after its ID and next-pointer bytes;
  // `writable` (same length as body, or empty = read-only) marks guest-writable bits.
  // Returns the capability's offset in config space.
  [[nodiscard]] Result<uint8_t> add_capability(uint8_t cap_id, std::span<const uint8_t> body,
                                               std::span<const uint8_t> writable = {});

  // Reads a naturally sized field; offset+len beyond 256 reads as all-ones.
  [[nodiscard]] uint32_t read(uint64_t offset, size_t len) const;
  void read_bytes(uint64_t offset, std::span<uint8_t> out) const;
  // Applies a guest write through the masks. Returns the BAR moves it caused (see
  // decoding_address()): a non-probe write that changes a decoding BAR's address (for a
  // 64-bit BAR, the write of its high dword, which drivers write last), or a Command write
  // that sets or clears Memory Space / I/O Space Enable.
  [[nodiscard]] std::vector<BarMove> write(uint64_t offset, std::span<const uint8_t> data);

  // PCI reset (RST#, e.g. a platform reset): every guest-writable bit back to its power-on
  // value — Command 0, BAR addresses 0, Interrupt Line 0, capability fields as added.
  // Returns the moves of the BARs that were decoding (to 0).
  [[nodiscard]] std::vector<BarMove> reset();

  // Host-side setters (not masked). set_bar_address is firmware placing a BAR: it reports no
  // move, so call it while the BAR does not decode (Command is 0 at power-on).
  void set_bar_address(uint8_t index, uint64_t address);
  void set_byte(uint8_t offset, uint8_t value) { bytes_[offset] = value; }

  [[nodiscard]] std::optional<BarSpec> bar(uint8_t index) const;
  [[nodiscard]] uint64_t bar_address(uint8_t index) const;
  // Where BAR `index` decodes: its address while Command enables its space (Memory Space
  // for memory BARs, I/O Space for I/O BARs), else 0. A sizing probe does not move it: the
  // BAR keeps decoding at its last address until the driver writes one back.
  [[nodiscard]] uint64_t decoding_address(uint8_t index) const;
  [[nodiscard]] uint16_t command() const;

 private:
  using BarAddresses = std::array<uint64_t, kNumBars>;
  [[nodiscard]] uint32_t dword(size_t offset) const;
  [[nodiscard]] uint64_t decode_bar(uint8_t index) const;
  [[nodiscard]] BarAddresses decoding_addresses() const;
  // The moves from `before` (decoding_addresses() earlier) to now.
  [[nodiscard]] std::vector<BarMove> moves_since(const BarAddresses& before) const;

  std::array<uint8_t, kConfigSpaceBytes> bytes_{};
  std::array<uint8_t, kConfigSpaceBytes> writable_{};
  std::array<uint8_t, kConfigSpaceBytes> write_one_to_clear_{};
  std::array<uint8_t, kConfigSpaceBytes> power_on_{};  // of the writable bits
  std::array<std::optional<BarSpec>, kNumBars> bars_{};
  BarAddresses reported_bar_address_{};  // as last written by a non-probe write
  uint8_t last_capability_ = 0;  // offset of the last capability, 0 if none
  uint8_t next_free_capability_ = 0x40;
};

}  // namespace kumo::devices::pci
