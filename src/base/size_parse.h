#pragma once
// Parses user-given sizes such as "128M", "2G", "4096", "1.5G" is rejected (integers only).

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace kumo {

// Suffixes K, M, G, T (powers of 1024, optional trailing "iB" or "B"); no suffix means bytes.
// Rejects empty input, signs, fractions, unknown suffixes and values that overflow 64 bits.
[[nodiscard]] Result<uint64_t> parse_size_bytes(std::string_view text);

}  // namespace kumo
