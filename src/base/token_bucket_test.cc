#include "base/token_bucket.h"

#include <gtest/gtest.h>

namespace kumo {
namespace {

class FakeClock final : public Clock {
 public:
  uint64_t now_ns() const override { return now; }
  void advance_ms(uint64_t ms) { now += ms * 1'000'000ULL; }
  uint64_t now = 1'000'000'000ULL;
};

using Outcome = TokenBucket::Outcome;

TEST(TokenBucket, DisabledConfigsMakeNoBucket) {
  FakeClock clock;
  EXPECT_FALSE(TokenBucket::create({0, 0, 1000}, clock));
  EXPECT_FALSE(TokenBucket::create({100, 0, 0}, clock));
}

TEST(TokenBucket, StartsFullAndRefusesWhenEmpty) {
  FakeClock clock;
  auto b = *TokenBucket::create({1000, 0, 1000}, clock);
  EXPECT_EQ(b.reduce(1000).outcome, Outcome::kTaken);
  const auto r = b.reduce(1);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.wait_ns, 1'000'000u);  // one token per ms
}

TEST(TokenBucket, RefillsLinearlyAndCapsAtSize) {
  FakeClock clock;
  auto b = *TokenBucket::create({1000, 0, 1000}, clock);
  ASSERT_EQ(b.reduce(1000).outcome, Outcome::kTaken);
  clock.advance_ms(250);
  EXPECT_EQ(b.budget(), 250u);
  clock.advance_ms(10'000);
  EXPECT_EQ(b.budget(), 1000u);
}

TEST(TokenBucket, FractionalRefillIsNotLost) {
  FakeClock clock;
  auto b = *TokenBucket::create({3, 0, 1000}, clock);  // one token per 333.3 ms
  ASSERT_EQ(b.reduce(3).outcome, Outcome::kTaken);
  for (int i = 0; i < 3; ++i) {
    clock.advance_ms(200);
    (void)b.budget();
  }
  EXPECT_EQ(b.budget(), 1u);  // 600 ms -> 1.8 tokens -> 1, remainder carried
  clock.advance_ms(100);
  EXPECT_EQ(b.budget(), 2u);  // 700 ms -> 2.1 tokens
}

TEST(TokenBucket, OneTimeBurstIsSpentFirstAndNeverRefilled) {
  FakeClock clock;
  auto b = *TokenBucket::create({100, 500, 1000}, clock);
  EXPECT_EQ(b.reduce(550).outcome, Outcome::kTaken);  // 500 burst + 50 budget
  EXPECT_EQ(b.one_time_burst(), 0u);
  EXPECT_EQ(b.budget(), 50u);
  clock.advance_ms(100'000);
  EXPECT_EQ(b.one_time_burst(), 0u);
  EXPECT_EQ(b.budget(), 100u);
}

TEST(TokenBucket, OverConsumptionIsAllowedButBlocksForTheExcess) {
  FakeClock clock;
  auto b = *TokenBucket::create({1000, 0, 1000}, clock);
  const auto r = b.reduce(3000);
  EXPECT_EQ(r.outcome, Outcome::kOverConsumed);
  EXPECT_EQ(r.wait_ns, 2'000'000'000u);  // 2000 excess tokens at 1000/s
  EXPECT_EQ(b.budget(), 0u);
}

TEST(TokenBucket, OverConsumptionWaitsForAFullBucket) {
  FakeClock clock;
  auto b = *TokenBucket::create({1000, 0, 1000}, clock);
  ASSERT_EQ(b.reduce(400).outcome, Outcome::kTaken);
  const auto r = b.reduce(5000);
  EXPECT_EQ(r.outcome, Outcome::kRefused);
  EXPECT_EQ(r.wait_ns, 400'000'000u);
}

TEST(RateLimiter, LongRunRateMatchesConfiguration) {
  FakeClock clock;
  RateLimiter limiter(BucketConfig{1'000'000, 0, 1000}, std::nullopt, clock);
  uint64_t sent = 0;
  // Offer 4 KiB writes for 10 simulated seconds, honouring every wait exactly.
  const uint64_t end = clock.now + 10'000'000'000ULL;
  while (clock.now < end) {
    const uint64_t wait = limiter.consume(4096);
    if (wait == 0) {
      sent += 4096;
    } else {
      clock.now += wait;
    }
  }
  // 1 MB/s for 10 s plus the initial full bucket.
  EXPECT_NEAR(static_cast<double>(sent), 11'000'000.0, 4096.0 * 2);
}

TEST(RateLimiter, OpsBucketLimitsRequests) {
  FakeClock clock;
  RateLimiter limiter(std::nullopt, BucketConfig{10, 0, 1000}, clock);
  int done = 0;
  while (limiter.consume(1 << 20) == 0) ++done;
  EXPECT_EQ(done, 10);
  EXPECT_EQ(limiter.blocked_for_ns(), 100'000'000u);
}

TEST(RateLimiter, RefusalByBandwidthReturnsTheOpToken) {
  FakeClock clock;
  RateLimiter limiter(BucketConfig{100, 0, 1000}, BucketConfig{2, 0, 1000}, clock);
  EXPECT_EQ(limiter.consume(100), 0u);
  EXPECT_NE(limiter.consume(50), 0u);  // bandwidth empty: op token returned
  clock.advance_ms(1000);
  EXPECT_EQ(limiter.consume(50), 0u);
  EXPECT_EQ(limiter.consume(50), 0u);  // second op token still there
}

TEST(RateLimiter, BlockedLimiterRefusesUntilTheDeadline) {
  FakeClock clock;
  RateLimiter limiter(BucketConfig{1000, 0, 1000}, std::nullopt, clock);
  EXPECT_EQ(limiter.consume(1500), 0u);  // over-consumption allowed
  EXPECT_EQ(limiter.blocked_for_ns(), 500'000'000u);
  EXPECT_NE(limiter.consume(1), 0u);
  clock.advance_ms(500);
  EXPECT_EQ(limiter.blocked_for_ns(), 0u);
}

TEST(RateLimiter, NoBucketsMeansUnlimited) {
  FakeClock clock;
  RateLimiter limiter(std::nullopt, std::nullopt, clock);
  EXPECT_FALSE(limiter.enabled());
  EXPECT_EQ(limiter.consume(~uint64_t{0} / 2), 0u);
}

}  // namespace
}  // namespace kumo

namespace kumo {
namespace {

TEST(PerSecondBucket, RateAndBurstMakeAOneSecondBucket) {
  auto b = per_second_bucket("--disk", "iops", 1000, "iops_burst", 50).value();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->size, 1000u);
  EXPECT_EQ(b->one_time_burst, 50u);
  EXPECT_EQ(b->refill_time_ms, 1000u);
  EXPECT_FALSE(per_second_bucket("--disk", "iops", std::nullopt, "iops_burst", std::nullopt).value());
}

TEST(PerSecondBucket, BurstWithoutRateAndZeroRateNameTheKey) {
  auto burst_only = per_second_bucket("--net", "bw", std::nullopt, "bw_burst", 10);
  ASSERT_FALSE(burst_only);
  EXPECT_EQ(burst_only.error().message, "--net: key 'bw_burst' needs 'bw'");
  auto zero = per_second_bucket("--net", "bw", 0, "bw_burst", std::nullopt);
  ASSERT_FALSE(zero);
  EXPECT_EQ(zero.error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(zero.error().message, "--net: key 'bw' must be positive");
}

}  // namespace
}  // namespace kumo
