#pragma once
// ControlWorker: serves virtio-net's control virtqueue on its own thread (control requests
// are rare; a thread of their own keeps them off the vCPU and the data-path workers, and
// lets a request start or stop those workers). Each request is parsed
// (parse_control_command), handed to `execute`, and answered with the ack byte it returns
// (a malformed request: VIRTIO_NET_ERR, or length 0 without an ack byte). A broken ring
// sets NEEDS_RESET.
//
// Thread-safety: start/stop from the device; `execute` runs on the worker thread.

#include <cstdint>
#include <functional>
#include <memory>

#include "base/event_loop.h"
#include "devices/virtio/net/control_command.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::net {

class ControlWorker final {
 public:
  using Execute = std::function<uint8_t(const ControlCommand&)>;

  // `context.queues[index]` is the control queue; the context outlives the worker.
  [[nodiscard]] static Result<std::unique_ptr<ControlWorker>> start(
      kumo::virtio::ActivateContext& context, uint16_t index, Execute execute);
  ~ControlWorker();
  void stop();

 private:
  ControlWorker(kumo::virtio::ActivateContext& context, uint16_t index, Execute execute)
      : ctx_(context), index_(index), execute_(std::move(execute)) {}
  void process();
  // NEEDS_RESET, and the queue is no longer listened to.
  void broken();

  kumo::virtio::ActivateContext& ctx_;
  uint16_t index_;
  Execute execute_;
  bool broken_ = false;
  std::unique_ptr<EventLoop> loop_;
};

}  // namespace kumo::devices::virtio::net
