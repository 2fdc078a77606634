#include "block/qcow2/snapshot.h"

#include "block/qcow2/format.h"

namespace kumo::block::qcow2 {

Result<std::vector<Snapshot>> parse_snapshot_table(std::span<const uint8_t> b, uint32_t count,
                                                   uint64_t cluster_size, uint64_t file_size,
                                                   uint64_t* table_bytes_out) {
  std::vector<Snapshot> out;
  uint64_t pos = 0;
  for (uint32_t i = 0; i < count; ++i) {
    if (b.size() < 40 || pos > b.size() - 40) {
      return invalid_input("snapshot table truncated at entry {}", i);
    }
    const uint8_t* p = b.data() + pos;
    Snapshot s;
    s.l1_table_offset = load_be64(p);
    s.l1_size = load_be32(p + 8);
    const uint16_t id_len = load_be16(p + 12);
    const uint16_t name_len = load_be16(p + 14);
    s.date_sec = load_be32(p + 16);
    s.date_nsec = load_be32(p + 20);
    s.vm_clock_nsec = load_be64(p + 24);
    s.vm_state_size = load_be32(p + 32);
    const uint32_t extra = load_be32(p + 36);
    if (extra > 1024) {
      return invalid_input("snapshot {} has {} bytes of extra data (at most 1024)", i, extra);
    }
    const uint64_t entry = 40 + uint64_t{extra} + id_len + name_len;
    if (entry > b.size() - pos) {
      return invalid_input("snapshot table truncated in entry {}", i);
    }
    const uint8_t* e = p + 40;
    if (extra >= 8) {
      s.vm_state_size_large = load_be64(e);
    }
    if (extra >= 16) {
      s.disk_size_bytes = load_be64(e + 8);
      s.has_disk_size = true;
    }
    if (extra >= 24) {
      s.icount = load_be64(e + 16);
      s.has_icount = true;
    }
    if (extra > 24) {
      s.extra_tail.assign(e + 24, e + extra);
    }
    s.id.assign(reinterpret_cast<const char*>(e + extra), id_len);
    s.name.assign(reinterpret_cast<const char*>(e + extra + id_len), name_len);
    if (uint64_t{s.l1_size} * 8 > kMaxL1Bytes) {
      return invalid_input("snapshot '{}' has an L1 table too large ({} entries)", s.name,
                           s.l1_size);
    }
    if (s.l1_table_offset % cluster_size != 0) {
      return invalid_input("snapshot '{}' L1 table offset {:#x} is not cluster aligned", s.name,
                           s.l1_table_offset);
    }
    if (s.l1_table_offset > file_size || uint64_t{s.l1_size} * 8 > file_size - s.l1_table_offset) {
      return invalid_input("snapshot '{}' L1 table at {:#x} lies outside the file", s.name,
                           s.l1_table_offset);
    }
    pos += align_up(entry, 8);
    out.push_back(std::move(s));
  }
  if (table_bytes_out != nullptr) {
    *table_bytes_out = pos;
  }
  return out;
}

std::vector<uint8_t> serialize_snapshot_table(const std::vector<Snapshot>& snaps) {
  std::vector<uint8_t> out;
  for (const Snapshot& s : snaps) {
    const size_t extra = kSnapshotExtraBytes + s.extra_tail.size();
    const size_t entry = 40 + extra + s.id.size() + s.name.size();
    const size_t start = out.size();
    out.resize(start + align_up(entry, 8), 0);
    uint8_t* p = out.data() + start;
    store_be64(p, s.l1_table_offset);
    store_be32(p + 8, s.l1_size);
    store_be16(p + 12, static_cast<uint16_t>(s.id.size()));
    store_be16(p + 14, static_cast<uint16_t>(s.name.size()));
    store_be32(p + 16, s.date_sec);
    store_be32(p + 20, s.date_nsec);
    store_be64(p + 24, s.vm_clock_nsec);
    store_be32(p + 32, s.vm_state_size);
    store_be32(p + 36, static_cast<uint32_t>(extra));
    uint8_t* e = p + 40;
    store_be64(e, s.vm_state_size_large);
    store_be64(e + 8, s.disk_size_bytes);
    store_be64(e + 16, s.has_icount ? s.icount : UINT64_MAX);
    std::copy(s.extra_tail.begin(), s.extra_tail.end(), e + 24);
    std::copy(s.id.begin(), s.id.end(), e + extra);
    std::copy(s.name.begin(), s.name.end(), e + extra + s.id.size());
  }
  return out;
}

}  // namespace kumo::block::qcow2
