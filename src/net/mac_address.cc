#include "net/mac_address.h"

#include <sys/random.h>

#include <charconv>

namespace kumo::net {

std::string MacAddress::to_string() const {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                     bytes[3], bytes[4], bytes[5]);
}

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac;
  if (text.size() != 17) {
    return invalid_input("MAC address '{}' is not of the form xx:xx:xx:xx:xx:xx", text);
  }
  for (size_t i = 0; i < 6; ++i) {
    const std::string_view group = text.substr(i * 3, 2);
    if (i < 5 && text[i * 3 + 2] != ':') {
      return invalid_input("MAC address '{}' is not of the form xx:xx:xx:xx:xx:xx", text);
    }
    const auto [ptr, ec] = std::from_chars(group.data(), group.data() + 2, mac.bytes[i], 16);
    if (ec != std::errc() || ptr != group.data() + 2) {
      return invalid_input("MAC address '{}' has a bad hex group '{}'", text, group);
    }
  }
  if ((mac.bytes[0] & 1) != 0) {
    return invalid_input("MAC address '{}' is a multicast address", text);
  }
  if (mac == MacAddress{}) {
    return invalid_input("MAC address '{}' is all zeroes", text);
  }
  return mac;
}

MacAddress random_mac() {
  MacAddress mac{{0x52, 0x54, 0x00, 0, 0, 0}};
  uint8_t tail[3] = {};
  if (::getrandom(tail, sizeof(tail), 0) != sizeof(tail)) {
    tail[0] = 0x12;  // getrandom cannot fail for 3 bytes after boot; keep a valid MAC anyway
  }
  mac.bytes[3] = tail[0];
  mac.bytes[4] = tail[1];
  mac.bytes[5] = tail[2];
  return mac;
}

}  // namespace kumo::net
