#pragma once
// NetWorker: moves frames between one of virtio-net's queue pairs (receive 2k, transmit
// 2k+1) and a FrameBackend (one tap queue) on its own thread.
//
// Receive: when the back end has a frame and the driver posted buffers (RxBuffers: one chain,
// or with MRG_RXBUF enough chains for the largest frame), the frame is read straight into
// the guest's buffers (vnet header first, num_buffers set to the chains it filled). Without
// enough posted buffers the worker stops polling the back end until the driver notifies. A
// frame longer than the buffers is dropped (counted), not truncated.
// Transmit: each chain is validated by parse_tx_frame (negotiated offloads only) and written
// as one frame with the validated header copy; invalid frames are dropped (used len 0).
// Each direction has its own rate limiter (bytes and frames), owned by the device and shared
// by all its pairs, so a limit holds for the whole NIC and survives a reset; receive is
// charged after the frame is delivered (its size is unknown before), which may overshoot by
// one frame per pair.
// A broken ring sets NEEDS_RESET.
//
// stop() gives the receive chains it holds back to the ring (undo_pop), so the pair can be
// started again later (multiqueue) without losing the driver's buffers.
//
// Thread-safety: start/stop from the device (vCPU or control thread); the rest on the worker
// thread. The context (owned by the device) outlives the worker; the worker uses only its
// pair's queues.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "base/event_loop.h"
#include "base/token_bucket.h"
#include "base/unique_fd.h"
#include "devices/virtio/net/rx_buffers.h"
#include "net/frame_backend.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::net {

struct NetWorkerSettings {
  std::optional<BucketConfig> bandwidth;  // bytes per second, each direction
  std::optional<BucketConfig> ops;        // frames per second, each direction
  uint64_t poll_ns = 0;  // busy-polling window after the last work (EventLoop::set_poller)
};

// The device's limiters, one per direction (they outlive its workers).
struct NetLimiters {
  SharedRateLimiter& rx;
  SharedRateLimiter& tx;
};

struct NetCounters {
  std::atomic<uint64_t> rx_frames{0};
  std::atomic<uint64_t> tx_frames{0};
  std::atomic<uint64_t> tx_dropped{0};
  std::atomic<uint64_t> rx_dropped{0};
};

class NetWorker final {
 public:
  [[nodiscard]] static Result<std::unique_ptr<NetWorker>> start(
      kumo::virtio::ActivateContext& context, uint16_t pair, kumo::net::FrameBackend& backend,
      const NetWorkerSettings& settings, const NetLimiters& limiters, NetCounters& counters);
  ~NetWorker();
  void stop();

 private:
  NetWorker(kumo::virtio::ActivateContext& context, uint16_t pair,
            kumo::net::FrameBackend& backend, const NetLimiters& limiters,
            NetCounters& counters);
  void process_rx();
  // Pops receive chains until rx_buffers_ is ready; false when the ring ran dry first
  // (rx_no_buffers_) or broke. `used` is set when an unusable chain was handed back.
  bool fill_rx_buffers(bool& used);
  void process_tx();
  void on_backend();
  // The event loop's poller: transmit chains, and receive buffers after running out.
  bool poll();
  // Turns the driver's notifications back on where the worker waits for them; true when
  // chains arrived meanwhile.
  bool prepare_sleep();
  // Enables notifications on `q` (sets `enabled`); whether chains are available.
  bool wake_on_notify(kumo::virtio::SplitQueue& q, bool& enabled);
  void update_interest();
  void signal(kumo::virtio::SplitQueue& q, uint16_t index, bool& pending);
  void broken();
  // Turns the driver's notifications for `q` off (used.flags NO_NOTIFY / avail_event) while
  // the worker is busy with it, as QEMU does; prepare_sleep() turns them back on (and
  // re-checks the ring) only when the worker would otherwise sleep on that queue.
  bool quiet(kumo::virtio::SplitQueue& q, bool& enabled);
  static void arm(int timer_fd, uint64_t ns);

  kumo::virtio::ActivateContext& ctx_;
  uint16_t rx_index_;
  uint16_t tx_index_;
  kumo::virtio::SplitQueue* rx_;
  kumo::virtio::SplitQueue* tx_;
  kumo::net::FrameBackend& backend_;
  NetCounters& counters_;
  RxBuffers rx_buffers_;
  std::vector<kumo::virtio::GuestBuffer> rx_first_;  // the last frame's first chain
  SharedRateLimiter& rx_limit_;
  SharedRateLimiter& tx_limit_;
  UniqueFd rx_timer_;
  UniqueFd tx_timer_;
  std::unique_ptr<EventLoop> loop_;
  uint32_t interest_ = 0;
  bool rx_no_buffers_ = false;
  bool rx_throttled_ = false;
  bool tx_throttled_ = false;
  bool tx_backend_full_ = false;
  bool broken_ = false;
  bool rx_notify_ = true;  // the rings start with notifications on (used.flags 0)
  bool tx_notify_ = true;
};

}  // namespace kumo::devices::virtio::net
