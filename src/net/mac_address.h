#pragma once
// MacAddress: parse/format "52:54:00:12:34:56", and generate locally administered ones.

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace kumo::net {

struct MacAddress {
  std::array<uint8_t, 6> bytes{};
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

// Six two-digit hex groups separated by ':'; rejects multicast addresses (bit 0 of the first
// octet) and all-zero. Errors are kInvalidInput.
[[nodiscard]] Result<MacAddress> parse_mac(std::string_view text);
// 52:54:00:xx:xx:xx with random low bytes (locally administered, unicast).
[[nodiscard]] MacAddress random_mac();

}  // namespace kumo::net
