#pragma once
// The virtio-net control virtqueue request parser (virtio 1.2 §5.1.6.5): one chain is
// `u8 class, u8 command, data...` (device-readable) then `u8 ack` (device-writable).
// Pure; fuzzed by control_command_fuzz.cc.
//
// Guest-controlled: the whole chain. Checks: a writable ack byte (without one the request
// cannot be answered: an error, the chain goes back with length 0), at least class and
// command, data at most kMaxControlData bytes. What the command means is decided by
// decide_control_command(): only VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET is supported (with MQ);
// everything else is answered VIRTIO_NET_ERR, as §5.1.6.5 allows.

#include <cstdint>
#include <optional>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace kumo::devices::virtio::net {

inline constexpr uint8_t kCtrlClassMq = 4;
inline constexpr uint8_t kCtrlMqVqPairsSet = 0;
inline constexpr uint8_t kCtrlOk = 0;
inline constexpr uint8_t kCtrlErr = 1;
inline constexpr uint64_t kMaxControlData = 4096;

struct ControlCommand {
  uint8_t cls = 0;
  uint8_t command = 0;
  std::vector<uint8_t> data;
};

[[nodiscard]] Result<ControlCommand> parse_control_command(
    const memory::GuestMemory& mem, const kumo::virtio::DescriptorChain& chain);

// What to do for `cmd` on a device with `max_pairs` queue pairs (MQ negotiated or not):
// the number of pairs to use (VQ_PAIRS_SET with 1 <= n <= max_pairs), or nullopt: answer
// VIRTIO_NET_ERR.
[[nodiscard]] std::optional<uint16_t> requested_pairs(const ControlCommand& cmd,
                                                      bool mq_negotiated, uint16_t max_pairs);

}  // namespace kumo::devices::virtio::net
