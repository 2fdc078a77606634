#include "base/token_bucket.h"

#include <time.h>

#include <algorithm>

namespace kumo {

Result<std::optional<BucketConfig>> per_second_bucket(std::string_view option,
                                                      std::string_view rate_key,
                                                      std::optional<uint64_t> rate,
                                                      std::string_view burst_key,
                                                      std::optional<uint64_t> burst) {
  if (burst && !rate) {
    return invalid_input("{}: key '{}' needs '{}'", option, burst_key, rate_key);
  }
  if (!rate) {
    return std::optional<BucketConfig>();
  }
  if (*rate == 0) {
    return invalid_input("{}: key '{}' must be positive", option, rate_key);
  }
  return std::optional<BucketConfig>(BucketConfig{*rate, burst.value_or(0), 1000});
}

uint64_t MonotonicClock::now_ns() const {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

const MonotonicClock& MonotonicClock::instance() {
  static const MonotonicClock clock;
  return clock;
}

std::optional<TokenBucket> TokenBucket::create(const BucketConfig& config, const Clock& clock) {
  if (config.size == 0 || config.refill_time_ms == 0) {
    return std::nullopt;
  }
  return TokenBucket(config, clock);
}

TokenBucket::TokenBucket(const BucketConfig& config, const Clock& clock)
    : clock_(&clock),
      size_(config.size),
      refill_ns_(config.refill_time_ms * 1'000'000ULL),
      budget_(config.size),
      one_time_burst_(config.one_time_burst),
      last_ns_(clock.now_ns()) {}

void TokenBucket::replenish() {
  const uint64_t now = clock_->now_ns();
  const uint64_t elapsed = now > last_ns_ ? now - last_ns_ : 0;
  last_ns_ = now;
  if (budget_ >= size_) {
    carry_ = 0;
    return;
  }
  const Uint128 total = carry_ + static_cast<Uint128>(elapsed) * size_;
  const Uint128 tokens = total / refill_ns_;
  if (tokens >= size_ - budget_) {
    budget_ = size_;
    carry_ = 0;
  } else {
    budget_ += static_cast<uint64_t>(tokens);
    carry_ = total % refill_ns_;
  }
}

uint64_t TokenBucket::ns_for(uint64_t tokens) const {
  // Time for `tokens` to refill, rounded up, minus the fraction already accumulated.
  const Uint128 needed = static_cast<Uint128>(tokens) * refill_ns_;
  const Uint128 have = carry_ < needed ? carry_ : needed;
  const Uint128 ns = (needed - have + size_ - 1) / size_;
  return ns > UINT64_MAX ? UINT64_MAX : static_cast<uint64_t>(ns);
}

TokenBucket::Reduction TokenBucket::reduce(uint64_t tokens) {
  replenish();
  const uint64_t from_burst = std::min(tokens, one_time_burst_);
  const uint64_t rest = tokens - from_burst;
  if (rest <= budget_) {
    one_time_burst_ -= from_burst;
    budget_ -= rest;
    return {Outcome::kTaken, 0};
  }
  if (rest > size_) {
    // Over-consumption: allowed once the bucket is full, then it blocks for the excess.
    if (budget_ < size_) {
      return {Outcome::kRefused, ns_for(size_ - budget_)};
    }
    one_time_burst_ -= from_burst;
    budget_ = 0;
    carry_ = 0;
    return {Outcome::kOverConsumed, ns_for(rest - size_)};
  }
  return {Outcome::kRefused, ns_for(rest - budget_)};
}

void TokenBucket::give_back(uint64_t tokens) {
  replenish();
  budget_ = std::min(size_, budget_ + std::min(tokens, size_));
}

uint64_t TokenBucket::budget() {
  replenish();
  return budget_;
}

RateLimiter::RateLimiter(const std::optional<BucketConfig>& bandwidth,
                         const std::optional<BucketConfig>& ops, const Clock& clock)
    : clock_(&clock),
      bandwidth_(bandwidth ? TokenBucket::create(*bandwidth, clock) : std::nullopt),
      ops_(ops ? TokenBucket::create(*ops, clock) : std::nullopt) {}

uint64_t RateLimiter::blocked_for_ns() const {
  if (blocked_until_ns_ == 0) {
    return 0;  // never refused anything: no clock read on the unlimited fast path
  }
  const uint64_t now = clock_->now_ns();
  return blocked_until_ns_ > now ? blocked_until_ns_ - now : 0;
}

uint64_t RateLimiter::consume(uint64_t bytes, uint64_t ops) {
  if (!enabled()) {
    return 0;
  }
  if (const uint64_t left = blocked_for_ns(); left != 0) {
    return left;
  }
  uint64_t block_ns = 0;
  bool ops_taken = false;
  if (ops_ && ops != 0) {
    const auto r = ops_->reduce(ops);
    if (r.outcome == TokenBucket::Outcome::kRefused) {
      blocked_until_ns_ = clock_->now_ns() + r.wait_ns;
      return std::max<uint64_t>(r.wait_ns, 1);
    }
    ops_taken = true;
    block_ns = std::max(block_ns, r.wait_ns);
  }
  if (bandwidth_ && bytes != 0) {
    const auto r = bandwidth_->reduce(bytes);
    if (r.outcome == TokenBucket::Outcome::kRefused) {
      if (ops_taken) {
        ops_->give_back(ops);
      }
      blocked_until_ns_ = clock_->now_ns() + r.wait_ns;
      return std::max<uint64_t>(r.wait_ns, 1);
    }
    block_ns = std::max(block_ns, r.wait_ns);
  }
  if (block_ns != 0) {
    blocked_until_ns_ = clock_->now_ns() + block_ns;
  }
  return 0;
}

}  // namespace kumo
