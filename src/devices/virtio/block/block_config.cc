#include "devices/virtio/block/block_config.h"

#include "base/key_value_options.h"
#include "base/size_parse.h"

namespace kumo::devices::virtio::block {
namespace {
constexpr std::string_view kOption = "--disk";
}  // namespace

Result<DiskOptions> parse_disk_options(std::string_view text) {
  const KeyValues items = KUMO_TRY(split_key_values(text, kOption));
  DiskOptions out;
  std::optional<uint64_t> iops, iops_burst, bw, bw_burst;
  for (const auto& [key, value] : items) {
    if (key == "path") {
      out.path = value;
    } else if (key == "readonly") {
      out.read_only = KUMO_TRY(parse_on_off(value, kOption, key));
    } else if (key == "cache") {
      if (value == "none") {
        out.cache = CacheMode::kNone;
      } else if (value == "writeback") {
        out.cache = CacheMode::kWriteback;
      } else {
        return invalid_input("{}: key 'cache': '{}' is not none or writeback", kOption, value);
      }
    } else if (key == "io") {
      if (value == "io_uring") {
        out.io = IoEngine::kIoUring;
      } else if (value == "sync") {
        out.io = IoEngine::kSync;
      } else {
        return invalid_input("{}: key 'io': '{}' is not io_uring or sync", kOption, value);
      }
    } else if (key == "iops") {
      iops = KUMO_TRY(parse_count(value, kOption, key));
    } else if (key == "iops_burst") {
      iops_burst = KUMO_TRY(parse_count(value, kOption, key));
    } else if (key == "bw" || key == "bw_burst") {
      auto bytes = parse_size_bytes(value);
      if (!bytes) {
        return invalid_input("{}: key '{}': {}", kOption, key, bytes.error().message);
      }
      (key == "bw" ? bw : bw_burst) = *bytes;
    } else if (key == "l2-cache-size" || key == "refcount-cache-size") {
      auto bytes = parse_size_bytes(value);
      if (!bytes || *bytes > kMaxMetadataCacheBytes) {
        return invalid_input("{}: key '{}': {}", kOption, key,
                             bytes ? "larger than 1G" : bytes.error().message);
      }
      (key == "l2-cache-size" ? out.l2_cache_bytes : out.refcount_cache_bytes) = *bytes;
    } else if (key == "poll-us") {
      out.poll_ns = KUMO_TRY(parse_poll_window(value, kOption, key));
    } else if (key == "queues") {
      const uint64_t n = KUMO_TRY(parse_count(value, kOption, key));
      if (n < 1 || n > kMaxBlockQueues) {
        return invalid_input("{}: key 'queues': {} is not in 1..{}", kOption, value,
                             kMaxBlockQueues);
      }
      out.queues = static_cast<uint16_t>(n);
    } else if (key == "serial") {
      if (value.size() > kIdBytes) {
        return invalid_input("{}: key 'serial': longer than {} bytes", kOption, kIdBytes);
      }
      out.serial = value;
    } else {
      return invalid_input("{}: unknown key '{}'", kOption, key);
    }
  }
  if (out.path.empty()) {
    return invalid_input("{}: key 'path' is required", kOption);
  }
  out.ops = KUMO_TRY(per_second_bucket(kOption, "iops", iops, "iops_burst", iops_burst));
  out.bandwidth = KUMO_TRY(per_second_bucket(kOption, "bw", bw, "bw_burst", bw_burst));
  return out;
}

}  // namespace kumo::devices::virtio::block
