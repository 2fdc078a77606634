// create_qcow2(): a fresh, empty image laid out the way qemu-img lays one out: header in
// cluster 0, then the refcount table, the refcount blocks, the L1 table.

#include <cstring>

#include "block/host_file.h"
#include "block/qcow2/format.h"
#include "block/qcow2/header.h"
#include "block/qcow2/qcow2_image.h"

namespace kumo::block {

using namespace qcow2;  // NOLINT(google-build-using-namespace)

Status create_qcow2(const std::string& path, const Qcow2CreateOptions& o) {
  const uint32_t cs32 = o.cluster_size;
  if (cs32 < 512 || cs32 > (2u << 20) || (cs32 & (cs32 - 1)) != 0) {
    return invalid_input("cluster size {} must be a power of two from 512 B to 2 MiB", cs32);
  }
  if (o.version != 2 && o.version != 3) {
    return invalid_input("qcow2 version {} is not 2 (compat=0.10) or 3 (compat=1.1)",
                         o.version);
  }
  uint32_t order = 0;
  while ((1u << order) < o.refcount_bits && order < 7) {
    ++order;
  }
  if ((1u << order) != o.refcount_bits || order > 6) {
    return invalid_input("refcount width {} must be a power of two from 1 to 64",
                         o.refcount_bits);
  }
  if (o.version == 2 && order != 4) {
    return invalid_input("version 2 images need 16-bit refcounts");
  }
  if (o.version == 2 && o.lazy_refcounts) {
    return invalid_input("lazy refcounts need compat=1.1 (version 3)");
  }
  if (o.compression_type > 1 || (o.compression_type != 0 && o.version == 2)) {
    return invalid_input("zstd compression needs compat=1.1 (version 3)");
  }
  if (o.extended_l2 && (o.version != 3 || cs32 < 16384)) {
    return invalid_input("extended L2 entries need compat=1.1 (version 3) and a cluster size of "
                         "at least 16 KiB");
  }
  if (o.size_bytes % 512 != 0) {
    return invalid_input("image size {} must be a multiple of 512 bytes", o.size_bytes);
  }
  if (o.size_bytes > kMaxVirtualSize) {
    return invalid_input("size {} is too large", o.size_bytes);
  }
  Header h;
  h.version = o.version;
  h.cluster_bits = 0;
  while ((1u << h.cluster_bits) < cs32) {
    ++h.cluster_bits;
  }
  h.size_bytes = o.size_bytes;
  h.refcount_order = order;
  h.compatible_features = o.lazy_refcounts ? kCompatLazyRefcounts : 0;
  h.compression_type = o.compression_type;
  if (o.compression_type != 0) {
    h.incompatible_features |= kIncompatCompression;
  }
  if (o.extended_l2) {
    h.incompatible_features |= kIncompatExtendedL2;
  }
  h.backing_file = o.backing_file;
  h.backing_format = o.backing_file.empty() ? "" : o.backing_format;
  const uint64_t cs = cs32;
  const uint64_t l1_entries = h.l1_entries_needed(o.size_bytes);
  if (l1_entries * 8 > kMaxL1Bytes) {
    return invalid_input("size {} needs an L1 table larger than {} bytes", o.size_bytes,
                         kMaxL1Bytes);
  }
  h.l1_size = static_cast<uint32_t>(l1_entries);
  const uint64_t l1_clusters = div_round_up(l1_entries * 8, cs);
  const uint64_t per_block = cs * 8 / o.refcount_bits;
  uint64_t table_clusters = 1;
  uint64_t blocks = 1;
  for (;;) {
    const uint64_t total = 1 + table_clusters + blocks + l1_clusters;
    const uint64_t nb = div_round_up(total, per_block);
    const uint64_t nt = div_round_up(nb, cs / 8);
    if (nb == blocks && nt == table_clusters) {
      break;
    }
    blocks = nb;
    table_clusters = nt;
  }
  if (table_clusters * cs > kMaxRefcountTableBytes) {
    return invalid_input("size {} is too large for cluster size {}", o.size_bytes, cs);
  }
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  const uint64_t blocks_at = (1 + table_clusters) * cs;
  h.l1_table_offset = blocks_at + blocks * cs;
  const uint64_t used = 1 + table_clusters + blocks + l1_clusters;

  std::vector<uint8_t> header = KUMO_TRY(serialize_header(h));
  HostFile f = KUMO_TRY(HostFile::create(path));
  KUMO_TRY(f.pwrite_full(0, header));
  std::vector<uint8_t> table(table_clusters * cs, 0);
  for (uint64_t b = 0; b < blocks; ++b) {
    store_be64(table.data() + b * 8, blocks_at + b * cs);
  }
  KUMO_TRY(f.pwrite_full(cs, table));
  std::vector<uint8_t> block(cs);
  for (uint64_t b = 0; b < blocks; ++b) {
    std::fill(block.begin(), block.end(), uint8_t{0});
    for (uint64_t k = 0; k < per_block; ++k) {
      const uint64_t c = b * per_block + k;
      if (c >= used) {
        break;
      }
      if (o.refcount_bits < 8) {
        const uint64_t bit = k * o.refcount_bits;
        block[bit / 8] = static_cast<uint8_t>(block[bit / 8] | (1u << (bit % 8)));
      } else {
        const uint64_t bytes = o.refcount_bits / 8;
        block[k * bytes + bytes - 1] = 1;
      }
    }
    KUMO_TRY(f.pwrite_full(blocks_at + b * cs, block));
  }
  if (l1_clusters > 0) {
    std::vector<uint8_t> l1(l1_clusters * cs, 0);
    KUMO_TRY(f.pwrite_full(h.l1_table_offset, l1));
  }
  return f.datasync();
}

}  // namespace kumo::block
