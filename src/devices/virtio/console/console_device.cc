#include "devices/virtio/console/console_device.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "virtio/buffers.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::console {

namespace vio = kumo::virtio;

Result<std::vector<uint8_t>> transmit_bytes(const memory::GuestMemory& mem,
                                            const vio::DescriptorChain& chain) {
  const uint64_t len = std::min<uint64_t>(chain.readable_bytes, kMaxTransmitBytes);
  std::vector<uint8_t> out(len);
  KUMO_TRY(vio::read_buffers(mem, chain.readable, 0, out));
  return out;
}

VirtioConsole::VirtioConsole(int input_fd, int output_fd, uint16_t cols, uint16_t rows)
    : input_fd_(input_fd), output_fd_(output_fd) {
  std::memcpy(&config_[0], &cols, 2);
  std::memcpy(&config_[2], &rows, 2);
  const uint32_t max_ports = 1;
  std::memcpy(&config_[4], &max_ports, 4);
  if (input_fd_ >= 0) {
    const int flags = ::fcntl(input_fd_, F_GETFL);
    if (flags >= 0) ::fcntl(input_fd_, F_SETFL, flags | O_NONBLOCK);
  }
}

VirtioConsole::~VirtioConsole() { reset(); }

uint16_t VirtioConsole::device_type() const { return vio::kDeviceIdConsole; }
uint64_t VirtioConsole::device_features() const { return vio::feature_bit(kFeatureEmergWrite); }

void VirtioConsole::read_config(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  for (size_t i = 0; i < data.size(); ++i) {
    if (offset + i < 8) data[i] = config_[offset + i];  // emerg_wr reads as zero
  }
}

void VirtioConsole::write_config(uint64_t offset, std::span<const uint8_t> data) {
  // §5.3.4: a write to emerg_wr (offset 8) outputs one character.
  if (offset == 8 && !data.empty()) {
    write_all(data.first(1));
  }
}

void VirtioConsole::write_all(std::span<const uint8_t> bytes) {
  std::lock_guard lock(output_mutex_);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(output_fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd pfd{output_fd_, POLLOUT, 0};
        (void)::poll(&pfd, 1, 100);
        continue;
      }
      return;  // output gone: drop (the guest must not be able to stall on it)
    }
    done += static_cast<size_t>(n);
  }
}

Status VirtioConsole::activate(vio::ActivateContext context) {
  reset();
  if (context.queues.size() < 2 || !context.queues[0] || !context.queues[1]) {
    return guest_error("virtio-console activated without receiveq0 and transmitq0");
  }
  ctx_ = std::move(context);
  broken_ = false;
  rx_waiting_buffers_ = false;
  loop_ = KUMO_TRY(EventLoop::create());
  const int rx_fd = ctx_.queues[0]->notify_fd;
  const int tx_fd = ctx_.queues[1]->notify_fd;
  KUMO_TRY(loop_->add(rx_fd, EPOLLIN, [this, rx_fd] {
    drain_eventfd(rx_fd);
    rx_waiting_buffers_ = false;
    process_rx();
  }));
  KUMO_TRY(loop_->add(tx_fd, EPOLLIN, [this, tx_fd] {
    drain_eventfd(tx_fd);
    process_tx();
  }));
  input_polled_ = false;
  if (input_fd_ >= 0 && !input_eof_) {
    Status polled = loop_->add(input_fd_, EPOLLIN, [this] { process_rx(); });
    if (polled) {
      input_polled_ = true;
    } else if (polled.error().errno_value != EPERM) {
      return polled;
    }
    // EPERM: a regular file or /dev/null, which epoll refuses. It is always readable, so it
    // is read whenever the guest posts receive buffers.
  }
  KUMO_TRY(loop_->start("virtio-console"));
  signal_eventfd(tx_fd);
  if (input_fd_ >= 0 && !input_polled_) {
    signal_eventfd(rx_fd);
  }
  return {};
}

void VirtioConsole::broken() {
  broken_ = true;
  ctx_.interrupt->set_needs_reset();
  if (input_polled_ && !input_eof_) (void)loop_->modify(input_fd_, 0);
}

void VirtioConsole::process_rx() {
  if (input_fd_ < 0 || input_eof_ || broken_) return;
  auto& q = ctx_.queues[0]->queue;
  bool used = false;
  for (;;) {
    auto popped = q.pop();
    if (!popped) {
      broken();
      return;
    }
    if (!*popped) {
      auto more = q.set_notifications(true);
      if (more && *more) continue;
      rx_waiting_buffers_ = true;
      break;
    }
    auto iov = vio::host_iovecs(*ctx_.memory, (*popped)->writable);
    if (!iov || iov->empty()) {
      if (!q.add_used((*popped)->head, 0)) return broken();
      used = true;
      continue;
    }
    const ssize_t n = ::readv(input_fd_, iov->data(), static_cast<int>(iov->size()));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      q.undo_pop();
      break;
    }
    if (n <= 0) {
      q.undo_pop();
      input_eof_ = true;  // EOF or error: stop reading input
      break;
    }
    if (!q.add_used((*popped)->head, static_cast<uint32_t>(n))) return broken();
    used = true;
  }
  // Stop polling input while the guest has no buffers (level-triggered epoll would spin).
  if (input_polled_) {
    (void)loop_->modify(input_fd_, rx_waiting_buffers_ || input_eof_ ? 0U : uint32_t{EPOLLIN});
  }
  if (used) {
    auto notify = q.needs_interrupt();
    if (notify && *notify) ctx_.interrupt->signal_used(0);
  }
}

void VirtioConsole::process_tx() {
  if (broken_) return;
  auto& q = ctx_.queues[1]->queue;
  bool used = false;
  for (;;) {
    auto popped = q.pop();
    if (!popped) return broken();
    if (!*popped) {
      auto more = q.set_notifications(true);
      if (more && *more) continue;
      break;
    }
    if (auto bytes = transmit_bytes(*ctx_.memory, **popped)) {
      write_all(*bytes);
    }
    if (!q.add_used((*popped)->head, 0)) return broken();
    used = true;
  }
  if (used) {
    auto notify = q.needs_interrupt();
    if (notify && *notify) ctx_.interrupt->signal_used(1);
  }
}

void VirtioConsole::reset() {
  if (loop_) {
    loop_->stop();
    loop_.reset();
  }
  ctx_ = vio::ActivateContext{};
}

}  // namespace kumo::devices::virtio::console
