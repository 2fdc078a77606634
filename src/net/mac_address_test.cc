#include "net/mac_address.h"

#include <gtest/gtest.h>

namespace kumo::net {
namespace {

TEST(MacAddress, ParsesAndFormats) {
  auto mac = parse_mac("52:54:00:AB:cd:0f");
  ASSERT_TRUE(mac);
  EXPECT_EQ(mac->to_string(), "52:54:00:ab:cd:0f");
}

TEST(MacAddress, RejectsMalformedMulticastAndZero) {
  EXPECT_FALSE(parse_mac("52:54:00:ab:cd"));
  EXPECT_FALSE(parse_mac("52-54-00-ab-cd-0f"));
  EXPECT_FALSE(parse_mac("52:54:00:ab:cd:0g"));
  EXPECT_FALSE(parse_mac("01:00:5e:00:00:01"));
  EXPECT_FALSE(parse_mac("00:00:00:00:00:00"));
}

TEST(MacAddress, RandomIsLocallyAdministeredUnicast) {
  const MacAddress mac = random_mac();
  EXPECT_EQ(mac.bytes[0], 0x52);
  EXPECT_EQ(mac.bytes[0] & 1, 0);
}

}  // namespace
}  // namespace kumo::net
