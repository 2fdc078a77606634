#pragma once
// Compressed cluster codecs (qcow2.rst "Compressed Clusters Descriptor"): raw deflate with a
// 4 KiB window (zlib windowBits -12, as QEMU writes it) or zstd (compression_type 1).

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"

namespace kumo::block::qcow2 {

// Decompresses `in` (which may carry trailing bytes from the last 512-byte sector) into
// exactly out.size() bytes; fails if the stream is corrupt or too short.
[[nodiscard]] Status decompress_cluster(uint8_t compression_type, std::span<const uint8_t> in,
                                        std::span<uint8_t> out);
// Compressed bytes, or nullopt when compression does not save at least one sector.
[[nodiscard]] std::optional<std::vector<uint8_t>> compress_cluster(
    uint8_t compression_type, std::span<const uint8_t> in);

}  // namespace kumo::block::qcow2
