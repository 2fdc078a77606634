#pragma once
// The virtio-net transmit-side parser (virtio 1.2 §5.1.6.2): validates the header a driver
// puts in front of each outgoing frame against the features it negotiated, so the tap only
// ever receives offload requests the guest was granted. Pure; fuzzed by net_header_fuzz.cc.
//
// Guest-controlled: the whole chain. Checks: at least a header and an Ethernet header,
// at most 64 KiB + header, no device-writable buffers, flags only NEEDS_CSUM (and only with
// VIRTIO_NET_F_CSUM), csum_start/csum_offset inside the frame, gso_type allowed by the
// negotiated HOST_TSO4/HOST_TSO6/HOST_ECN (UFO is never offered), GSO only with NEEDS_CSUM
// and a non-zero gso_size.

#include <cstdint>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/descriptor_chain.h"

namespace kumo::devices::virtio::net {

// struct virtio_net_hdr_v1 (§5.1.6), also Linux tun's vnet header with size 12.
struct VnetHeader {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VnetHeader) == 12);

inline constexpr uint8_t kHdrFlagNeedsCsum = 1;
inline constexpr uint8_t kGsoNone = 0;
inline constexpr uint8_t kGsoTcpV4 = 1;
inline constexpr uint8_t kGsoUdp = 3;
inline constexpr uint8_t kGsoTcpV6 = 4;
inline constexpr uint8_t kGsoEcn = 0x80;
inline constexpr uint64_t kMaxFrameBytes = 65536 + 14 + 4;  // GSO super-frame + Ethernet + VLAN

struct TxFrame {
  VnetHeader header{};  // validated copy: send this, not the guest's bytes
  std::vector<kumo::virtio::GuestBuffer> payload;  // frame after the header
  uint64_t payload_bytes = 0;
};

[[nodiscard]] Result<TxFrame> parse_tx_frame(const memory::GuestMemory& mem,
                                             const kumo::virtio::DescriptorChain& chain,
                                             uint64_t negotiated_features);

}  // namespace kumo::devices::virtio::net
