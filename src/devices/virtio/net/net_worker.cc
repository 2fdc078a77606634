#include "devices/virtio/net/net_worker.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstddef>

#include "devices/virtio/net/net_config.h"
#include "devices/virtio/net/net_header.h"
#include "virtio/buffers.h"

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

namespace {

bool mergeable(uint64_t features) { return (features & vio::feature_bit(kFeatureMrgRxbuf)) != 0; }

// The largest frame the tap may hand over, header included: a GSO super-frame when the
// guest took TSO (the tap's offloads are exactly the negotiated ones), else an MTU-sized
// frame with a VLAN tag (§5.1.6.3.1's 1526 bytes, plus the tag).
uint64_t max_rx_bytes(uint64_t features) {
  const bool gso = (features & (vio::feature_bit(kFeatureGuestTso4) |
                                vio::feature_bit(kFeatureGuestTso6))) != 0;
  return sizeof(VnetHeader) + (gso ? kMaxFrameBytes : 1514 + 4);
}

}  // namespace

Result<std::unique_ptr<NetWorker>> NetWorker::start(vio::ActivateContext& context, uint16_t pair,
                                                    kumo::net::FrameBackend& backend,
                                                    const NetWorkerSettings& settings,
                                                    const NetLimiters& limiters,
                                                    NetCounters& counters) {
  const size_t rx = 2 * size_t{pair};
  if (context.queues.size() < rx + 2 || !context.queues[rx] || !context.queues[rx + 1]) {
    return guest_error("virtio-net queue pair {} used without its receive and transmit queues",
                       pair);
  }
  std::unique_ptr<NetWorker> w(new NetWorker(context, pair, backend, limiters, counters));
  w->rx_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  w->tx_timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!w->rx_timer_ || !w->tx_timer_) {
    return host_error("timerfd_create for the virtio-net rate limiters");
  }
  w->loop_ = KUMO_TRY(EventLoop::create());
  NetWorker* self = w.get();
  const int rx_fd = w->ctx_.queues[w->rx_index_]->notify_fd;
  const int tx_fd = w->ctx_.queues[w->tx_index_]->notify_fd;
  KUMO_TRY(w->loop_->add(rx_fd, EPOLLIN, [self, rx_fd] {
    drain_eventfd(rx_fd);
    self->rx_no_buffers_ = false;
    self->process_rx();
  }));
  KUMO_TRY(w->loop_->add(tx_fd, EPOLLIN, [self, tx_fd] {
    drain_eventfd(tx_fd);
    self->process_tx();
  }));
  KUMO_TRY(w->loop_->add(w->rx_timer_.get(), EPOLLIN, [self] {
    uint64_t n = 0;
    (void)!::read(self->rx_timer_.get(), &n, sizeof(n));
    self->rx_throttled_ = false;
    self->process_rx();
  }));
  KUMO_TRY(w->loop_->add(w->tx_timer_.get(), EPOLLIN, [self] {
    uint64_t n = 0;
    (void)!::read(self->tx_timer_.get(), &n, sizeof(n));
    self->tx_throttled_ = false;
    self->process_tx();
  }));
  w->loop_->set_poller(settings.poll_ns, [self] { return self->poll(); },
                       [self] { return self->prepare_sleep(); });
  w->interest_ = EPOLLIN;
  KUMO_TRY(w->loop_->add(backend.fd(), EPOLLIN, [self] { self->on_backend(); }));
  KUMO_TRY(w->loop_->start("virtio-net"));
  signal_eventfd(tx_fd);  // frames queued before DRIVER_OK
  return w;
}

NetWorker::NetWorker(vio::ActivateContext& context, uint16_t pair,
                     kumo::net::FrameBackend& backend, const NetLimiters& limiters,
                     NetCounters& counters)
    : ctx_(context),
      rx_index_(static_cast<uint16_t>(2 * pair)),
      tx_index_(static_cast<uint16_t>(2 * pair + 1)),
      rx_(&ctx_.queues[rx_index_]->queue),
      tx_(&ctx_.queues[tx_index_]->queue),
      backend_(backend),
      counters_(counters),
      rx_buffers_(mergeable(ctx_.features), max_rx_bytes(ctx_.features)),
      rx_limit_(limiters.rx),
      tx_limit_(limiters.tx) {}

