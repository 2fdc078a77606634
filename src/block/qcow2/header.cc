#include "block/qcow2/header.h"

#include <algorithm>

#include "block/qcow2/format.h"

namespace kumo::block::qcow2 {
namespace {

constexpr size_t kFeatureEntryBytes = 48;

Status check_table(const char* what, uint64_t offset, uint64_t bytes, uint64_t cluster_size,
                   uint64_t file_size) {
  if (offset % cluster_size != 0) {
    return invalid_input("{} offset {:#x} is not cluster aligned", what, offset);
  }
  if (offset > file_size || bytes > file_size - offset) {
    return invalid_input("{} ({} bytes at offset {:#x}) lies outside the {}-byte file", what,
                         bytes, offset, file_size);
  }
  return {};
}

std::vector<FeatureName> default_feature_names() {
  return {
      {0, 0, "dirty bit"},          {0, 1, "corrupt bit"},
      {0, 2, "external data file"}, {0, 3, "compression type"},
      {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
      {2, 0, "bitmaps"},            {2, 1, "raw external data"},
  };
}

}  // namespace

uint64_t Header::l1_entries_needed(uint64_t size) const {
  return div_round_up(size, l2_coverage_bytes());
}

uint64_t header_read_size(std::span<const uint8_t> first) {
  if (first.size() < 24 || load_be32(first.data()) != kMagic) {
    return 0;
  }
  const uint32_t bits = load_be32(first.data() + 20);
  if (bits < kMinClusterBits || bits > kMaxClusterBits) {
    return 4096;  // enough for the parser to report the bad cluster size
  }
  return uint64_t{1} << bits;
}

Result<Header> parse_header(std::span<const uint8_t> b, uint64_t file_size) {
  if (b.size() < kV2HeaderLength) {
    return invalid_input("file too short for a qcow2 header ({} bytes)", b.size());
  }
  const uint8_t* p = b.data();
  if (load_be32(p) != kMagic) {
    return invalid_input("not a qcow2 image (bad magic)");
  }
  Header h;
  h.version = load_be32(p + 4);
  if (h.version != 2 && h.version != 3) {
    return invalid_input("unsupported qcow2 version {}", h.version);
  }
  const uint64_t backing_offset = load_be64(p + 8);
  const uint32_t backing_size = load_be32(p + 16);
  h.cluster_bits = load_be32(p + 20);
  h.size_bytes = load_be64(p + 24);
  h.crypt_method = load_be32(p + 32);
  h.l1_size = load_be32(p + 36);
  h.l1_table_offset = load_be64(p + 40);
  h.refcount_table_offset = load_be64(p + 48);
  h.refcount_table_clusters = load_be32(p + 56);
  h.nb_snapshots = load_be32(p + 60);
  h.snapshots_offset = load_be64(p + 64);

  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return invalid_input("unsupported cluster size 2^{} (must be 512 B to 2 MiB)",
                         h.cluster_bits);
  }
  const uint64_t cs = h.cluster_size();
  if (h.version == 2) {
    h.header_length = kV2HeaderLength;
    h.refcount_order = 4;
  } else {
    if (b.size() < kV3MinHeaderLength) {
      return invalid_input("file too short for a version 3 header");
    }
    h.incompatible_features = load_be64(p + 72);
    h.compatible_features = load_be64(p + 80);
    h.autoclear_features = load_be64(p + 88);
    h.refcount_order = load_be32(p + 96);
    h.header_length = load_be32(p + 100);
    if (h.header_length < kV3MinHeaderLength || h.header_length % 8 != 0) {
      return invalid_input("invalid header length {} (must be >= 104 and a multiple of 8)",
                           h.header_length);
    }
    if (h.header_length > cs || h.header_length > b.size()) {
      return invalid_input("header length {} exceeds the first cluster", h.header_length);
    }
    if (h.header_length > kV3MinHeaderLength) {
      h.compression_type = p[104];
    }
    if (h.header_length > kV3HeaderLength) {
      h.unknown_header_tail.assign(p + kV3HeaderLength, p + h.header_length);
    }
  }
  if (h.refcount_order > 6) {
    return invalid_input("invalid refcount order {} (at most 6: 64-bit refcounts)",
                         h.refcount_order);
  }
  if (h.crypt_method != 0) {
    return invalid_input("encrypted images are not supported (crypt_method {})",
                         h.crypt_method);
  }
  if (b.size() < std::min(cs, file_size)) {
    return invalid_input("first cluster truncated ({} of {} bytes)", b.size(), cs);
  }
  if (h.size_bytes > kMaxVirtualSize) {
    return invalid_input("virtual size {} is too large", h.size_bytes);
  }

