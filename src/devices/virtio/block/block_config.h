#pragma once
// virtio-blk user options (--disk) and the device configuration layout (virtio 1.2 §5.2.4).
//
// parse_disk_options() is pure: "path=IMG[,readonly=on|off][,cache=none|writeback]
// [,io=io_uring|sync][,iops=N][,iops_burst=N][,bw=SIZE][,bw_burst=SIZE][,serial=ID]
// [,l2-cache-size=SIZE][,refcount-cache-size=SIZE][,queues=N][,poll-us=N]".
// iops is operations per second, bw bytes per second (K/M/G suffixes); the *_burst keys are
// Firecracker's one-time burst; the cache sizes bound qcow2's metadata caches (QEMU's names;
// default: L2 enough to map the whole disk up to 32 MiB, refcounts 256 KiB); poll-us is the
// worker's busy-polling window (default kDefaultPollMicros, 0 = off); queues is the number of
// request queues offered with VIRTIO_BLK_F_MQ (1..kMaxBlockQueues, one worker serves them
// all). Errors are kInvalidInput and name the bad key.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/key_value_options.h"
#include "base/result.h"
#include "base/token_bucket.h"

namespace kumo::devices::virtio::block {

enum class CacheMode { kNone, kWriteback };
enum class IoEngine { kIoUring, kSync };

struct DiskOptions {
  std::string path;
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;
  IoEngine io = IoEngine::kIoUring;
  std::optional<BucketConfig> ops;        // from iops / iops_burst
  std::optional<BucketConfig> bandwidth;  // from bw / bw_burst
  std::string serial;                     // GET_ID answer (at most 20 bytes)
  uint64_t l2_cache_bytes = 0;            // 0: the back end's default
  uint64_t refcount_cache_bytes = 0;
  uint64_t poll_ns = kDefaultPollMicros * 1000;  // see EventLoop::set_poller
  uint16_t queues = 1;
};

inline constexpr uint16_t kMaxBlockQueues = 16;

inline constexpr uint64_t kMaxMetadataCacheBytes = 1ull << 30;

[[nodiscard]] Result<DiskOptions> parse_disk_options(std::string_view text);

// §5.2.3 feature bits.
inline constexpr uint32_t kFeatureSegMax = 2;
inline constexpr uint32_t kFeatureRo = 5;
inline constexpr uint32_t kFeatureBlkSize = 6;
inline constexpr uint32_t kFeatureFlush = 9;
inline constexpr uint32_t kFeatureMq = 12;
inline constexpr uint32_t kFeatureDiscard = 13;
inline constexpr uint32_t kFeatureWriteZeroes = 14;

inline constexpr uint64_t kSectorBytes = 512;
inline constexpr uint32_t kIdBytes = 20;  // VIRTIO_BLK_ID_BYTES

// struct virtio_blk_config (§5.2.4), the fields up to write_zeroes_may_unmap.
struct __attribute__((packed)) BlockConfigSpace {
  uint64_t capacity;  // in 512-byte sectors
  uint32_t size_max;
  uint32_t seg_max;
  uint16_t cylinders;
  uint8_t heads;
  uint8_t sectors;
  uint32_t blk_size;
  uint8_t physical_block_exp;
  uint8_t alignment_offset;
  uint16_t min_io_size;
  uint32_t opt_io_size;
  uint8_t writeback;
  uint8_t unused0;
  uint16_t num_queues;
  uint32_t max_discard_sectors;
  uint32_t max_discard_seg;
  uint32_t discard_sector_alignment;
  uint32_t max_write_zeroes_sectors;
  uint32_t max_write_zeroes_seg;
  uint8_t write_zeroes_may_unmap;
  uint8_t unused1[3];
};
static_assert(sizeof(BlockConfigSpace) == 60);

}  // namespace kumo::devices::virtio::block
