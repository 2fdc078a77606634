#pragma once
// GuestAddress: a guest-physical address. A distinct type so host and guest addresses never mix.

#include <compare>
#include <cstdint>
#include <optional>

namespace kumo::memory {

class GuestAddress final {
 public:
  constexpr GuestAddress() = default;
  constexpr explicit GuestAddress(uint64_t gpa) : gpa_(gpa) {}
  [[nodiscard]] constexpr uint64_t raw() const { return gpa_; }
  // nullopt on 64-bit overflow (guest-derived offsets must not wrap).
  [[nodiscard]] constexpr std::optional<GuestAddress> checked_add(uint64_t offset) const {
    uint64_t out = 0;
    if (__builtin_add_overflow(gpa_, offset, &out)) {
      return std::nullopt;
    }
    return GuestAddress(out);
  }
  // Only for kumo-chosen constants that cannot overflow.
  [[nodiscard]] constexpr GuestAddress unchecked_add(uint64_t offset) const {
    return GuestAddress(gpa_ + offset);
  }
  constexpr auto operator<=>(const GuestAddress&) const = default;

 private:
  uint64_t gpa_ = 0;
};

}  // namespace kumo::memory
