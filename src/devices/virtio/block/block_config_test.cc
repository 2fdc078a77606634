#include "devices/virtio/block/block_config.h"

#include <gtest/gtest.h>

namespace kumo::devices::virtio::block {
namespace {

TEST(DiskOptions, ParsesEveryKey) {
  auto o = parse_disk_options(
      "path=/img/a.qcow2,readonly=on,cache=none,io=sync,iops=100,iops_burst=50,bw=10M,"
      "bw_burst=1M,serial=abc,l2-cache-size=4M,refcount-cache-size=512K,poll-us=0,queues=4");
  ASSERT_TRUE(o) << o.error().message;
  EXPECT_EQ(o->path, "/img/a.qcow2");
  EXPECT_TRUE(o->read_only);
  EXPECT_EQ(o->cache, CacheMode::kNone);
  EXPECT_EQ(o->io, IoEngine::kSync);
  ASSERT_TRUE(o->ops);
  EXPECT_EQ(o->ops->size, 100u);
  EXPECT_EQ(o->ops->one_time_burst, 50u);
  EXPECT_EQ(o->ops->refill_time_ms, 1000u);
  ASSERT_TRUE(o->bandwidth);
  EXPECT_EQ(o->bandwidth->size, 10u << 20);
  EXPECT_EQ(o->bandwidth->one_time_burst, 1u << 20);
  EXPECT_EQ(o->serial, "abc");
  EXPECT_EQ(o->queues, 4u);
  EXPECT_EQ(o->l2_cache_bytes, 4u << 20);
  EXPECT_EQ(o->refcount_cache_bytes, 512u << 10);
  EXPECT_EQ(o->poll_ns, 0u);
}

TEST(DiskOptions, DefaultsAreWritebackIoUringUnlimited) {
  auto o = parse_disk_options("path=x");
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->read_only);
  EXPECT_EQ(o->cache, CacheMode::kWriteback);
  EXPECT_EQ(o->io, IoEngine::kIoUring);
  EXPECT_FALSE(o->ops);
  EXPECT_FALSE(o->bandwidth);
  EXPECT_EQ(o->poll_ns, kDefaultPollMicros * 1000);
}

void expect_error_naming(std::string_view text, std::string_view key) {
  auto o = parse_disk_options(text);
  ASSERT_FALSE(o) << text;
  EXPECT_EQ(o.error().kind, ErrorKind::kInvalidInput);
  EXPECT_NE(o.error().message.find(key), std::string::npos) << o.error().message;
}

TEST(DiskOptions, ErrorsNameTheBadKey) {
  expect_error_naming("path=x,readonly=maybe", "readonly");
  expect_error_naming("path=x,cache=directsync", "cache");
  expect_error_naming("path=x,io=aio", "io");
  expect_error_naming("path=x,iops=ten", "iops");
  expect_error_naming("path=x,bw=1.5G", "bw");
  expect_error_naming("path=x,colour=blue", "colour");
  expect_error_naming("readonly=on", "path");
  expect_error_naming("path=x,path=y", "path");
  expect_error_naming("path=x,iops_burst=5", "iops_burst");
  expect_error_naming("path=x,bw=0", "bw");
  expect_error_naming("path=x,serial=123456789012345678901", "serial");
  expect_error_naming("path=", "path");
  expect_error_naming("path=x,l2-cache-size=lots", "l2-cache-size");
  expect_error_naming("path=x,refcount-cache-size=2G", "refcount-cache-size");
  expect_error_naming("path=x,poll-us=1ms", "poll-us");
  expect_error_naming("path=x,poll-us=10001", "poll-us");
  expect_error_naming("path=x,queues=0", "queues");
  expect_error_naming("path=x,queues=17", "queues");
}

TEST(DiskOptions, MalformedStringsAreRejected) {
  EXPECT_FALSE(parse_disk_options(""));
  EXPECT_FALSE(parse_disk_options("path=x,"));
  EXPECT_FALSE(parse_disk_options("path=x,,readonly=on"));
  EXPECT_FALSE(parse_disk_options("=x"));
  EXPECT_FALSE(parse_disk_options("pathx"));
}

}  // namespace
}  // namespace kumo::devices::virtio::block
