#pragma once
// VirtioPciDevice: the virtio 1.2 PCI transport, modern (non-transitional) only (§4.1):
// PCI vendor 0x1af4, device 0x1040 + device type, revision 1, one 32-bit memory BAR (BAR 0)
// holding the common configuration (§4.1.4.3), ISR status (§4.1.4.5), device-specific
// configuration (§4.1.4.6), notifications (§4.1.4.4, notify_off_multiplier 4, queue i at
// notify offset 4*i) and the MSI-X table and PBA; vendor capabilities point at each region,
// plus the PCI configuration access capability (§4.1.4.8).
//
// BAR 0 layout: 0x0000 common, 0x1000 ISR, 0x2000 device config, 0x3000 notify,
// 0x4000 MSI-X table, 0x6000 MSI-X PBA; 0x8000 bytes.
//
// Interrupts: MSI-X when the guest enables it (one vector per queue plus one for config,
// routed through MsiVectorAllocator's vectors), otherwise INTx: ISR bits plus a level on
// the InterruptLine, lowered when the guest reads ISR (§4.1.5.3/§4.1.5.4).
// Notifications: one eventfd per queue, registered with IoEventRegistry at the notify
// address while BAR 0 decodes (Memory Space Enable set, BAR not at 0) and moved with it.
//
// Guest-controlled: all config-space and BAR accesses. A driver that breaks the protocol
// gets FEATURES_OK refused (§3.1.1) or NEEDS_RESET (bad queue layout, device error, a
// status bit cleared without a reset: the device then stops until reset) — never an abort.
//
// Thread-safety: PciDevice methods may be called from several vCPU threads (one mutex).
// The device's worker signals through an interrupt object that never takes that mutex.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/interrupt.h"
#include "devices/pci/msi.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "memory/guest_memory.h"
#include "virtio/device.h"

namespace kumo::devices::virtio {

inline constexpr uint64_t kBarBytes = 0x8000;
inline constexpr uint64_t kCommonCfgOffset = 0x0000;
inline constexpr uint64_t kIsrOffset = 0x1000;
inline constexpr uint64_t kDeviceCfgOffset = 0x2000;
inline constexpr uint64_t kNotifyOffset = 0x3000;
inline constexpr uint32_t kNotifyOffMultiplier = 4;
inline constexpr uint64_t kMsixTableOffset = 0x4000;
inline constexpr uint64_t kMsixPbaOffset = 0x6000;

// Everything the transport needs from the VMM. Pointers are borrowed and must outlive the
// device; any of msi, intx and ioevents may be null (then that mechanism is unavailable:
// no MSI-X capability / no INTx / notifications always exit to the VMM).
struct TransportContext {
  const memory::GuestMemory* memory = nullptr;
  pci::MsiVectorAllocator* msi = nullptr;
  std::shared_ptr<InterruptLine> intx;
  pci::IoEventRegistry* ioevents = nullptr;
};

struct InterruptState;  // shared with the worker-side interrupt object

class VirtioPciDevice final : public pci::PciDevice {
 public:
  [[nodiscard]] static Result<std::shared_ptr<VirtioPciDevice>> create(
      std::unique_ptr<kumo::virtio::VirtioDevice> device, const TransportContext& context);
  ~VirtioPciDevice() override;
  VirtioPciDevice(const VirtioPciDevice&) = delete;
  VirtioPciDevice& operator=(const VirtioPciDevice&) = delete;

  void config_read(uint64_t offset, std::span<uint8_t> data) override;
  std::vector<pci::BarMove> config_write(uint64_t offset,
                                         std::span<const uint8_t> data) override;
  // PCI reset: the virtio device reset (§2.4: worker stopped, status 0, queues disabled)
  // plus configuration space, MSI-X and INTx at power-on; ioeventfds unregistered.
  std::vector<pci::BarMove> reset() override;
  [[nodiscard]] std::vector<pci::BarSpec> bars() const override;
  void set_bar_address(uint8_t index, uint64_t address) override;
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override;
  void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) override;

  // Stops the device (VMM shutdown); the guest sees a virtio device reset.
  void shutdown();
  [[nodiscard]] kumo::virtio::VirtioDevice& device() { return *device_; }
  [[nodiscard]] uint8_t device_status();

 private:
  struct QueueState {
    uint16_t size = 0;
    bool enabled = false;
    uint16_t msix_vector = pci::kMsixNoVector;
    uint64_t desc = 0;
    uint64_t driver = 0;
    uint64_t device = 0;
    UniqueFd notify;
  };

  VirtioPciDevice(std::unique_ptr<kumo::virtio::VirtioDevice> device,
                  const TransportContext& context);
  [[nodiscard]] Status init();
  [[nodiscard]] uint64_t offered_features() const;

  void bar_read_locked(uint64_t offset, std::span<uint8_t> data);
  void bar_write_locked(uint64_t offset, std::span<const uint8_t> data);
  void common_read(uint64_t offset, std::span<uint8_t> data);
  void common_write(uint64_t offset, std::span<const uint8_t> data);
  void write_status(uint8_t status);
  // Stops the device's worker (VirtioDevice::reset); the transport's registers stay.
  void stop_device_locked();
  // Sets DEVICE_NEEDS_RESET; interrupts (configuration change) when DRIVER_OK is set.
  void set_needs_reset_locked();
  void reset_locked();
  void activate_locked();
  [[nodiscard]] uint8_t isr_read();
  void register_ioevents(uint64_t bar_address, bool add);
  // BAR 0 went from decoding at `from` to `to` (0: not decoding).
  void move_ioevents(uint64_t from, uint64_t to);
  void follow_bar_moves(const std::vector<pci::BarMove>& moves);
  void after_config_write(uint64_t offset, size_t len);
  // The INTx pin as Command's Interrupt Disable and MSI-X Enable now allow.
  void sync_intx_locked();

  std::mutex mutex_;
  std::unique_ptr<kumo::virtio::VirtioDevice> device_;
  TransportContext context_;
  pci::PciConfigSpace config_;
  std::shared_ptr<pci::MsixTable> msix_;
  std::shared_ptr<InterruptState> irq_;
  uint8_t msix_cap_ = 0;
  uint8_t pci_cfg_cap_ = 0;

  uint8_t status_ = 0;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint64_t driver_features_ = 0;
  uint16_t queue_select_ = 0;
  std::vector<QueueState> queues_;
  bool active_ = false;
};

}  // namespace kumo::devices::virtio
