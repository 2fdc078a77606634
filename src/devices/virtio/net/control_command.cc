#include "devices/virtio/net/control_command.h"

#include <cstring>

#include "virtio/buffers.h"

namespace kumo::devices::virtio::net {

Result<ControlCommand> parse_control_command(const memory::GuestMemory& mem,
                                             const kumo::virtio::DescriptorChain& chain) {
  if (chain.writable_bytes < 1) {
    return guest_error("control request has no writable ack byte");
  }
  if (chain.readable_bytes < 2) {
    return guest_error("control request of {} bytes has no class and command",
                       chain.readable_bytes);
  }
  if (chain.readable_bytes - 2 > kMaxControlData) {
    return guest_error("control request carries {} bytes of data (at most {})",
                       chain.readable_bytes - 2, kMaxControlData);
  }
  std::vector<uint8_t> bytes(chain.readable_bytes);
  KUMO_TRY(kumo::virtio::read_buffers(mem, chain.readable, 0, bytes));
  ControlCommand cmd;
  cmd.cls = bytes[0];
  cmd.command = bytes[1];
  cmd.data.assign(bytes.begin() + 2, bytes.end());
  return cmd;
}

std::optional<uint16_t> requested_pairs(const ControlCommand& cmd, bool mq_negotiated,
                                        uint16_t max_pairs) {
  if (!mq_negotiated || cmd.cls != kCtrlClassMq || cmd.command != kCtrlMqVqPairsSet ||
      cmd.data.size() != 2) {
    return std::nullopt;
  }
  uint16_t pairs = 0;
  std::memcpy(&pairs, cmd.data.data(), 2);  // le16; x86 only
  if (pairs < 1 || pairs > max_pairs) {
    return std::nullopt;
  }
  return pairs;
}

}  // namespace kumo::devices::virtio::net
