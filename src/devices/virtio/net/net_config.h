#pragma once
// virtio-net user options (--net) and device configuration (virtio 1.2 §5.1.4).
//
// parse_net_options() is pure: "tap=NAME | bridge=BR [,tap=NAME] [,mac=52:54:00:..]
// [,queues=N][,bw=SIZE][,bw_burst=SIZE][,ops=N][,ops_burst=N][,poll-us=N]". With bridge= a
// tap is created (named NAME, or kernel-chosen) and enslaved to the existing bridge BR.
// queues is the number of queue pairs (1..16; more than one needs a multi-queue tap, which
// kumo creates when it creates the tap). bw/ops limit each direction separately (bytes or
// frames per second, Firecracker token buckets, for the whole NIC); poll-us is the
// workers' busy-polling window (default kDefaultPollMicros, 0 = off).
// Errors are kInvalidInput naming the bad key.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/key_value_options.h"
#include "base/result.h"
#include "base/token_bucket.h"
#include "net/mac_address.h"

namespace kumo::devices::virtio::net {

struct NetOptions {
  std::string tap;     // tap interface name (may be empty with bridge=)
  std::string bridge;  // existing bridge to attach to (empty: none)
  std::optional<kumo::net::MacAddress> mac;  // nullopt: random 52:54:00:xx:xx:xx
  unsigned queues = 1;                       // queue pairs
  std::optional<BucketConfig> bandwidth;
  std::optional<BucketConfig> ops;
  uint64_t poll_ns = kDefaultPollMicros * 1000;  // see EventLoop::set_poller
};

[[nodiscard]] Result<NetOptions> parse_net_options(std::string_view text);

// §5.1.3 feature bits.
inline constexpr uint32_t kFeatureCsum = 0;
inline constexpr uint32_t kFeatureGuestCsum = 1;
inline constexpr uint32_t kFeatureMac = 5;
inline constexpr uint32_t kFeatureGuestTso4 = 7;
inline constexpr uint32_t kFeatureGuestTso6 = 8;
inline constexpr uint32_t kFeatureGuestEcn = 9;
inline constexpr uint32_t kFeatureGuestUfo = 10;
inline constexpr uint32_t kFeatureHostTso4 = 11;
inline constexpr uint32_t kFeatureHostTso6 = 12;
inline constexpr uint32_t kFeatureHostEcn = 13;
inline constexpr uint32_t kFeatureHostUfo = 14;
inline constexpr uint32_t kFeatureMrgRxbuf = 15;
inline constexpr uint32_t kFeatureStatus = 16;
inline constexpr uint32_t kFeatureCtrlVq = 17;
inline constexpr uint32_t kFeatureMq = 22;

inline constexpr uint16_t kStatusLinkUp = 1;

// struct virtio_net_config up to max_virtqueue_pairs (mtu and later are not offered).
struct __attribute__((packed)) NetConfigSpace {
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
};
static_assert(sizeof(NetConfigSpace) == 10);

}  // namespace kumo::devices::virtio::net