  // Header extensions, from the end of the header to the end-of-extensions marker, the
  // backing file name or the end of the first cluster, whichever comes first.
  const uint64_t area_end = std::min<uint64_t>(cs, b.size());
  uint64_t ext_area_end = area_end;
  if (backing_offset != 0 && backing_offset < ext_area_end) {
    ext_area_end = backing_offset;
  }
  if (backing_offset != 0 && backing_offset < h.header_length) {
    return invalid_input("backing file name at offset {} overlaps the header", backing_offset);
  }
  uint64_t pos = h.header_length;
  bool seen_backing_format = false;
  bool seen_feature_table = false;
  while (pos < ext_area_end) {
    if (pos + 8 > ext_area_end) {
      return invalid_input("truncated header extension at offset {}", pos);
    }
    const uint32_t type = load_be32(p + pos);
    const uint32_t len = load_be32(p + pos + 4);
    pos += 8;
    if (type == kExtEnd) {
      break;
    }
    if (len > ext_area_end - pos) {
      return invalid_input("header extension {:#x} ({} bytes) runs past the first cluster",
                           type, len);
    }
    const uint8_t* d = p + pos;
    switch (type) {
      case kExtBackingFormat:
        if (seen_backing_format) {
          return invalid_input("duplicate backing format extension");
        }
        seen_backing_format = true;
        if (len > kMaxBackingNameBytes) {
          return invalid_input("backing format name too long ({} bytes)", len);
        }
        h.backing_format.assign(reinterpret_cast<const char*>(d), len);
        h.backing_format.erase(std::find(h.backing_format.begin(), h.backing_format.end(), '\0'),
                               h.backing_format.end());
        break;
      case kExtFeatureTable:
        if (seen_feature_table) {
          return invalid_input("duplicate feature name table");
        }
        seen_feature_table = true;
        for (uint32_t i = 0; i + kFeatureEntryBytes <= len; i += kFeatureEntryBytes) {
          FeatureName f;
          f.type = d[i];
          f.bit = d[i + 1];
          const char* name = reinterpret_cast<const char*>(d + i + 2);
          f.name.assign(name, strnlen(name, 46));
          h.feature_names.push_back(std::move(f));
        }
        break;
      case kExtCrypto:
      case kExtDataFile:
        return invalid_input("unsupported header extension {:#x} (encryption or data file)",
                             type);
      case kExtBitmaps:
        h.has_bitmaps_extension = true;
        [[fallthrough]];
      default:
        h.unknown_extensions.push_back(HeaderExtension{type, std::vector<uint8_t>(d, d + len)});
        break;
    }
    pos += align_up(len, 8);
  }

