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
                                                        const BlockWorkerSettings& settings) {
  if (context.queues.empty() || !context.queues[0]) {
    return guest_error("virtio-blk activated without its request queue");
  }
  std::unique_ptr<BlockWorker> w(new BlockWorker(std::move(context), std::move(backend), settings));
  w->timer_ = UniqueFd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!w->timer_) {
    return host_error("timerfd_create for the virtio-blk rate limiter");
  }
  w->loop_ = KUMO_TRY(EventLoop::create());
  BlockWorker* self = w.get();
  KUMO_TRY(w->loop_->add(w->notify_fd_, EPOLLIN, [self] { self->on_notify(); }));
  KUMO_TRY(w->loop_->add(w->backend_->completion_fd(), EPOLLIN, [self] { self->on_completion(); }));
  KUMO_TRY(w->loop_->add(w->timer_.get(), EPOLLIN, [self] { self->on_timer(); }));
  w->loop_->set_poller(settings.poll_ns, [self] { return self->poll(); },
                       [self] { return self->prepare_sleep(); });
  KUMO_TRY(w->loop_->start("virtio-blk"));
  // Requests the driver queued before DRIVER_OK without notifying.
  signal_eventfd(w->notify_fd_);
  return w;
}

BlockWorker::BlockWorker(vio::ActivateContext context, std::shared_ptr<kumo::block::BlockBackend> backend,
                         const BlockWorkerSettings& settings)
    : ctx_(std::move(context)),
      queue_(&ctx_.queues[0]->queue),
      notify_fd_(ctx_.queues[0]->notify_fd),
      backend_(std::move(backend)),
      settings_(settings),
      limiter_(settings.bandwidth, settings.ops) {}

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

void BlockWorker::on_notify() {
  drain_eventfd(notify_fd_);
  process_queue();
}

void BlockWorker::on_timer() {
  uint64_t expirations = 0;
  (void)!::read(timer_.get(), &expirations, sizeof(expirations));
  waiting_timer_ = false;
  process_queue();
}

void BlockWorker::on_completion() {
  reap_all();
  if (waiting_backend_) {
    waiting_backend_ = false;
    process_queue();
    return;
  }
  if (used_pending_ && !broken_) {
    used_pending_ = false;
    auto notify = queue_->needs_interrupt();
    if (!notify) {
      broken(notify.error());
    } else if (*notify) {
      ctx_.interrupt->signal_used(0);
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
      complete(f.head, f.status, ok ? kStatusOk : kStatusIoErr, ok ? f.used_len : 1);
      in_flight_.erase(it);
    }
    if (n < done.size()) {
      return;
    }
  }
}

void BlockWorker::complete(uint16_t head, std::optional<memory::GuestAddress> status,
                           uint8_t value, uint32_t used_len) {
  if (broken_) {
    return;
  }
  // The status address lies in a buffer the walker checked; a failure here is still only
  // the guest's problem.
  if (status) {
    (void)ctx_.memory->write_obj(*status, value);
  }
  if (auto added = queue_->add_used(head, used_len); !added) {
    broken(added.error());
    return;
  }
  used_pending_ = true;
}

void BlockWorker::process_queue() {
  // No notifications while the worker is busy with the ring: prepare_sleep() turns them
  // back on before the worker sleeps.
  if (notify_on_ && !broken_) {
    if (auto off = queue_->set_notifications(false); !off) {
      broken(off.error());
    }
    notify_on_ = false;
  }
  // Everything the driver made available goes to the host in one batch (one io_uring_enter,
  // one host block-layer plug) instead of one system call per request.
  backend_->plug();
  while (!broken_ && !waiting_timer_ && !waiting_backend_) {
    if (!deferred_) {
      auto popped = queue_->pop();
      if (!popped) {
        broken(popped.error());
        break;
      }
      if (!*popped) {
        break;
      }
      deferred_ = std::move(**popped);
    }
    if (!handle(*deferred_)) {
      break;
    }
    deferred_.reset();
  }
  backend_->unplug();
  if (used_pending_ && !broken_) {
    used_pending_ = false;
    auto notify = queue_->needs_interrupt();
    if (!notify) {
      broken(notify.error());
    } else if (*notify) {
      ctx_.interrupt->signal_used(0);
    }
  }
}

bool BlockWorker::poll() {
  if (broken_ || waiting_timer_ || waiting_backend_) {
    return false;
  }
  auto available = queue_->has_available();
  if (!available) {
    broken(available.error());
    return false;
  }
  if (!*available) {
    return false;
  }
  process_queue();
  return true;
}

bool BlockWorker::prepare_sleep() {
  // A throttled or back-end-bound worker resumes on its timer or a completion, not on the
  // driver's notification.
  if (broken_ || notify_on_ || waiting_timer_ || waiting_backend_) {
    return false;
  }
  auto more = queue_->set_notifications(true);
  if (!more) {
    broken(more.error());
    return false;
  }
  notify_on_ = true;
  return *more;
}

bool BlockWorker::handle(const vio::DescriptorChain& chain) {
  auto parsed = parse_block_request(*ctx_.memory, chain, settings_.limits);
  if (!parsed) {
    const BlockRequestError& e = parsed.error();
    complete(chain.head, e.status_addr, e.status, e.status_addr ? 1 : 0);
    return true;
  }
  BlockRequest& req = *parsed;
  if (req.type == RequestType::kGetId) {
    std::array<uint8_t, kIdBytes> id{};
    std::memcpy(id.data(), settings_.serial.data(), std::min<size_t>(settings_.serial.size(), kIdBytes));
    const bool ok = vio::write_buffers(*ctx_.memory, req.data, 0,
                                       std::span(id.data(), req.data_bytes))
                        .has_value();
    complete(chain.head, req.status, ok ? kStatusOk : kStatusIoErr,
             ok ? static_cast<uint32_t>(req.data_bytes + 1) : 1);
    return true;
  }
  const bool transfer = req.type == RequestType::kIn || req.type == RequestType::kOut;
  if (transfer && req.data_bytes == 0) {
    complete(chain.head, req.status, kStatusOk, 1);
    return true;
  }
  if (const uint64_t wait = limiter_.consume(transfer ? req.data_bytes : 0, 1); wait != 0) {
    arm_timer(wait);
    return false;
  }
  auto flight = std::make_unique<InFlight>();
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
        complete(chain.head, req.status, kStatusIoErr, 1);
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
    complete(chain.head, req.status, kStatusIoErr, 1);
    return true;
  }
  in_flight_.emplace(io.cookie, std::move(flight));
  return true;
}

}  // namespace kumo::devices::virtio::block
