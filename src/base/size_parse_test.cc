#include "base/size_parse.h"

#include <gtest/gtest.h>

namespace kumo {
namespace {

TEST(ParseSize, PlainNumberIsBytes) { EXPECT_EQ(parse_size_bytes("4096").value(), 4096u); }

TEST(ParseSize, SuffixesArePowersOf1024) {
  EXPECT_EQ(parse_size_bytes("2K").value(), 2048u);
  EXPECT_EQ(parse_size_bytes("128M").value(), 128u << 20);
  EXPECT_EQ(parse_size_bytes("1G").value(), 1ull << 30);
  EXPECT_EQ(parse_size_bytes("1GiB").value(), 1ull << 30);
  EXPECT_EQ(parse_size_bytes("3t").value(), 3ull << 40);
}

TEST(ParseSize, MalformedIsInvalidInput) {
  for (const char* bad : {"", "M", "-1", "1.5G", "12Q", "1GG", "0x10", " 1"}) {
    auto r = parse_size_bytes(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().kind, ErrorKind::kInvalidInput) << bad;
  }
}

TEST(ParseSize, OverflowIsRejected) {
  EXPECT_FALSE(parse_size_bytes("99999999999999999999"));
  EXPECT_FALSE(parse_size_bytes("17179869184G"));
}

}  // namespace
}  // namespace kumo