NetWorker::~NetWorker() { stop(); }

void NetWorker::stop() {
  if (loop_) {
    loop_->stop();
    loop_.reset();
    rx_->undo_pop(static_cast<uint16_t>(rx_buffers_.chains()));
    rx_buffers_.clear();
  }
}

void NetWorker::broken() {
  broken_ = true;
  ctx_.interrupt->set_needs_reset();
  update_interest();
}

void NetWorker::arm(int timer_fd, uint64_t ns) {
  itimerspec spec{};
  ns = std::max<uint64_t>(ns, 1);
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000ULL);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000ULL);
  ::timerfd_settime(timer_fd, 0, &spec, nullptr);
}

void NetWorker::update_interest() {
  uint32_t want = 0;
  if (!broken_ && !rx_no_buffers_ && !rx_throttled_) want |= EPOLLIN;
  if (!broken_ && tx_backend_full_) want |= EPOLLOUT;
  if (want != interest_) {
    if (loop_->modify(backend_.fd(), want)) {
      interest_ = want;
    }
  }
}

void NetWorker::signal(vio::SplitQueue& q, uint16_t index, bool& pending) {
  if (!pending || broken_) return;
  pending = false;
  auto notify = q.needs_interrupt();
  if (!notify) {
    broken();
  } else if (*notify) {
    ctx_.interrupt->signal_used(index);
  }
}

bool NetWorker::quiet(vio::SplitQueue& q, bool& enabled) {
  if (!enabled) {
    return true;
  }
  if (!q.set_notifications(false)) {
    broken();
    return false;
  }
  enabled = false;
  return true;
}

bool NetWorker::poll() {
  bool worked = false;
  if (!broken_ && !tx_throttled_ && !tx_backend_full_) {
    auto available = tx_->has_available();
    if (!available) {
      broken();
    } else if (*available) {
      process_tx();
      worked = true;
    }
  }
  if (!broken_ && rx_no_buffers_) {
    auto available = rx_->has_available();
    if (!available) {
      broken();
    } else if (*available) {
      rx_no_buffers_ = false;
      process_rx();
      worked = true;
    }
  }
  return worked;
}

bool NetWorker::prepare_sleep() {
  // Transmit: notifications unless throttled or the tap is full (a timer or EPOLLOUT resumes).
  // Receive: only when out of buffers (a frame from the tap resumes otherwise).
  bool more = false;
  if (!broken_ && !tx_notify_ && !tx_throttled_ && !tx_backend_full_) {
    more = wake_on_notify(*tx_, tx_notify_) || more;
  }
  if (!broken_ && !rx_notify_ && rx_no_buffers_) {
    more = wake_on_notify(*rx_, rx_notify_) || more;
  }
  return more;
}

bool NetWorker::wake_on_notify(vio::SplitQueue& q, bool& enabled) {
  auto more = q.set_notifications(true);
  if (!more) {
    broken();
    return false;
  }
  enabled = true;
  return *more;
}

void NetWorker::on_backend() {
  process_rx();
  if (tx_backend_full_) {
    tx_backend_full_ = false;
    process_tx();
  }
}

bool NetWorker::fill_rx_buffers(bool& used) {
  while (!rx_buffers_.ready()) {
    auto popped = rx_->pop();
    if (!popped) {
      broken();
      return false;
    }
    if (!*popped) {
      rx_no_buffers_ = true;  // poll() or, before sleeping, a notification brings more
      return false;
    }
    vio::DescriptorChain& chain = **popped;
    auto iov = vio::host_iovecs(*ctx_.memory, chain.writable);
    if (!iov || chain.writable_bytes < sizeof(VnetHeader)) {
      // Unusable receive buffer (§5.1.6.3.1: at least a header): hand it back empty.
      if (!rx_->add_used(chain.head, 0)) {
        broken();
        return false;
      }
      used = true;
      continue;
    }
    rx_buffers_.add(std::move(chain), std::move(*iov));
  }
  return true;
}

