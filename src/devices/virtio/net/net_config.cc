#include "devices/virtio/net/net_config.h"

#include "base/key_value_options.h"
#include "base/size_parse.h"
#include "net/tap.h"

namespace kumo::devices::virtio::net {
namespace {
constexpr std::string_view kOption = "--net";
}  // namespace

Result<NetOptions> parse_net_options(std::string_view text) {
  const KeyValues items = KUMO_TRY(split_key_values(text, kOption));
  NetOptions out;
  std::optional<uint64_t> bw, bw_burst, ops, ops_burst;
  for (const auto& [key, value] : items) {
    if (key == "tap") {
      if (value.size() > 15) {
        return invalid_input("{}: key 'tap': '{}' is longer than 15 characters", kOption, value);
      }
      out.tap = value;
    } else if (key == "bridge") {
      if (value.size() > 15) {
        return invalid_input("{}: key 'bridge': '{}' is longer than 15 characters", kOption, value);
      }
      out.bridge = value;
    } else if (key == "mac") {
      auto mac = kumo::net::parse_mac(value);
      if (!mac) {
        return invalid_input("{}: key 'mac': {}", kOption, mac.error().message);
      }
      out.mac = *mac;
    } else if (key == "bw" || key == "bw_burst") {
      auto bytes = parse_size_bytes(value);
      if (!bytes) {
        return invalid_input("{}: key '{}': {}", kOption, key, bytes.error().message);
      }
      (key == "bw" ? bw : bw_burst) = *bytes;
    } else if (key == "ops") {
      ops = KUMO_TRY(parse_count(value, kOption, key));
    } else if (key == "ops_burst") {
      ops_burst = KUMO_TRY(parse_count(value, kOption, key));
    } else if (key == "queues") {
      const uint64_t n = KUMO_TRY(parse_count(value, kOption, key));
      if (n < 1 || n > kumo::net::Tap::kMaxQueues) {
        return invalid_input("{}: key 'queues': {} is not in 1..{}", kOption, value,
                             kumo::net::Tap::kMaxQueues);
      }
      out.queues = static_cast<unsigned>(n);
    } else if (key == "poll-us") {
      out.poll_ns = KUMO_TRY(parse_poll_window(value, kOption, key));
    } else {
      return invalid_input("{}: unknown key '{}'", kOption, key);
    }
  }
  if (out.tap.empty() && out.bridge.empty()) {
    return invalid_input("{}: key 'tap' or 'bridge' is required", kOption);
  }
  out.bandwidth = KUMO_TRY(per_second_bucket(kOption, "bw", bw, "bw_burst", bw_burst));
  out.ops = KUMO_TRY(per_second_bucket(kOption, "ops", ops, "ops_burst", ops_burst));
  return out;
}

}  // namespace kumo::devices::virtio::net
