#pragma once
// Splits "key=value,key=value" option strings (--disk, --net) into pairs. Pure; errors are
// kInvalidInput naming the option and the offending key, ready for the CLI's exit status 2.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace kumo {

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// Rejects empty items, items without '=', empty keys or values and repeated keys.
// `option` ("--disk") prefixes every message.
[[nodiscard]] Result<KeyValues> split_key_values(std::string_view text, std::string_view option);
// "on"/"off" (also true/false, yes/no, 1/0); the error names `option` and `key`.
[[nodiscard]] Result<bool> parse_on_off(std::string_view value, std::string_view option,
                                        std::string_view key);
// A device worker's busy-polling window, "poll-us=N" in microseconds (0 = off, at most
// kMaxPollMicros); returns nanoseconds.
inline constexpr uint64_t kMaxPollMicros = 10'000;
inline constexpr uint64_t kDefaultPollMicros = 50;
[[nodiscard]] Result<uint64_t> parse_poll_window(std::string_view value, std::string_view option,
                                                 std::string_view key);
// A non-negative decimal integer without suffix.
[[nodiscard]] Result<uint64_t> parse_count(std::string_view value, std::string_view option,
                                           std::string_view key);

}  // namespace kumo
