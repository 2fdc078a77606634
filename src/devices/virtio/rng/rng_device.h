#pragma once
// VirtioRng: the entropy device (virtio 1.2 §5.4): one request queue; every device-writable
// buffer is filled from getrandom(2). No features, no configuration space. Requests are
// capped at kMaxRequestBytes each (used len says how much was written, §5.4.6.2).
// Device-readable buffers in a request are ignored. Its worker is an EventLoop thread.

#include <memory>

#include "base/event_loop.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::rng {

inline constexpr uint16_t kQueueSize = 64;
inline constexpr uint32_t kMaxRequestBytes = 64 * 1024;

// Fills one request; pure apart from getrandom. Returns bytes written (the used length).
[[nodiscard]] Result<uint32_t> fill_entropy(const memory::GuestMemory& mem,
                                            const kumo::virtio::DescriptorChain& chain);

class VirtioRng final : public kumo::virtio::VirtioDevice {
 public:
  ~VirtioRng() override;
  [[nodiscard]] uint16_t device_type() const override;
  [[nodiscard]] uint64_t device_features() const override { return 0; }
  [[nodiscard]] uint16_t num_queues() const override { return 1; }
  [[nodiscard]] uint16_t max_queue_size() const override { return kQueueSize; }
  [[nodiscard]] uint32_t pci_class() const override { return 0x00ff00; }
  void read_config(uint64_t, std::span<uint8_t> data) override;
  void write_config(uint64_t, std::span<const uint8_t>) override {}
  [[nodiscard]] Status activate(kumo::virtio::ActivateContext context) override;
  void reset() override;

 private:
  void process();
  kumo::virtio::ActivateContext ctx_;
  std::unique_ptr<EventLoop> loop_;
  bool broken_ = false;
};

}  // namespace kumo::devices::virtio::rng
