#pragma once
// VirtioNet: the virtio-net device (virtio 1.2 §5.1), one receive/transmit queue pair, on a
// FrameBackend (a tap in production).
//
// Offers MAC, STATUS, CSUM, GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, HOST_TSO4/6, HOST_ECN,
// MRG_RXBUF (no UFO, no control queue). Feature dependencies of §5.1.3.1 are enforced at
// FEATURES_OK. On activation the back end's offloads are set to exactly the negotiated
// GUEST_* features, so the host never hands the guest a frame it did not agree to; transmit
// headers are checked against the negotiated HOST_* features (net_header.h).
//
// Thread-safety: as VirtioDevice; set_link() may be called from any thread.

#include <memory>
#include <mutex>

#include "devices/virtio/net/net_config.h"
#include "devices/virtio/net/net_worker.h"
#include "net/frame_backend.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::net {

inline constexpr uint16_t kQueueSize = 256;

class VirtioNet final : public kumo::virtio::VirtioDevice {
 public:
  VirtioNet(std::unique_ptr<kumo::net::FrameBackend> backend, const kumo::net::MacAddress& mac,
            NetWorkerSettings settings);
  ~VirtioNet() override;

  [[nodiscard]] uint16_t device_type() const override;
  [[nodiscard]] uint64_t device_features() const override;
  [[nodiscard]] uint16_t num_queues() const override { return 2; }
  [[nodiscard]] uint16_t max_queue_size() const override { return kQueueSize; }
  [[nodiscard]] uint32_t pci_class() const override { return 0x020000; }  // Ethernet
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  [[nodiscard]] Status accept_features(uint64_t features) override;
  [[nodiscard]] Status activate(kumo::virtio::ActivateContext context) override;
  void reset() override;

  // Link status as the guest sees it (VIRTIO_NET_S_LINK_UP); sends a config interrupt.
  void set_link(bool up);
  [[nodiscard]] const NetCounters& counters() const { return counters_; }

 private:
  std::unique_ptr<kumo::net::FrameBackend> backend_;
  NetWorkerSettings settings_;
  std::mutex config_mutex_;
  NetConfigSpace config_{};
  std::shared_ptr<kumo::virtio::VirtioInterrupt> interrupt_;
  NetCounters counters_;
  std::unique_ptr<NetWorker> worker_;
};

// Opens the host side for `options`: creates the tap (bridge= also enslaves it) and checks
// that the guest MAC is not used by a host interface. Errors say what to fix.
[[nodiscard]] Result<std::unique_ptr<kumo::net::FrameBackend>> open_tap_backend(
    const NetOptions& options, const kumo::net::MacAddress& mac);

}  // namespace kumo::devices::virtio::net
