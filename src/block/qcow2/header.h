#pragma once
// qcow2 image header: a pure parser and serializer (qcow2.rst "Header", "Header extensions").
//
// parse_header() validates everything that can be validated without reading tables: field
// ranges, alignment, that every table lies inside the file, feature bits, the extension area.
// Its input is untrusted file data; it never crashes and names the problem in the error.
// Unknown header extensions and unknown trailing header bytes are kept so that rewriting the
// header preserves them ("unknown additional fields must be preserved").

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace kumo::block::qcow2 {

struct HeaderExtension {
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

struct Header {
  uint32_t version = 3;
  uint32_t cluster_bits = 16;
  uint64_t size_bytes = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 0;  // 0: serializer picks the default for the version
  uint8_t compression_type = 0;
  std::vector<uint8_t> unknown_header_tail;  // bytes [112, header_length) we do not know

  std::string backing_file;    // empty: none
  std::string backing_format;  // empty: probe
  std::vector<FeatureName> feature_names;
  std::vector<HeaderExtension> unknown_extensions;
  bool has_bitmaps_extension = false;

  [[nodiscard]] uint64_t cluster_size() const { return uint64_t{1} << cluster_bits; }
  [[nodiscard]] uint32_t refcount_bits() const { return 1u << refcount_order; }
  [[nodiscard]] bool extended_l2() const { return (incompatible_features & 0x10) != 0; }
  [[nodiscard]] uint64_t l2_entry_bytes() const { return extended_l2() ? 16 : 8; }
  [[nodiscard]] uint64_t l2_entries() const { return cluster_size() / l2_entry_bytes(); }
  // Guest bytes one L2 table maps.
  [[nodiscard]] uint64_t l2_coverage_bytes() const { return l2_entries() * cluster_size(); }
  // L1 entries needed to map size_bytes.
  [[nodiscard]] uint64_t l1_entries_needed(uint64_t size) const;
};

// Bytes the caller must read (from offset 0, clipped to the file size) before calling
// parse_header(); derived from the first 24 bytes (0 if those are not a qcow2 header).
[[nodiscard]] uint64_t header_read_size(std::span<const uint8_t> first_bytes);

// Parses and validates. `bytes` is the start of the file (header_read_size() bytes, or the
// whole file if shorter); `file_size` bounds every table offset.
[[nodiscard]] Result<Header> parse_header(std::span<const uint8_t> bytes, uint64_t file_size);

// Serializes the header, its extensions and the backing file name into one cluster-sized
// buffer. Fails (kInvalidInput) if they do not fit in the first cluster.
[[nodiscard]] Result<std::vector<uint8_t>> serialize_header(const Header& header);

// Names of set bits in `bits` that are not in `known_mask`, using the feature name table
// where it has a name for them (for the "unsupported feature" error).
[[nodiscard]] std::string describe_unknown_features(const Header& header, uint8_t type,
                                                    uint64_t bits);

}  // namespace kumo::block::qcow2
