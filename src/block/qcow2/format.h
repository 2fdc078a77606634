#pragma once
// qcow2 on-disk constants and big-endian field access (QEMU docs/interop/qcow2.rst; the
// section names below are that document's).

#include <cstdint>
#include <cstring>

namespace kumo::block::qcow2 {

inline constexpr uint32_t kMagic = 0x514649fbu;  // "QFI\xfb"
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3MinHeaderLength = 104;
inline constexpr uint32_t kV3HeaderLength = 112;  // with compression_type + padding
inline constexpr uint32_t kMinClusterBits = 9;
inline constexpr uint32_t kMaxClusterBits = 21;   // 2 MiB, QEMU's limit
inline constexpr uint32_t kMaxBackingNameBytes = 1023;
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;           // QEMU_MAX_L1_SIZE
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;  // QEMU_MAX_REFTABLE_SIZE
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMaxSnapshotTableBytes = 64ull << 20;
inline constexpr uint64_t kMaxVirtualSize = 1ull << 61;

// "Header": incompatible feature bits.
inline constexpr uint64_t kIncompatDirty = 1u << 0;
inline constexpr uint64_t kIncompatCorrupt = 1u << 1;
inline constexpr uint64_t kIncompatDataFile = 1u << 2;
inline constexpr uint64_t kIncompatCompression = 1u << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1u << 4;
inline constexpr uint64_t kIncompatKnown = 0x1f;
// Compatible feature bits.
inline constexpr uint64_t kCompatLazyRefcounts = 1u << 0;
// Autoclear feature bits.
inline constexpr uint64_t kAutoclearBitmaps = 1u << 0;
inline constexpr uint64_t kAutoclearRawData = 1u << 1;

inline constexpr uint8_t kCompressionDeflate = 0;
inline constexpr uint8_t kCompressionZstd = 1;

// "Header extensions".
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureTable = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtCrypto = 0x0537be77;
inline constexpr uint32_t kExtDataFile = 0x44415441;

// "Cluster mapping".
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kOflagCopied = 1ull << 63;
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull << 0;
inline constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
inline constexpr uint64_t kL2StandardReservedMask = 0x3f000000000001feull;
// "Refcount table".
inline constexpr uint64_t kReftOffsetMask = 0xfffffffffffffe00ull;
// "Extended L2 Entries": the subcluster allocation bitmap.
inline constexpr uint32_t kSubclustersPerCluster = 32;
inline constexpr uint32_t kAllSubclusters = 0xffffffffu;
inline constexpr uint64_t kBitmapAllocMask = 0x00000000ffffffffull;
inline constexpr uint64_t kBitmapZeroShift = 32;
// Bits [first, end) of a subcluster mask.
inline constexpr uint32_t subcluster_mask(uint32_t first, uint32_t end) {
  const uint64_t below_end = (uint64_t{1} << end) - 1;
  const uint64_t below_first = (uint64_t{1} << first) - 1;
  return static_cast<uint32_t>(below_end & ~below_first);
}

inline uint16_t load_be16(const uint8_t* p) {
  return static_cast<uint16_t>((p[0] << 8) | p[1]);
}
inline uint32_t load_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
inline uint64_t load_be64(const uint8_t* p) {
  return (uint64_t{load_be32(p)} << 32) | load_be32(p + 4);
}
inline void store_be16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void store_be32(uint8_t* p, uint32_t v) {
  for (int i = 3; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}
inline void store_be64(uint8_t* p, uint64_t v) {
  store_be32(p, static_cast<uint32_t>(v >> 32));
  store_be32(p + 4, static_cast<uint32_t>(v));
}

inline uint64_t div_round_up(uint64_t a, uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }
inline uint64_t align_up(uint64_t a, uint64_t b) { return div_round_up(a, b) * b; }

}  // namespace kumo::block::qcow2
