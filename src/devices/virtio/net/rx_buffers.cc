#include "devices/virtio/net/rx_buffers.h"

#include <algorithm>

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

void RxBuffers::add(vio::DescriptorChain chain, std::vector<iovec> iov) {
  bytes_ += chain.writable_bytes;
  iovecs_ += iov.size();
  chains_.push_back(Pending{std::move(chain), std::move(iov)});
}

bool RxBuffers::ready() const {
  if (!mergeable_) return !chains_.empty();
  return bytes_ >= max_frame_bytes_ || iovecs_ >= kMaxReadIovecs - 1;
}

std::span<const iovec> RxBuffers::read_iovecs() {
  read_iov_.clear();
  offered_bytes_ = 0;
  for (const Pending& p : chains_) {
    if (read_iov_.size() + p.iov.size() > kMaxReadIovecs - 1) break;
    read_iov_.insert(read_iov_.end(), p.iov.begin(), p.iov.end());
    offered_bytes_ += p.chain.writable_bytes;
    if (!mergeable_) break;
  }
  read_iov_.push_back(iovec{&overflow_, 1});
  return read_iov_;
}

std::span<const vio::UsedElement> RxBuffers::take(size_t bytes,
                                                  std::vector<vio::GuestBuffer>& first) {
  used_.clear();
  if (bytes > offered_bytes_ || chains_.empty()) return {};
  first = std::move(chains_.front().chain.writable);
  uint64_t left = bytes;
  do {
    const Pending& p = chains_.front();
    const auto len = static_cast<uint32_t>(std::min<uint64_t>(left, p.chain.writable_bytes));
    used_.push_back(vio::UsedElement{p.chain.head, len});
    left -= len;
    remove_oldest();
  } while (left > 0);
  return used_;
}

vio::UsedElement RxBuffers::drop_oldest() {
  const vio::UsedElement e{chains_.front().chain.head, 0};
  remove_oldest();
  return e;
}

void RxBuffers::remove_oldest() {
  bytes_ -= chains_.front().chain.writable_bytes;
  iovecs_ -= chains_.front().iov.size();
  chains_.pop_front();
  offered_bytes_ = 0;  // read_iovecs() again before the next take()
}

}  // namespace kumo::devices::virtio::net
