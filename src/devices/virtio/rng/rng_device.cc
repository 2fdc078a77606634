#include "devices/virtio/rng/rng_device.h"

#include <sys/epoll.h>
#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "virtio/buffers.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::rng {

namespace vio = kumo::virtio;

Result<uint32_t> fill_entropy(const memory::GuestMemory& mem, const vio::DescriptorChain& chain) {
  const auto len = static_cast<uint32_t>(std::min<uint64_t>(chain.writable_bytes, kMaxRequestBytes));
  std::vector<uint8_t> bytes(len);
  size_t done = 0;
  while (done < len) {
    const ssize_t n = ::getrandom(bytes.data() + done, len - done, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return host_error("getrandom");
    }
    done += static_cast<size_t>(n);
  }
  KUMO_TRY(vio::write_buffers(mem, chain.writable, 0, bytes));
  return len;
}

VirtioRng::~VirtioRng() { reset(); }

uint16_t VirtioRng::device_type() const { return vio::kDeviceIdRng; }

void VirtioRng::read_config(uint64_t, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
}

Status VirtioRng::activate(vio::ActivateContext context) {
  reset();
  if (context.queues.empty() || !context.queues[0]) {
    return guest_error("virtio-rng activated without its queue");
  }
  ctx_ = std::move(context);
  broken_ = false;
  loop_ = KUMO_TRY(EventLoop::create());
  const int fd = ctx_.queues[0]->notify_fd;
  KUMO_TRY(loop_->add(fd, EPOLLIN, [this, fd] {
    drain_eventfd(fd);
    process();
  }));
  KUMO_TRY(loop_->start("virtio-rng"));
  signal_eventfd(fd);
  return {};
}

void VirtioRng::process() {
  auto& q = ctx_.queues[0]->queue;
  bool used = false;
  while (!broken_) {
    auto popped = q.pop();
    if (!popped) {
      broken_ = true;
      ctx_.interrupt->set_needs_reset();
      return;
    }
    if (!*popped) {
      auto more = q.set_notifications(true);
      if (more && *more) continue;
      break;
    }
    auto written = fill_entropy(*ctx_.memory, **popped);
    if (!q.add_used((*popped)->head, written ? *written : 0)) {
      broken_ = true;
      ctx_.interrupt->set_needs_reset();
      return;
    }
    used = true;
  }
  if (used) {
    auto notify = q.needs_interrupt();
    if (notify && *notify) ctx_.interrupt->signal_used(0);
  }
}

void VirtioRng::reset() {
  if (loop_) {
    loop_->stop();
    loop_.reset();
  }
  ctx_ = vio::ActivateContext{};
}

}  // namespace kumo::devices::virtio::rng