void NetWorker::process_rx() {
  bool used = false;
  // The driver only needs to tell us about new receive buffers when we ran out of them.
  if (!rx_no_buffers_) {
    (void)quiet(*rx_, rx_notify_);
  }
  while (!broken_ && !rx_no_buffers_ && !rx_throttled_) {
    if (const uint64_t wait = rx_limit_.blocked_for_ns(); wait != 0) {
      arm(rx_timer_.get(), wait);
      rx_throttled_ = true;
      break;
    }
    if (!fill_rx_buffers(used)) {
      break;
    }
    auto n = backend_.read_frame(rx_buffers_.read_iovecs());
    if (n && *n == 0) {
      break;  // no frame waiting; the chains stay pending
    }
    if (!n) {
      // A read error: give one buffer back empty, so a failing tap cannot spin the worker.
      counters_.rx_dropped.fetch_add(1);
      const vio::UsedElement empty = rx_buffers_.drop_oldest();
      if (!rx_->add_used(std::span(&empty, 1))) {
        broken();
        break;
      }
      used = true;
      continue;
    }
    auto elements = rx_buffers_.take(*n, rx_first_);
    if (elements.empty() || *n < sizeof(VnetHeader)) {
      counters_.rx_dropped.fetch_add(1);  // longer than the buffers: dropped, they stay
      continue;
    }
    // num_buffers (tun leaves it untouched): how many chains this frame filled.
    const auto count = static_cast<uint16_t>(elements.size());
    if (!vio::write_buffers(*ctx_.memory, rx_first_, offsetof(VnetHeader, num_buffers),
                            std::span(reinterpret_cast<const uint8_t*>(&count), 2)) ||
        !rx_->add_used(elements)) {
      broken();
      break;
    }
    used = true;
    counters_.rx_frames.fetch_add(1);
    (void)rx_limit_.consume(*n - sizeof(VnetHeader));
  }
  signal(*rx_, rx_index_, used);
  update_interest();
}

void NetWorker::process_tx() {
  bool used = false;
  (void)quiet(*tx_, tx_notify_);
  while (!broken_ && !tx_throttled_ && !tx_backend_full_) {
    auto popped = tx_->pop();
    if (!popped) {
      broken();
      break;
    }
    if (!*popped) {
      break;  // prepare_sleep() turns notifications back on
    }
    const vio::DescriptorChain& chain = **popped;
    auto frame = parse_tx_frame(*ctx_.memory, chain, ctx_.features);
    if (!frame) {
      counters_.tx_dropped.fetch_add(1);
      if (!tx_->add_used(chain.head, 0)) {
        broken();
        break;
      }
      used = true;
      continue;
    }
    if (const uint64_t wait = tx_limit_.consume(frame->payload_bytes); wait != 0) {
      tx_->undo_pop();
      arm(tx_timer_.get(), wait);
      tx_throttled_ = true;
      break;
    }
    auto payload = vio::host_iovecs(*ctx_.memory, frame->payload);
    bool sent = false;
    if (payload) {
      std::vector<iovec> iov;
      iov.reserve(payload->size() + 1);
      iov.push_back(iovec{&frame->header, sizeof(VnetHeader)});
      iov.insert(iov.end(), payload->begin(), payload->end());
      auto n = backend_.write_frame(iov);
      if (n && *n == 0) {
        tx_->undo_pop();
        tx_backend_full_ = true;
        break;
      }
      sent = n.has_value();
    }
    (sent ? counters_.tx_frames : counters_.tx_dropped).fetch_add(1);
    if (!tx_->add_used(chain.head, 0)) {
      broken();
      break;
    }
    used = true;
  }
  signal(*tx_, tx_index_, used);
  update_interest();
}

}  // namespace kumo::devices::virtio::net
