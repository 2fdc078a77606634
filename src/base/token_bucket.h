#pragma once
// TokenBucket and RateLimiter: Firecracker's I/O rate-limiter semantics (reference/storage.md
// §5), one type shared by virtio-blk and virtio-net.
//
// A bucket holds up to `size` tokens and refills linearly from empty to full in
// `refill_time_ms`; it starts full. `one_time_burst` is an extra allowance spent first and
// never refilled. A request bigger than the whole bucket is allowed ("over-consumption") but
// empties the bucket and blocks the limiter for as long as refilling the excess takes.
// Unlike Firecracker's fixed 100 ms retry timer (which Cloud Hypervisor documents as making
// small refill times inaccurate), a refused request is told exactly how long to wait.
//
// Token arithmetic is exact (128-bit intermediate, carried remainder), so the long-run rate
// equals size / refill_time.
//
// Thread-safety: TokenBucket and RateLimiter none (one device worker at a time);
// SharedRateLimiter is a RateLimiter behind a mutex, for one device's queues served by
// several workers at once.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string_view>

#include "base/result.h"

namespace kumo {

__extension__ typedef unsigned __int128 Uint128;  // exact token arithmetic

class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual uint64_t now_ns() const = 0;
};

// CLOCK_MONOTONIC.
class MonotonicClock final : public Clock {
 public:
  [[nodiscard]] uint64_t now_ns() const override;
  static const MonotonicClock& instance();
};

struct BucketConfig {
  uint64_t size = 0;            // tokens (bytes or operations); 0 disables the bucket
  uint64_t one_time_burst = 0;  // extra tokens available once
  uint64_t refill_time_ms = 0;  // time to refill from empty to full; 0 disables
};

// A per-second rate limit from user options "<rate_key>=N[,<burst_key>=N]": a bucket of
// `rate` tokens refilled every second, with `burst` extra tokens once. nullopt when no rate
// was given; kInvalidInput naming `option` and the key for a zero rate or a burst without a
// rate.
[[nodiscard]] Result<std::optional<BucketConfig>> per_second_bucket(
    std::string_view option, std::string_view rate_key, std::optional<uint64_t> rate,
    std::string_view burst_key, std::optional<uint64_t> burst);

class TokenBucket final {
 public:
  enum class Outcome { kTaken, kOverConsumed, kRefused };
  struct Reduction {
    Outcome outcome = Outcome::kTaken;
    uint64_t wait_ns = 0;  // kOverConsumed: how long to block; kRefused: when to retry
  };

  // Returns nullopt for a disabled config (size or refill time 0).
  [[nodiscard]] static std::optional<TokenBucket> create(const BucketConfig& config,
                                                         const Clock& clock);

  // Takes `tokens` (burst first) or refuses without taking any.
  [[nodiscard]] Reduction reduce(uint64_t tokens);
  // Gives back tokens taken by a request that another bucket refused (capped at size).
  void give_back(uint64_t tokens);
  [[nodiscard]] uint64_t budget();
  [[nodiscard]] uint64_t one_time_burst() const { return one_time_burst_; }

 private:
  TokenBucket(const BucketConfig& config, const Clock& clock);
  void replenish();
  [[nodiscard]] uint64_t ns_for(uint64_t tokens) const;

  const Clock* clock_;
  uint64_t size_;
  uint64_t refill_ns_;
  uint64_t budget_;
  uint64_t one_time_burst_;
  uint64_t last_ns_;
  Uint128 carry_ = 0;  // fractional tokens, in units of 1/refill_ns
};

// A bandwidth bucket (bytes) and an ops bucket (requests); either may be absent.
class RateLimiter final {
 public:
  RateLimiter(const std::optional<BucketConfig>& bandwidth,
              const std::optional<BucketConfig>& ops,
              const Clock& clock = MonotonicClock::instance());

  // 0: go ahead (tokens taken). Otherwise the request was refused (nothing taken) and the
  // caller retries after this many ns; the limiter stays blocked until then. An
  // over-consuming request is allowed (returns 0) but blocks later ones.
  [[nodiscard]] uint64_t consume(uint64_t bytes, uint64_t ops = 1);
  // Whether the limiter is still blocked; ns left (0 = not blocked).
  [[nodiscard]] uint64_t blocked_for_ns() const;
  [[nodiscard]] bool enabled() const { return bandwidth_.has_value() || ops_.has_value(); }

 private:
  const Clock* clock_;
  std::optional<TokenBucket> bandwidth_;
  std::optional<TokenBucket> ops_;
  uint64_t blocked_until_ns_ = 0;
};

class SharedRateLimiter final {
 public:
  SharedRateLimiter(const std::optional<BucketConfig>& bandwidth,
                    const std::optional<BucketConfig>& ops,
                    const Clock& clock = MonotonicClock::instance())
      : limiter_(bandwidth, ops, clock) {}
  [[nodiscard]] uint64_t consume(uint64_t bytes, uint64_t ops = 1) {
    std::lock_guard lock(mutex_);
    return limiter_.consume(bytes, ops);
  }
  [[nodiscard]] uint64_t blocked_for_ns() const {
    std::lock_guard lock(mutex_);
    return limiter_.blocked_for_ns();
  }

 private:
  mutable std::mutex mutex_;
  RateLimiter limiter_;
};

}  // namespace kumo
