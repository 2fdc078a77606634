#include "devices/virtio/block/block_worker.h"

#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "devices/virtio/block/block_config.h"
#include "virtio/buffers.h"

namespace kumo::devices::virtio::block {

namespace vio = kumo::virtio;

Result<std::unique_ptr<BlockWorker>> BlockWorker::start(vio::ActivateContext context,
                                                        std::shared_ptr<kumo::block::BlockBackend> backend,
                                                        const BlockWorkerSettings& settings,
                                                        RateLimiter& limiter) {
  if (context.queues.empty() || !context.queues[0]) {
    return guest_error("virtio-blk activated without its first request queue");
  }
  std::unique_ptr<BlockWorker> w(
      new BlockWorker(std::move(context), std::move(backend), settings, limiter));
  w->timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!w->timer_) {
    return host_error("timerfd_create for the virtio-blk rate limiter");
  }
  w->loop_ = KUMO_TRY(EventLoop::create());
  BlockWorker* self = w.get();
  for (const Queue& q : w->queues_) {
    const int fd = q.notify_fd;
    KUMO_TRY(w->loop_->add(fd, EPOLLIN, [self, fd] {
      drain_eventfd(fd);
      self->process_queues();
    }));
  }
  KUMO_TRY(w->loop_->add(w->backend_->completion_fd(), EPOLLIN, [self] { self->on_completion(); }));
  KUMO_TRY(w->loop_->add(w->timer_.get(), EPOLLIN, [self] { self->on_timer(); }));
  w->loop_->set_poller(settings.poll_ns, [self] { return self->poll(); },
                       [self] { return self->prepare_sleep(); });
  KUMO_TRY(w->loop_->start("virtio-blk"));
  // Requests the driver queued before DRIVER_OK without notifying.
  signal_eventfd(w->queues_.front().notify_fd);
  return w;
}

BlockWorker::BlockWorker(vio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
                         const BlockWorkerSettings& settings, RateLimiter& limiter)
    : ctx_(std::move(context)),
      backend_(std::move(backend)),
      settings_(settings),
      limiter_(limiter) {
  for (size_t i = 0; i < ctx_.queues.size(); ++i) {
    if (ctx_.queues[i]) {
      queues_.push_back(Queue{.index = static_cast<uint16_t>(i),
                              .ring = &ctx_.queues[i]->queue,
                              .notify_fd = ctx_.queues[i]->notify_fd});
    }
  }
}

BlockWorker::~BlockWorker() { stop(); }

void BlockWorker::stop() {
  if (loop_) {
    loop_->stop();
  }
  // The back end may still write into guest buffers and read our iovec arrays: wait for
  // every completion (results are dropped; the driver reset the device).
  while (!in_flight_.empty()) {
    pollfd pfd{backend_->completion_fd(), POLLIN, 0};
    (void)::poll(&pfd, 1, 100);
    std::array<kumo::block::IoCompletion, 32> done{};
    const size_t n = backend_->reap(done);
    for (size_t i = 0; i < n; ++i) {
      in_flight_.erase(done[i].cookie);
    }
  }
}

void BlockWorker::broken(const Error& error) {
  (void)error;  // the guest's mistake; the status bit is the report
  broken_ = true;
  ctx_.interrupt->set_needs_reset();
}

void BlockWorker::arm_timer(uint64_t ns) {
  itimerspec spec{};
  ns = std::max<uint64_t>(ns, 1);
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000ULL);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000ULL);
  ::timerfd_settime(timer_.get(), 0, &spec, nullptr);
  waiting_timer_ = true;
}

void BlockWorker::on_timer() {
  uint64_t expirations = 0;
  (void)!::read(timer_.get(), &expirations, sizeof(expirations));
  waiting_timer_ = false;
  process_queues();
}

void BlockWorker::on_completion() {
  reap_all();
  if (waiting_backend_) {
    waiting_backend_ = false;
    process_queues();
    return;
  }
  signal_used();
}

void BlockWorker::signal_used() {
  for (Queue& q : queues_) {
    if (!q.used_pending || broken_) {
      continue;
    }
    q.used_pending = false;
    auto notify = q.ring->needs_interrupt();
    if (!notify) {
      broken(notify.error());
    } else if (*notify) {
      ctx_.interrupt->signal_used(q.index);
    }
  }
}

void BlockWorker::reap_all() {
  std::array<kumo::block::IoCompletion, 32> done{};
  for (;;) {
    const size_t n = backend_->reap(done);
    for (size_t i = 0; i < n; ++i) {
      auto it = in_flight_.find(done[i].cookie);
      if (it == in_flight_.end()) {
        continue;
      }
      const InFlight& f = *it->second;
      const bool ok = done[i].result >= 0 && done[i].result >= f.expected;
      complete(f.queue, f.head, f.status, ok ? kStatusOk : kStatusIoErr, ok ? f.used_len : 1);
      in_flight_.erase(it);
    }
    if (n < done.size()) {
      return;
    }
  }
}

void BlockWorker::complete(size_t queue, uint16_t head,
                           std::optional<memory::GuestAddress> status, uint8_t value,
                           uint32_t used_len) {
  if (broken_) {
    return;
  }
  // The status address lies in a buffer the walker checked; a failure here is still only
  // the guest's problem.
  if (status) {
    (void)ctx_.memory->write_obj(*status, value);
  }
  if (auto added = queues_[queue].ring->add_used(head, used_len); !added) {
    broken(added.error());
    return;
  }
  queues_[queue].used_pending = true;
}

