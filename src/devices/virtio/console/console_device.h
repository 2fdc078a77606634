#pragma once
// VirtioConsole: virtio-console with port 0 only (virtio 1.2 §5.3; no MULTIPORT):
// receiveq0 (0) carries bytes from `input_fd` to the guest, transmitq0 (1) bytes from the
// guest to `output_fd`. Offers VIRTIO_CONSOLE_F_EMERG_WRITE (a config-space write of one
// character goes straight to the output).
//
// The fds are borrowed (e.g. the VMM's stdin/stdout or a pty) and must outlive the device;
// input_fd may be -1 (no input). The input fd is switched to non-blocking. An input epoll
// cannot watch (a regular file, /dev/null) is read each time the guest posts receive buffers. At EOF on input
// the worker stops reading it. Guest-controlled: the chains; each transmit chain's
// device-readable bytes are copied (at most kMaxTransmitBytes) and written in full.

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/event_loop.h"
#include "virtio/device.h"

namespace kumo::devices::virtio::console {

inline constexpr uint16_t kQueueSize = 64;
inline constexpr uint64_t kMaxTransmitBytes = 64 * 1024;
inline constexpr uint32_t kFeatureEmergWrite = 2;

// The bytes one transmit chain carries (pure; fuzzed). Device-writable parts are ignored.
[[nodiscard]] Result<std::vector<uint8_t>> transmit_bytes(const memory::GuestMemory& mem,
                                                          const kumo::virtio::DescriptorChain& chain);

class VirtioConsole final : public kumo::virtio::VirtioDevice {
 public:
  VirtioConsole(int input_fd, int output_fd, uint16_t cols = 80, uint16_t rows = 25);
  ~VirtioConsole() override;
  [[nodiscard]] uint16_t device_type() const override;
  [[nodiscard]] uint64_t device_features() const override;
  [[nodiscard]] uint16_t num_queues() const override { return 2; }
  [[nodiscard]] uint16_t max_queue_size() const override { return kQueueSize; }
  [[nodiscard]] uint32_t pci_class() const override { return 0x078000; }  // other comms
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  [[nodiscard]] Status activate(kumo::virtio::ActivateContext context) override;
  void reset() override;

 private:
  void process_rx();
  void process_tx();
  void write_all(std::span<const uint8_t> bytes);
  void broken();

  int input_fd_;
  int output_fd_;
  std::mutex output_mutex_;  // worker and emergency writes
  uint8_t config_[12] = {};
  kumo::virtio::ActivateContext ctx_;
  std::unique_ptr<EventLoop> loop_;
  bool input_eof_ = false;
  bool input_polled_ = false;  // input_fd_ is registered with loop_
  bool rx_waiting_buffers_ = false;
  bool broken_ = false;
};

}  // namespace kumo::devices::virtio::console
