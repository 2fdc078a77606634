#pragma once
// BlockWorker: serves a virtio-blk device's request queues (one, or several with MQ) on one
// thread (an EventLoop), as QEMU's iothread does: pops chains, parses them, submits them to
// the BlockBackend's asynchronous path (many requests in flight; the back end is not
// thread-safe, so one thread per device), reaps completions, writes status bytes,
// publishes used elements on the queue each request came from and interrupts. Queues are
// served in turn, each drained per pass. A rate limiter, when configured, holds requests
// back with a timerfd; the limiter is the device's (it outlives the worker, so a reset does
// not refill it).
//
// Errors: a malformed request gets an error status; a broken ring (bad chain, bad index)
// sets NEEDS_RESET and the worker stops using the queue.
//
// Thread-safety: created, started and stopped by the device on vCPU threads; everything
// else runs on the worker thread. stop() returns after every in-flight request completed.

#include <sys/uio.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/token_bucket.h"
#include "base/unique_fd.h"
#include "block/block_backend.h"
#include "devices/virtio/block/block_request.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::block {

struct BlockWorkerSettings {
  BlockLimits limits;
  std::string serial;
  uint64_t poll_ns = 0;  // busy-polling window after the last work (EventLoop::set_poller)
};

class BlockWorker final {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BlockWorker>> start(
      kumo::virtio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
      const BlockWorkerSettings& settings, RateLimiter& limiter);
  ~BlockWorker();
  void stop();

 private:
  struct Queue {
    uint16_t index = 0;  // the virtqueue number (interrupt vector selection)
    kumo::virtio::SplitQueue* ring = nullptr;
    int notify_fd = -1;
    bool notify_on = true;  // rings start with notifications on (used.flags 0)
    bool used_pending = false;
  };
  struct InFlight {
    size_t queue = 0;  // position in queues_
    uint16_t head = 0;
    memory::GuestAddress status;
    uint32_t used_len = 0;  // bytes written to the guest on success
    int64_t expected = 0;   // completion result meaning full success
    std::vector<iovec> iov;
  };

  BlockWorker(kumo::virtio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
              const BlockWorkerSettings& settings, RateLimiter& limiter);
  void on_completion();
  void on_timer();
  // Pops and submits from every queue until each is empty or the worker must wait.
  void process_queues();
  // Interrupts for the queues that got used elements since the last call.
  void signal_used();
  // The event loop's poller: new chains in the ring (checked without a notification).
  bool poll();
  // Turns the driver's notifications back on; true when chains arrived meanwhile.
  bool prepare_sleep();
  // Returns false when the request must wait (rate limiter or full back end).
  bool handle(size_t queue, const kumo::virtio::DescriptorChain& chain);
  // Writes the status byte (when the chain has one) and publishes the used element.
  void complete(size_t queue, uint16_t head, std::optional<memory::GuestAddress> status,
                uint8_t value, uint32_t used_len);
  void reap_all();
  void broken(const Error& error);
  void arm_timer(uint64_t ns);

  kumo::virtio::ActivateContext ctx_;
  std::vector<Queue> queues_;  // the enabled ones, queue 0 first
  std::shared_ptr<kumo::block::BlockBackend> backend_;
  BlockWorkerSettings settings_;
  RateLimiter& limiter_;
  UniqueFd timer_;
  std::unique_ptr<EventLoop> loop_;
  // A popped chain that had to wait, and its queue (served first when the wait ends).
  std::optional<kumo::virtio::DescriptorChain> deferred_;
  size_t deferred_queue_ = 0;
  bool waiting_timer_ = false;
  bool waiting_backend_ = false;
  bool broken_ = false;
  uint64_t next_cookie_ = 1;
  std::map<uint64_t, std::unique_ptr<InFlight>> in_flight_;
};

}  // namespace kumo::devices::virtio::block
