#pragma once
// VirtioBlock: the virtio-blk device (virtio 1.2 §5.2), one request queue or several (MQ),
// backed by any BlockBackend (raw, qcow2; io_uring or sync — the back end decides).
//
// Offers: SEG_MAX, BLK_SIZE, FLUSH, DISCARD, WRITE_ZEROES (not on read-only disks), RO, MQ
// (with queues > 1; num_queues in the config space).
// Supports IN, OUT, FLUSH, GET_ID, DISCARD, WRITE_ZEROES; anything else answers UNSUPP.
//
// Thread-safety: as VirtioDevice. The back end is used by the worker thread only while the
// device is active; `kumo img`-style synchronous use of the same back end meanwhile is the
// caller's bug.

#include <memory>

#include "block/block_backend.h"
#include "devices/virtio/block/block_config.h"
#include "devices/virtio/block/block_worker.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::block {

inline constexpr uint16_t kQueueSize = 256;

class VirtioBlock final : public kumo::virtio::VirtioDevice {
 public:
  // `options` supplies read-only, serial and rate limits; the VMM opens the back end from
  // options.path/cache/io. A read-only back end forces a read-only device.
  VirtioBlock(std::shared_ptr<kumo::block::BlockBackend> backend, const DiskOptions& options);
  ~VirtioBlock() override;

  [[nodiscard]] uint16_t device_type() const override;
  [[nodiscard]] uint64_t device_features() const override;
  [[nodiscard]] uint16_t num_queues() const override { return config_.num_queues; }
  [[nodiscard]] uint16_t max_queue_size() const override { return kQueueSize; }
  [[nodiscard]] uint32_t pci_class() const override { return 0x018000; }  // other storage
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  [[nodiscard]] Status activate(kumo::virtio::ActivateContext context) override;
  void reset() override;

 private:
  std::shared_ptr<kumo::block::BlockBackend> backend_;
  BlockWorkerSettings settings_;
  RateLimiter limiter_;  // the disk's, across resets (a reset must not refill the bucket)
  BlockConfigSpace config_{};
  std::unique_ptr<BlockWorker> worker_;
};

}  // namespace kumo::devices::virtio::block
