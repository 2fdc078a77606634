#include "devices/virtio/net/rx_buffers.h"

#include <gtest/gtest.h>

namespace kumo::devices::virtio::net {
namespace {

namespace vio = kumo::virtio;

// A chain of one writable buffer of `len` bytes at a fake address; its iovec points at `host`.
void add_chain(RxBuffers& rx, uint16_t head, uint32_t len, uint8_t* host) {
  vio::DescriptorChain chain;
  chain.head = head;
  chain.writable.push_back(vio::GuestBuffer{memory::GuestAddress(0x1000ULL * head), len});
  chain.writable_bytes = len;
  rx.add(std::move(chain), {iovec{host, len}});
}

TEST(RxBuffers, WithoutMergingAFrameGoesIntoTheOldestChain) {
  RxBuffers rx(false, 1530);
  uint8_t a[100], b[100];
  EXPECT_FALSE(rx.ready());
  add_chain(rx, 3, 100, a);
  add_chain(rx, 4, 100, b);
  ASSERT_TRUE(rx.ready());
  auto iov = rx.read_iovecs();
  ASSERT_EQ(iov.size(), 2u);  // the chain, then the overflow byte
  EXPECT_EQ(iov[0].iov_base, a);
  EXPECT_EQ(iov[1].iov_len, 1u);
  std::vector<vio::GuestBuffer> first;
  auto used = rx.take(60, first);
  ASSERT_EQ(used.size(), 1u);
  EXPECT_EQ(used[0].id, 3u);
  EXPECT_EQ(used[0].len, 60u);
  EXPECT_EQ(first[0].addr.raw(), 0x3000u);
  EXPECT_EQ(rx.chains(), 1u);
}

TEST(RxBuffers, AFrameFillingTheOverflowByteIsNotTaken) {
  RxBuffers rx(false, 1530);
  uint8_t a[100];
  add_chain(rx, 0, 100, a);
  (void)rx.read_iovecs();
  std::vector<vio::GuestBuffer> first;
  EXPECT_TRUE(rx.take(101, first).empty());
  EXPECT_EQ(rx.chains(), 1u);
  (void)rx.read_iovecs();
  EXPECT_EQ(rx.take(100, first).size(), 1u);  // exactly full fits
  EXPECT_EQ(rx.chains(), 0u);
}

TEST(RxBuffers, MergingSpreadsAFrameOverChainsInOrder) {
  RxBuffers rx(true, 1000);
  static uint8_t host[4][300];
  for (uint16_t i = 0; i < 3; ++i) add_chain(rx, i, 300, host[i]);
  EXPECT_FALSE(rx.ready());  // 900 < 1000
  add_chain(rx, 3, 300, host[3]);
  ASSERT_TRUE(rx.ready());
  EXPECT_EQ(rx.read_iovecs().size(), 5u);
  std::vector<vio::GuestBuffer> first;
  auto used = rx.take(650, first);
  ASSERT_EQ(used.size(), 3u);
  EXPECT_EQ(used[0].len, 300u);
  EXPECT_EQ(used[1].len, 300u);
  EXPECT_EQ(used[2].len, 50u);
  EXPECT_EQ(used[2].id, 2u);
  EXPECT_EQ(first[0].addr.raw(), 0u);
  EXPECT_EQ(rx.chains(), 1u);
  EXPECT_FALSE(rx.ready());
}

TEST(RxBuffers, OneReadNeverHasMoreThanIovMaxIovecs) {
  RxBuffers rx(true, 1 << 20);
  static uint8_t host[1100][16];
  for (uint16_t i = 0; i < 1100 && !rx.ready(); ++i) add_chain(rx, i, 16, host[i]);
  EXPECT_EQ(rx.chains(), 1023u);  // ready with 1023 iovecs + the overflow byte
  EXPECT_EQ(rx.read_iovecs().size(), 1024u);
  std::vector<vio::GuestBuffer> first;
  EXPECT_TRUE(rx.take(1023 * 16 + 1, first).empty());
  (void)rx.read_iovecs();
  EXPECT_EQ(rx.take(1023 * 16, first).size(), 1023u);
}

TEST(RxBuffers, DropOldestHandsBackAnEmptyChain) {
  RxBuffers rx(true, 10);
  uint8_t a[16], b[16];
  add_chain(rx, 7, 16, a);
  add_chain(rx, 8, 16, b);
  const vio::UsedElement e = rx.drop_oldest();
  EXPECT_EQ(e.id, 7u);
  EXPECT_EQ(e.len, 0u);
  EXPECT_EQ(rx.chains(), 1u);
  EXPECT_EQ(rx.read_iovecs()[0].iov_base, b);
}

}  // namespace
}  // namespace kumo::devices::virtio::net
