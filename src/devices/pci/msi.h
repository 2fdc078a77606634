#pragma once
// The interrupt and notification interfaces a PCI device is given; the VMM implements them
// on KVM (devices/ never includes kvm/). All implementations must be thread-safe.
//
// MSI-X (PCI 3.0 §6.8.2). Per vector the VMM owns one GSI and one eventfd bound to it with
// KVM_IRQFD. The device:
//  - creates one MsiVector per table entry at construction (MsiVectorAllocator);
//  - calls update() on a vCPU thread whenever the guest changes what the vector means: it
//    writes the entry's address/data, masks or unmasks it, or toggles MSI-X Enable / Function
//    Mask. The VMM installs the route (KVM_SET_GSI_ROUTING, an MSI entry for this GSI) and may
//    use `masked` to detach the irqfd; the device never calls trigger() on a masked vector
//    anyway (it latches the Pending Bit and fires on unmask, §6.8.2.9);
//  - calls trigger() from device worker threads (write 1 to the eventfd).
//
// Notifications (ioeventfd): the device owns one eventfd per virtqueue and asks the VMM to
// have guest writes to the notify address signal it inside KVM (KVM_IOEVENTFD, MMIO, no
// datamatch). The device also signals the same eventfd itself when a notify write does reach
// it as an ordinary MMIO exit, so a VMM without ioeventfd support still works.

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace kumo::devices::pci {

// What the guest wrote into one MSI-X table entry: the MSI address (0xfeexxxxx on x86,
// upper 32 bits normally zero) and data. Guest-controlled: the VMM hands both to KVM, which
// validates them; never use them as host addresses.
struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  friend bool operator==(const MsiMessage&, const MsiMessage&) = default;
};

class MsiVector {
 public:
  virtual ~MsiVector() = default;
  // Sends the interrupt now (irqfd write). Called only while the vector is unmasked and
  // MSI-X is enabled. Device worker threads.
  [[nodiscard]] virtual Status trigger() = 0;
  // The guest changed the entry or its mask state (vCPU thread). `masked` is true when the
  // entry's Mask bit, the Function Mask or MSI-X Enable=0 keeps it from firing.
  [[nodiscard]] virtual Status update(const MsiMessage& message, bool masked) = 0;
};

class MsiVectorAllocator {
 public:
  virtual ~MsiVectorAllocator() = default;
  // One vector: a fresh GSI and its irqfd. Called while devices are built, before vCPUs run.
  [[nodiscard]] virtual Result<std::unique_ptr<MsiVector>> allocate() = 0;
};

class IoEventRegistry {
 public:
  virtual ~IoEventRegistry() = default;
  // Guest writes of any width (len_bytes 0: KVM's wildcard length) or of exactly len_bytes
  // to MMIO address `gpa` signal `eventfd` without exiting to the VMM. The eventfd stays
  // owned by the device, which calls remove() before closing it.
  [[nodiscard]] virtual Status add(uint64_t gpa, uint32_t len_bytes, int eventfd) = 0;
  [[nodiscard]] virtual Status remove(uint64_t gpa, uint32_t len_bytes, int eventfd) = 0;
};

}  // namespace kumo::devices::pci
