#include "devices/virtio/net/net_header.h"

#include "devices/virtio/net/net_config.h"
#include "virtio/buffers.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

Result<TxFrame> parse_tx_frame(const memory::GuestMemory& mem, const vio::DescriptorChain& chain,
                               uint64_t features) {
  auto has = [features](uint32_t bit) { return (features & vio::feature_bit(bit)) != 0; };
  if (!chain.writable.empty()) {
    return guest_error("transmit chain has device-writable buffers");
  }
  constexpr uint64_t kEthernetHeader = 14;
  if (chain.readable_bytes < sizeof(VnetHeader) + kEthernetHeader) {
    return guest_error("transmit frame of {} bytes is shorter than its headers",
                       chain.readable_bytes);
  }
  TxFrame frame;
  frame.payload_bytes = chain.readable_bytes - sizeof(VnetHeader);
  if (frame.payload_bytes > kMaxFrameBytes) {
    return guest_error("transmit frame of {} bytes is too long", frame.payload_bytes);
  }
  KUMO_TRY(vio::read_buffers(mem, chain.readable, 0,
                             std::span(reinterpret_cast<uint8_t*>(&frame.header),
                                       sizeof(VnetHeader))));
  VnetHeader& h = frame.header;
  if ((h.flags & ~kHdrFlagNeedsCsum) != 0) {
    return guest_error("transmit header flags {:#x} are not allowed", h.flags);
  }
  if ((h.flags & kHdrFlagNeedsCsum) != 0) {
    if (!has(kFeatureCsum)) {
      return guest_error("checksum offload requested without VIRTIO_NET_F_CSUM");
    }
    if (uint64_t{h.csum_start} + h.csum_offset + 2 > frame.payload_bytes) {
      return guest_error("checksum at {}+{} lies outside the {}-byte frame", h.csum_start,
                         h.csum_offset, frame.payload_bytes);
    }
  }
  const uint8_t gso = static_cast<uint8_t>(h.gso_type & ~kGsoEcn);
  if (gso != kGsoNone) {
    const bool allowed = (gso == kGsoTcpV4 && has(kFeatureHostTso4)) ||
                         (gso == kGsoTcpV6 && has(kFeatureHostTso6));
    if (!allowed) {
      return guest_error("segmentation offload type {} was not negotiated", h.gso_type);
    }
    if ((h.gso_type & kGsoEcn) != 0 && !has(kFeatureHostEcn)) {
      return guest_error("ECN segmentation without VIRTIO_NET_F_HOST_ECN");
    }
    if ((h.flags & kHdrFlagNeedsCsum) == 0 || h.gso_size == 0) {
      return guest_error("segmentation offload without checksum offload or segment size");
    }
  } else if ((h.gso_type & kGsoEcn) != 0) {
    return guest_error("ECN bit without segmentation offload");
  }
  h.num_buffers = 0;  // transmit: reserved
  frame.payload = vio::slice_buffers(chain.readable, sizeof(VnetHeader), frame.payload_bytes);
  return frame;
}

}  // namespace kumo::devices::virtio::net
