#pragma once
// Little-endian loads and stores on byte buffers, for parsing and building firmware tables.
//
// The load_* functions take an offset that the caller has already checked against the span
// size (they KUMO_CHECK it: a failure is a bug in the caller's bounds check, not bad input).

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/check.h"

namespace kumo::arch::x86_64 {

template <typename T>
[[nodiscard]] inline T load_le(std::span<const uint8_t> bytes, size_t offset) {
  KUMO_CHECK(offset <= bytes.size() && bytes.size() - offset >= sizeof(T));
  T value = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    value = static_cast<T>(value | static_cast<T>(static_cast<T>(bytes[offset + i]) << (8 * i)));
  }
  return value;
}

template <typename T>
inline void store_le(std::span<uint8_t> bytes, size_t offset, T value) {
  KUMO_CHECK(offset <= bytes.size() && bytes.size() - offset >= sizeof(T));
  for (size_t i = 0; i < sizeof(T); ++i) {
    bytes[offset + i] = static_cast<uint8_t>(value >> (8 * i));
  }
}

}  // namespace kumo::arch::x86_64
