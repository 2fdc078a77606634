#pragma once
// Internal snapshot table codec (qcow2.rst "Snapshots"). Pure functions over untrusted bytes.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace kumo::block::qcow2 {

struct Snapshot {
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  std::string id;
  std::string name;
  uint32_t date_sec = 0;
  uint32_t date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint32_t vm_state_size = 0;
  // Extra data: bytes 0-7 64-bit VM state size, 8-15 virtual disk size, 16-23 icount; any
  // further bytes are kept as they are.
  uint64_t vm_state_size_large = 0;
  uint64_t disk_size_bytes = 0;
  bool has_disk_size = false;
  uint64_t icount = UINT64_MAX;  // -1: none
  bool has_icount = false;
  std::vector<uint8_t> extra_tail;
};

inline constexpr size_t kSnapshotExtraBytes = 24;  // what QEMU 7.2 writes

// Parses `count` entries from `bytes`; `table_bytes_out` receives the table's size.
// Checks every L1 table lies inside the file and is cluster aligned.
[[nodiscard]] Result<std::vector<Snapshot>> parse_snapshot_table(std::span<const uint8_t> bytes,
                                                                 uint32_t count,
                                                                 uint64_t cluster_size,
                                                                 uint64_t file_size,
                                                                 uint64_t* table_bytes_out);
[[nodiscard]] std::vector<uint8_t> serialize_snapshot_table(const std::vector<Snapshot>& snaps);

}  // namespace kumo::block::qcow2
