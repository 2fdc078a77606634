#pragma once
// BlockWorker: serves one virtio-blk request queue on its own thread (an EventLoop): pops
// chains, parses them, submits them to the BlockBackend's asynchronous path (many requests
// in flight), reaps completions, writes status bytes, publishes used elements and
// interrupts. A rate limiter, when configured, holds requests back with a timerfd.
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
  std::optional<BucketConfig> ops;
  std::optional<BucketConfig> bandwidth;
  uint64_t poll_ns = 0;  // busy-polling window after the last work (EventLoop::set_poller)
};

class BlockWorker final {
 public:
  [[nodiscard]] static Result<std::unique_ptr<BlockWorker>> start(
      kumo::virtio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
      const BlockWorkerSettings& settings);
  ~BlockWorker();
  void stop();

 private:
  struct InFlight {
    uint16_t head = 0;
    memory::GuestAddress status;
    uint32_t used_len = 0;  // bytes written to the guest on success
    int64_t expected = 0;   // completion result meaning full success
    std::vector<iovec> iov;
  };

  BlockWorker(kumo::virtio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
              const BlockWorkerSettings& settings);
  void on_notify();
  void on_completion();
  void on_timer();
  void process_queue();
  // The event loop's poller: new chains in the ring (checked without a notification).
  bool poll();
  // Turns the driver's notifications back on; true when chains arrived meanwhile.
  bool prepare_sleep();
  // Returns false when the request must wait (rate limiter or full back end).
  bool handle(const kumo::virtio::DescriptorChain& chain);
  // Writes the status byte (when the chain has one) and publishes the used element.
  void complete(uint16_t head, std::optional<memory::GuestAddress> status, uint8_t value,
                uint32_t used_len);
  void reap_all();
  void broken(const Error& error);
  void arm_timer(uint64_t ns);

  kumo::virtio::ActivateContext ctx_;
  kumo::virtio::SplitQueue* queue_;
  int notify_fd_;
  std::shared_ptr<kumo::block::BlockBackend> backend_;
  BlockWorkerSettings settings_;
  RateLimiter limiter_;
  UniqueFd timer_;
  std::unique_ptr<EventLoop> loop_;
  std::optional<kumo::virtio::DescriptorChain> deferred_;
  bool waiting_timer_ = false;
  bool waiting_backend_ = false;
  bool broken_ = false;
  bool notify_on_ = true;  // the ring starts with notifications on (used.flags 0)
  bool used_pending_ = false;
  uint64_t next_cookie_ = 1;
  std::map<uint64_t, std::unique_ptr<InFlight>> in_flight_;
};

}  // namespace kumo::devices::virtio::block