  // Feature bits: refuse what we cannot honour.
  const uint64_t unknown_incompat = h.incompatible_features & ~kIncompatKnown;
  if (unknown_incompat != 0) {
    return invalid_input("unsupported incompatible features: {}",
                         describe_unknown_features(h, 0, unknown_incompat));
  }
  if ((h.incompatible_features & kIncompatDataFile) != 0) {
    return invalid_input("external data files are not supported");
  }
  if ((h.incompatible_features & kIncompatCompression) != 0) {
    if (h.compression_type != kCompressionZstd) {
      return invalid_input("unknown compression type {}", h.compression_type);
    }
  } else if (h.compression_type != kCompressionDeflate) {
    return invalid_input("compression type {} set without the compression-type feature bit",
                         h.compression_type);
  }
  if (h.extended_l2() && h.cluster_bits < 14) {
    return invalid_input("extended L2 entries need clusters of at least 16 KiB");
  }

  // Backing file name: inside the first cluster, after the extensions.
  if (backing_offset != 0) {
    if (backing_size > kMaxBackingNameBytes) {
      return invalid_input("backing file name too long ({} bytes, at most {})", backing_size,
                           kMaxBackingNameBytes);
    }
    if (backing_offset > area_end || backing_size > area_end - backing_offset) {
      return invalid_input("backing file name ({} bytes at offset {}) outside the first cluster",
                           backing_size, backing_offset);
    }
    h.backing_file.assign(reinterpret_cast<const char*>(p + backing_offset), backing_size);
    if (h.backing_file.find('\0') != std::string::npos) {
      return invalid_input("backing file name contains a NUL byte");
    }
  }

  // Tables: aligned, sized sanely, inside the file.
  if (h.refcount_table_clusters == 0) {
    return invalid_input("refcount table has no clusters");
  }
  if (uint64_t{h.refcount_table_clusters} * cs > kMaxRefcountTableBytes) {
    return invalid_input("refcount table too large ({} clusters)", h.refcount_table_clusters);
  }
  KUMO_TRY(check_table("refcount table", h.refcount_table_offset,
                       uint64_t{h.refcount_table_clusters} * cs, cs, file_size));
  if (h.refcount_table_offset == 0) {
    return invalid_input("refcount table at offset 0 overlaps the header");
  }
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes) {
    return invalid_input("L1 table too large ({} entries)", h.l1_size);
  }
  if (h.l1_size < h.l1_entries_needed(h.size_bytes)) {
    return invalid_input("L1 table too small ({} entries) for the {}-byte virtual size",
                         h.l1_size, h.size_bytes);
  }
  if (h.l1_size > 0) {
    KUMO_TRY(check_table("L1 table", h.l1_table_offset, uint64_t{h.l1_size} * 8, cs, file_size));
    if (h.l1_table_offset == 0) {
      return invalid_input("L1 table at offset 0 overlaps the header");
    }
  }
  if (h.nb_snapshots > kMaxSnapshots) {
    return invalid_input("too many snapshots ({}, at most {})", h.nb_snapshots, kMaxSnapshots);
  }
  if (h.nb_snapshots > 0) {
    // Each entry is at least 40 bytes.
    KUMO_TRY(check_table("snapshot table", h.snapshots_offset, uint64_t{h.nb_snapshots} * 40, cs,
                         file_size));
  }
  return h;
}

