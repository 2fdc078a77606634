#include "devices/virtio/net/control_worker.h"

#include <sys/epoll.h>

#include "virtio/buffers.h"

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

Result<std::unique_ptr<ControlWorker>> ControlWorker::start(vio::ActivateContext& context,
                                                            uint16_t index, Execute execute) {
  if (context.queues.size() <= index || !context.queues[index]) {
    return guest_error("virtio-net control queue {} is not enabled", index);
  }
  std::unique_ptr<ControlWorker> w(new ControlWorker(context, index, std::move(execute)));
  w->loop_ = KUMO_TRY(EventLoop::create());
  ControlWorker* self = w.get();
  const int fd = context.queues[index]->notify_fd;
  KUMO_TRY(w->loop_->add(fd, EPOLLIN, [self, fd] {
    drain_eventfd(fd);
    self->process();
  }));
  KUMO_TRY(w->loop_->start("virtio-net-ctl"));
  signal_eventfd(fd);  // requests queued before DRIVER_OK
  return w;
}

ControlWorker::~ControlWorker() { stop(); }

void ControlWorker::stop() {
  if (loop_) {
    loop_->stop();
    loop_.reset();
  }
}

void ControlWorker::broken() {
  broken_ = true;
  ctx_.interrupt->set_needs_reset();
  (void)loop_->modify(ctx_.queues[index_]->notify_fd, 0);
}

void ControlWorker::process() {
  vio::SplitQueue& q = ctx_.queues[index_]->queue;
  bool used = false;
  while (!broken_) {
    auto popped = q.pop();
    if (!popped) {
      broken();
      return;
    }
    if (!*popped) {
      break;
    }
    const vio::DescriptorChain& chain = **popped;
    uint32_t len = 0;
    if (chain.writable_bytes >= 1) {
      auto cmd = parse_control_command(*ctx_.memory, chain);
      const uint8_t ack = cmd ? execute_(*cmd) : kCtrlErr;
      if (!vio::write_buffers(*ctx_.memory, chain.writable, 0, std::span(&ack, 1))) {
        broken();
        return;
      }
      len = 1;
    }
    if (!q.add_used(chain.head, len)) {
      broken();
      return;
    }
    used = true;
  }
  if (used) {
    auto notify = q.needs_interrupt();
    if (!notify) {
      broken();
    } else if (*notify) {
      ctx_.interrupt->signal_used(index_);
    }
  }
}

}  // namespace kumo::devices::virtio::net