void BlockWorker::process_queues() {
  // No notifications while the worker is busy with the rings: prepare_sleep() turns them
  // back on before the worker sleeps.
  for (Queue& q : queues_) {
    if (q.notify_on && !broken_) {
      if (auto off = q.ring->set_notifications(false); !off) {
        broken(off.error());
      }
      q.notify_on = false;
    }
  }
  // Everything the driver made available goes to the host in one batch (one io_uring_enter,
  // one host block-layer plug) instead of one system call per request.
  backend_->plug();
  // A deferred chain's queue goes first, so requests leave each queue in ring order.
  const size_t first = deferred_ ? deferred_queue_ : 0;
  for (size_t n = 0; n < queues_.size() && !waiting_timer_ && !waiting_backend_; ++n) {
    const size_t i = (first + n) % queues_.size();
    while (!broken_ && !waiting_timer_ && !waiting_backend_) {
      if (!deferred_) {
        auto popped = queues_[i].ring->pop();
        if (!popped) {
          broken(popped.error());
          break;
        }
        if (!*popped) {
          break;
        }
        deferred_ = std::move(**popped);
        deferred_queue_ = i;
      }
      if (!handle(i, *deferred_)) {
        break;
      }
      deferred_.reset();
    }
  }
  backend_->unplug();
  signal_used();
}

bool BlockWorker::poll() {
  if (broken_ || waiting_timer_ || waiting_backend_) {
    return false;
  }
  for (const Queue& q : queues_) {
    auto available = q.ring->has_available();
    if (!available) {
      broken(available.error());
      return false;
    }
    if (*available) {
      process_queues();
      return true;
    }
  }
  return false;
}

bool BlockWorker::prepare_sleep() {
  // A throttled or back-end-bound worker resumes on its timer or a completion, not on the
  // driver's notification.
  if (broken_ || waiting_timer_ || waiting_backend_) {
    return false;
  }
  bool more = false;
  for (Queue& q : queues_) {
    if (q.notify_on) {
      continue;
    }
    auto available = q.ring->set_notifications(true);
    if (!available) {
      broken(available.error());
      return false;
    }
    q.notify_on = true;
    more = more || *available;
  }
  return more;
}

bool BlockWorker::handle(size_t queue, const vio::DescriptorChain& chain) {
  auto parsed = parse_block_request(*ctx_.memory, chain, settings_.limits);
  if (!parsed) {
    const BlockRequestError& e = parsed.error();
    complete(queue, chain.head, e.status_addr, e.status, e.status_addr ? 1 : 0);
    return true;
  }
  BlockRequest& req = *parsed;
  if (req.type == RequestType::kGetId) {
    std::array<uint8_t, kIdBytes> id{};
    std::memcpy(id.data(), settings_.serial.data(), std::min<size_t>(settings_.serial.size(), kIdBytes));
    const bool ok = vio::write_buffers(*ctx_.memory, req.data, 0,
                                       std::span(id.data(), req.data_bytes))
                        .has_value();
    complete(queue, chain.head, req.status, ok ? kStatusOk : kStatusIoErr,
             ok ? static_cast<uint32_t>(req.data_bytes + 1) : 1);
    return true;
  }
  const bool transfer = req.type == RequestType::kIn || req.type == RequestType::kOut;
  if (transfer && req.data_bytes == 0) {
    complete(queue, chain.head, req.status, kStatusOk, 1);
    return true;
  }
  if (const uint64_t wait = limiter_.consume(transfer ? req.data_bytes : 0, 1); wait != 0) {
    arm_timer(wait);
    return false;
  }
  auto flight = std::make_unique<InFlight>();
  flight->queue = queue;
  flight->head = chain.head;
  flight->status = req.status;
  flight->used_len = req.type == RequestType::kIn ? static_cast<uint32_t>(req.data_bytes + 1) : 1;
  flight->expected = transfer ? static_cast<int64_t>(req.data_bytes) : 0;
  kumo::block::IoRequest io;
  io.offset_bytes = req.sector * kSectorBytes;
  switch (req.type) {
    case RequestType::kIn:
    case RequestType::kOut: {
      auto iov = vio::host_iovecs(*ctx_.memory, req.data);
      if (!iov) {
        complete(queue, chain.head, req.status, kStatusIoErr, 1);
        return true;
      }
      flight->iov = std::move(*iov);
      io.op = req.type == RequestType::kIn ? kumo::block::IoOp::kRead : kumo::block::IoOp::kWrite;
      io.iov = flight->iov;
      io.len_bytes = req.data_bytes;
      break;
    }
    case RequestType::kFlush:
      io.op = kumo::block::IoOp::kFlush;
      io.offset_bytes = 0;
      break;
    case RequestType::kDiscard:
    case RequestType::kWriteZeroes:
      // The parser allows at most max_*_segments (1) segments.
      io.op = req.type == RequestType::kDiscard ? kumo::block::IoOp::kDiscard : kumo::block::IoOp::kWriteZeroes;
      io.offset_bytes = req.segments[0].sector * kSectorBytes;
      io.len_bytes = uint64_t{req.segments[0].num_sectors} * kSectorBytes;
      break;
    case RequestType::kGetId:
      break;
  }
  io.cookie = next_cookie_++;
  if (auto submitted = backend_->submit(io); !submitted) {
    if (submitted.error().errno_value == EAGAIN) {
      waiting_backend_ = true;  // retried after the next completion
      return false;
    }
    complete(queue, chain.head, req.status, kStatusIoErr, 1);
    return true;
  }
  in_flight_.emplace(io.cookie, std::move(flight));
  return true;
}

}  // namespace kumo::devices::virtio::block