static Result<std::vector<uint8_t>> serialize_header_impl(const Header& h, bool feature_table) {
  const uint64_t cs = h.cluster_size();
  std::vector<uint8_t> out(cs, 0);
  uint8_t* p = out.data();
  uint32_t header_length = h.header_length;
  if (h.version == 2) {
    header_length = kV2HeaderLength;
  } else if (header_length == 0) {
    header_length = static_cast<uint32_t>(kV3HeaderLength + h.unknown_header_tail.size());
  }
  store_be32(p, kMagic);
  store_be32(p + 4, h.version);
  store_be32(p + 20, h.cluster_bits);
  store_be64(p + 24, h.size_bytes);
  store_be32(p + 32, h.crypt_method);
  store_be32(p + 36, h.l1_size);
  store_be64(p + 40, h.l1_table_offset);
  store_be64(p + 48, h.refcount_table_offset);
  store_be32(p + 56, h.refcount_table_clusters);
  store_be32(p + 60, h.nb_snapshots);
  store_be64(p + 64, h.snapshots_offset);
  if (h.version >= 3) {
    store_be64(p + 72, h.incompatible_features);
    store_be64(p + 80, h.compatible_features);
    store_be64(p + 88, h.autoclear_features);
    store_be32(p + 96, h.refcount_order);
    store_be32(p + 100, header_length);
    if (header_length > kV3MinHeaderLength) {
      p[104] = h.compression_type;
    }
    std::copy(h.unknown_header_tail.begin(), h.unknown_header_tail.end(), p + kV3HeaderLength);
  }
  uint64_t pos = header_length;
  auto put_ext = [&](uint32_t type, std::span<const uint8_t> data) -> Status {
    const uint64_t need = 8 + align_up(data.size(), 8);
    if (pos + need + 8 > cs) {
      return invalid_input("header extensions do not fit in the first cluster");
    }
    store_be32(p + pos, type);
    store_be32(p + pos + 4, static_cast<uint32_t>(data.size()));
    std::copy(data.begin(), data.end(), p + pos + 8);
    pos += need;
    return {};
  };
  if (!h.backing_format.empty()) {
    KUMO_TRY(put_ext(kExtBackingFormat,
                     std::span(reinterpret_cast<const uint8_t*>(h.backing_format.data()),
                               h.backing_format.size())));
  }
  if (h.version >= 3 && feature_table) {
    const std::vector<FeatureName> names =
        h.feature_names.empty() ? default_feature_names() : h.feature_names;
    std::vector<uint8_t> table(names.size() * kFeatureEntryBytes, 0);
    for (size_t i = 0; i < names.size(); ++i) {
      table[i * kFeatureEntryBytes] = names[i].type;
      table[i * kFeatureEntryBytes + 1] = names[i].bit;
      std::copy_n(names[i].name.begin(), std::min<size_t>(names[i].name.size(), 46),
                  table.begin() + static_cast<ptrdiff_t>(i * kFeatureEntryBytes + 2));
    }
    KUMO_TRY(put_ext(kExtFeatureTable, table));
  }
  for (const HeaderExtension& e : h.unknown_extensions) {
    KUMO_TRY(put_ext(e.type, e.data));
  }
  if (h.version >= 3 || !h.backing_file.empty() || !h.unknown_extensions.empty() ||
      !h.backing_format.empty()) {
    pos += 8;  // end-of-extensions marker (zeros)
  }
  if (!h.backing_file.empty()) {
    if (h.backing_file.size() > kMaxBackingNameBytes) {
      return invalid_input("backing file name too long ({} bytes)", h.backing_file.size());
    }
    if (pos + h.backing_file.size() > cs) {
      return invalid_input("backing file name does not fit in the first cluster");
    }
    store_be64(p + 8, pos);
    store_be32(p + 16, static_cast<uint32_t>(h.backing_file.size()));
    std::copy(h.backing_file.begin(), h.backing_file.end(), p + pos);
  }
  return out;
}

Result<std::vector<uint8_t>> serialize_header(const Header& h) {
  auto with_table = serialize_header_impl(h, true);
  if (with_table) {
    return with_table;
  }
  // Small clusters: the feature name table is optional, drop it to make room.
  return serialize_header_impl(h, false);
}

std::string describe_unknown_features(const Header& h, uint8_t type, uint64_t bits) {
  std::string out;
  for (uint8_t bit = 0; bit < 64; ++bit) {
    if ((bits & (uint64_t{1} << bit)) == 0) {
      continue;
    }
    std::string name = fmt::format("bit {}", bit);
    for (const FeatureName& f : h.feature_names) {
      if (f.type == type && f.bit == bit && !f.name.empty()) {
        name = fmt::format("'{}' (bit {})", f.name, bit);
      }
    }
    out += out.empty() ? name : ", " + name;
  }
  return out;
}

}  // namespace kumo::block::qcow2
