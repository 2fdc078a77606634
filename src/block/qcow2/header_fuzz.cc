// libFuzzer target: the qcow2 header, header-extension and snapshot-table parsers on
// arbitrary bytes. Whatever parses must serialize and parse back to the same header.

#include <cstddef>
#include <cstdint>
#include <span>

#include "block/qcow2/header.h"
#include "block/qcow2/snapshot.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kumo::block::qcow2;  // NOLINT(google-build-using-namespace)
  const std::span<const uint8_t> in(data, size);
  auto h = parse_header(in, size);
  if (h) {
    auto raw = serialize_header(*h);
    if (raw) {
      auto again = parse_header(*raw, UINT64_MAX);
      if (again && (again->size_bytes != h->size_bytes ||
                    again->backing_file != h->backing_file ||
                    again->l1_table_offset != h->l1_table_offset)) {
        __builtin_trap();
      }
    }
  }
  if (size >= 2) {
    auto snaps = parse_snapshot_table(in.subspan(2), data[0] % 8, uint64_t{1} << (9 + data[1] % 13),
                                      UINT64_MAX / 2, nullptr);
    if (snaps) {
      const auto raw = serialize_snapshot_table(*snaps);
      uint64_t len = 0;
      auto again = parse_snapshot_table(raw, static_cast<uint32_t>(snaps->size()),
                                        uint64_t{1} << (9 + data[1] % 13), UINT64_MAX / 2, &len);
      if (!again || again->size() != snaps->size()) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
