#pragma once
// VirtioNet: the virtio-net device (virtio 1.2 §5.1) on one FrameBackend per queue pair (a
// tap, or one queue of a multi-queue tap, in production).
//
// Offers MAC, STATUS, CSUM, GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN, HOST_TSO4/6, HOST_ECN,
// MRG_RXBUF (no UFO); with more than one pair also CTRL_VQ and MQ (§5.1.6.5.5): the queues
// are receiveq1, transmitq1, ..., then the control queue; max_virtqueue_pairs is in the
// config space. Each active pair has its own NetWorker thread; the first pair is active
// after DRIVER_OK, VQ_PAIRS_SET (on the ControlWorker thread) starts or stops the others
// and attaches or detaches their tap queues, so the host spreads frames over exactly the
// active ones. Other control commands are answered VIRTIO_NET_ERR. Feature dependencies of §5.1.3.1 are enforced at
// FEATURES_OK. On activation the back end's offloads are set to exactly the negotiated
// GUEST_* features, so the host never hands the guest a frame it did not agree to; transmit
// headers are checked against the negotiated HOST_* features (net_header.h).
//
// Thread-safety: as VirtioDevice; set_link() may be called from any thread.

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "devices/virtio/net/control_worker.h"
#include "devices/virtio/net/net_config.h"
#include "devices/virtio/net/net_worker.h"
#include "net/frame_backend.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::net {

inline constexpr uint16_t kQueueSize = 256;

using FrameBackends = std::vector<std::unique_ptr<kumo::net::FrameBackend>>;

class VirtioNet final : public kumo::virtio::VirtioDevice {
 public:
  // One back end per queue pair (at least one).
  VirtioNet(FrameBackends backends, const kumo::net::MacAddress& mac, NetWorkerSettings settings);
  VirtioNet(std::unique_ptr<kumo::net::FrameBackend> backend, const kumo::net::MacAddress& mac,
            NetWorkerSettings settings);
  ~VirtioNet() override;

  [[nodiscard]] uint16_t device_type() const override;
  [[nodiscard]] uint64_t device_features() const override;
  [[nodiscard]] uint16_t num_queues() const override {
    return max_pairs() > 1 ? static_cast<uint16_t>(2 * max_pairs() + 1) : 2;
  }
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
  // Queue pairs with a running worker (1 after DRIVER_OK until VQ_PAIRS_SET; 0 when reset).
  [[nodiscard]] size_t active_pairs() const { return active_pairs_.load(); }

 private:
  [[nodiscard]] uint16_t max_pairs() const { return static_cast<uint16_t>(backends_.size()); }
  // Runs the first `pairs` workers, stops the others (tap queues follow).
  [[nodiscard]] Status set_active_pairs(size_t pairs);
  [[nodiscard]] Status set_backend_enabled(size_t pair, bool enabled);
  // A control request, on the control worker's thread: the ack byte.
  uint8_t execute(const ControlCommand& cmd);

  FrameBackends backends_;
  std::vector<bool> backend_enabled_;  // tap queues start attached
  NetWorkerSettings settings_;
  SharedRateLimiter rx_limit_;  // the NIC's, across pairs and resets
  SharedRateLimiter tx_limit_;
  std::mutex config_mutex_;
  NetConfigSpace config_{};
  std::shared_ptr<kumo::virtio::VirtioInterrupt> interrupt_;
  NetCounters counters_;
  kumo::virtio::ActivateContext context_;  // the queues, while active
  std::vector<std::unique_ptr<NetWorker>> workers_;  // index = pair
  std::atomic<size_t> active_pairs_{0};
  std::unique_ptr<ControlWorker> control_;
};

// Opens the host side for `options`: creates the tap with options.queues queues (bridge=
// also enslaves it) and checks that the guest MAC is not used by a host interface. Errors
// say what to fix.
[[nodiscard]] Result<FrameBackends> open_tap_backends(const NetOptions& options,
                                                      const kumo::net::MacAddress& mac);

}  // namespace kumo::devices::virtio::net
