#pragma once
// Test doubles for what the VMM implements (MSI vectors, INTx line, ioeventfd registry) and
// TransportDriver, which plays a virtio-pci driver against a VirtioPciDevice's BAR 0 the way
// Linux's virtio_pci_modern does. Test-only.

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "devices/interrupt.h"
#include "devices/pci/msi.h"
#include "devices/virtio/pci_transport.h"
#include "virtio/queue.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::testing {

class FakeMsiVector final : public pci::MsiVector {
 public:
  Status trigger() override {
    triggers.fetch_add(1);
    return {};
  }
  Status update(const pci::MsiMessage& m, bool is_masked) override {
    std::lock_guard lock(mutex);
    message = m;
    masked = is_masked;
    updates++;
    return {};
  }
  std::atomic<int> triggers{0};
  std::mutex mutex;
  pci::MsiMessage message;
  bool masked = true;
  int updates = 0;
};

class FakeMsiAllocator final : public pci::MsiVectorAllocator {
 public:
  Result<std::unique_ptr<pci::MsiVector>> allocate() override {
    auto v = std::make_unique<FakeMsiVector>();
    vectors.push_back(v.get());
    return std::unique_ptr<pci::MsiVector>(std::move(v));
  }
  std::vector<FakeMsiVector*> vectors;
};

class FakeInterruptLine final : public InterruptLine {
 public:
  Status set_level(bool asserted) override {
    level.store(asserted);
    if (asserted) raised.fetch_add(1);
    return {};
  }
  Status pulse() override {
    raised.fetch_add(1);
    return {};
  }
  std::atomic<bool> level{false};
  std::atomic<int> raised{0};
};

class FakeIoEventRegistry final : public pci::IoEventRegistry {
 public:
  Status add(uint64_t gpa, uint32_t, int fd) override {
    std::lock_guard lock(mutex);
    events[gpa] = fd;
    return {};
  }
  Status remove(uint64_t gpa, uint32_t, int) override {
    std::lock_guard lock(mutex);
    events.erase(gpa);
    return {};
  }
  std::mutex mutex;
  std::map<uint64_t, int> events;
};

// Polls `pred` for up to `timeout` (device workers run on their own threads).
inline bool wait_until(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return pred();
}

class TransportDriver {
 public:
  explicit TransportDriver(VirtioPciDevice& dev) : dev_(dev) {}

  uint64_t read(uint64_t offset, size_t len) {
    uint8_t buf[8] = {};
    dev_.bar_read(0, offset, std::span(buf, len));
    uint64_t v = 0;
    std::memcpy(&v, buf, len);
    return v;
  }
  void write(uint64_t offset, uint64_t value, size_t len) {
    uint8_t buf[8] = {};
    std::memcpy(buf, &value, len);
    dev_.bar_write(0, offset, std::span<const uint8_t>(buf, len));
  }

  uint8_t status() { return static_cast<uint8_t>(read(0x14, 1)); }
  void set_status(uint8_t s) { write(0x14, s, 1); }
  uint64_t device_features() {
    write(0x00, 0, 4);
    uint64_t f = read(0x04, 4);
    write(0x00, 1, 4);
    return f | (read(0x04, 4) << 32);
  }
  // §3.1.1 steps 1-6; returns whether the device accepted FEATURES_OK.
  bool negotiate(uint64_t features) {
    set_status(0);
    set_status(kumo::virtio::kStatusAcknowledge);
    set_status(kumo::virtio::kStatusAcknowledge | kumo::virtio::kStatusDriver);
    write(0x08, 0, 4);
    write(0x0c, static_cast<uint32_t>(features), 4);
    write(0x08, 1, 4);
    write(0x0c, static_cast<uint32_t>(features >> 32), 4);
    set_status(kumo::virtio::kStatusAcknowledge | kumo::virtio::kStatusDriver |
               kumo::virtio::kStatusFeaturesOk);
    return (status() & kumo::virtio::kStatusFeaturesOk) != 0;
  }
  void setup_queue(uint16_t index, const kumo::virtio::QueueConfig& cfg,
                   uint16_t msix_vector = 0xffff) {
    write(0x16, index, 2);
    write(0x18, cfg.size, 2);
    write(0x1a, msix_vector, 2);
    write(0x20, cfg.desc_table.raw(), 8);
    write(0x28, cfg.avail_ring.raw(), 8);
    write(0x30, cfg.used_ring.raw(), 8);
    write(0x1c, 1, 2);
  }
  void driver_ok() { set_status(static_cast<uint8_t>(status() | kumo::virtio::kStatusDriverOk)); }
  void notify(uint16_t queue) { write(0x3000 + 4ULL * queue, queue, 2); }
  uint8_t isr() { return static_cast<uint8_t>(read(0x1000, 1)); }
  uint64_t config(uint64_t offset, size_t len) { return read(0x2000 + offset, len); }
  void write_config(uint64_t offset, uint64_t value, size_t len) {
    write(0x2000 + offset, value, len);
  }

 private:
  VirtioPciDevice& dev_;
};

}  // namespace kumo::devices::virtio::testing
