#pragma once
// VirtioDevice: what a virtio device type (blk, net, rng, console) implements; a transport
// (devices/virtio/pci_transport.h) drives it through the device status state machine of
// virtio 1.2 §3.1 (Device Initialization) and §2.4 (Device Reset).
//
// Lifecycle: constructed by the VMM from parsed options → handed to a transport → the guest
// negotiates features and sets up queues → activate() on DRIVER_OK (starts the device's
// worker thread) → reset() when the driver writes 0 to device_status or the VMM shuts down
// (stops the worker; returns only when it no longer touches guest memory or queues).
// A device may be activated again after reset().
//
// Thread-safety: the transport serializes calls to the device's own methods (they come from
// vCPU threads). The device's worker talks back only through VirtioInterrupt, which is
// thread-safe. read_config()/write_config() may race with the worker; devices guard any
// config field the worker changes.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace kumo::virtio {

// How a device's worker signals the guest (implemented by the transport). Thread-safe;
// never blocks on vCPU-held locks, so a worker can call it while reset() waits for it.
class VirtioInterrupt {
 public:
  virtual ~VirtioInterrupt() = default;
  // Used buffer notification for queue `queue_index` (call after needs_interrupt() said yes).
  virtual void signal_used(uint16_t queue_index) = 0;
  // Configuration change notification (§4.1.4.4); also bumps config_generation.
  virtual void signal_config_change() = 0;
  // The driver broke a rule the device cannot recover from (§2.1.2): sets NEEDS_RESET in
  // device_status and sends a configuration change notification. The device stops using
  // its queues until reset.
  virtual void set_needs_reset() = 0;
};

// A queue the driver enabled, ready to use: the ring and the eventfd its notifications
// arrive on (borrowed from the transport; valid until reset() returns).
struct ActiveQueue {
  SplitQueue queue;
  int notify_fd = -1;
};

struct ActivateContext {
  const memory::GuestMemory* memory = nullptr;  // outlives the device
  uint64_t features = 0;                         // negotiated
  // One slot per device queue; nullopt where the driver left the queue disabled.
  std::vector<std::optional<ActiveQueue>> queues;
  std::shared_ptr<VirtioInterrupt> interrupt;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  [[nodiscard]] virtual uint16_t device_type() const = 0;  // §5 device id
  // Device-specific feature bits (the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX).
  [[nodiscard]] virtual uint64_t device_features() const = 0;
  [[nodiscard]] virtual uint16_t num_queues() const = 0;
  [[nodiscard]] virtual uint16_t max_queue_size() const = 0;
  // PCI class code for this device type (base class, subclass, prog-if packed 0xBBSSPP).
  [[nodiscard]] virtual uint32_t pci_class() const = 0;

  // Device configuration space (§4.1.4.6): `offset` and width are guest-controlled; reads
  // beyond the structure return zero, writes to read-only fields are ignored.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

  // The driver set FEATURES_OK with `features` (already a subset of what was offered);
  // a device may refuse combinations it cannot honour.
  [[nodiscard]] virtual Status accept_features(uint64_t /*features*/) { return {}; }
  // DRIVER_OK: start serving the queues. An error makes the transport set NEEDS_RESET.
  [[nodiscard]] virtual Status activate(ActivateContext context) = 0;
  // Stops the worker and drops the queues; idempotent.
  virtual void reset() = 0;
};

}  // namespace kumo::virtio
