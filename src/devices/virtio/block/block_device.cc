#include "devices/virtio/block/block_device.h"

#include <algorithm>
#include <cstring>

#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::block {

namespace vio = kumo::virtio;

VirtioBlock::VirtioBlock(std::shared_ptr<kumo::block::BlockBackend> backend, const DiskOptions& options)
    : backend_(std::move(backend)), limiter_(options.bandwidth, options.ops) {
  settings_.limits.capacity_sectors = backend_->size_bytes() / kSectorBytes;
  settings_.limits.read_only = options.read_only || backend_->read_only();
  settings_.limits.max_discard_segments = 1;
  settings_.limits.max_write_zeroes_segments = 1;
  settings_.serial = options.serial;
  settings_.poll_ns = options.poll_ns;
  config_.capacity = settings_.limits.capacity_sectors;
  config_.seg_max = kQueueSize - 2;  // header and status take two descriptors
  config_.blk_size = static_cast<uint32_t>(kSectorBytes);
  config_.writeback = options.cache == CacheMode::kWriteback ? 1 : 0;
  config_.num_queues = options.queues;
  config_.max_discard_sectors = 1U << 22;
  config_.max_discard_seg = 1;
  config_.discard_sector_alignment = 1;
  config_.max_write_zeroes_sectors = 1U << 22;
  config_.max_write_zeroes_seg = 1;
}

VirtioBlock::~VirtioBlock() { reset(); }

uint16_t VirtioBlock::device_type() const { return vio::kDeviceIdBlock; }

uint64_t VirtioBlock::device_features() const {
  uint64_t f = vio::feature_bit(kFeatureSegMax) | vio::feature_bit(kFeatureBlkSize) |
               vio::feature_bit(kFeatureFlush);
  if (config_.num_queues > 1) {
    f |= vio::feature_bit(kFeatureMq);
  }
  if (settings_.limits.read_only) {
    f |= vio::feature_bit(kFeatureRo);
  } else {
    f |= vio::feature_bit(kFeatureDiscard) | vio::feature_bit(kFeatureWriteZeroes);
  }
  return f;
}

void VirtioBlock::read_config(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (offset >= sizeof(config_)) {
    return;
  }
  const size_t n = std::min<size_t>(data.size(), sizeof(config_) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

Status VirtioBlock::activate(vio::ActivateContext context) {
  reset();
  worker_ = KUMO_TRY(BlockWorker::start(std::move(context), backend_, settings_, limiter_));
  return {};
}

void VirtioBlock::reset() {
  if (worker_) {
    worker_->stop();
    worker_.reset();
  }
}

}  // namespace kumo::devices::virtio::block
