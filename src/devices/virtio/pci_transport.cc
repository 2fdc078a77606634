#include "devices/virtio/pci_transport.h"

#include <algorithm>
#include <cstring>

#include "base/event_loop.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio {

namespace vio = kumo::virtio;

// State shared between the transport (vCPU threads) and the interrupt object the device's
// worker holds. Only atomics and the INTx mutex: never the transport mutex.
//
// INTx (PCI 3.0 §6.2.2, §6.8.2): the device asserts its pin for ISR bits raised while MSI-X
// is disabled, until the driver reads ISR; Interrupt Disable keeps the pin deasserted while
// set (a pending interrupt shows again when it is cleared) and enabling MSI-X deasserts it.
struct InterruptState {
  std::shared_ptr<pci::MsixTable> msix;  // null without MSI-X
  std::shared_ptr<InterruptLine> intx;   // may be null
  std::atomic<uint8_t> isr{0};
  std::atomic<bool> needs_reset{false};
  std::atomic<uint8_t> config_generation{0};
  std::atomic<uint16_t> config_vector{pci::kMsixNoVector};
  std::mutex intx_mutex;
  bool intx_pending = false;   // guarded by intx_mutex
  bool intx_disabled = false;  // guarded by intx_mutex; Command bit 10
  bool intx_level = false;     // guarded by intx_mutex; what the line was last set to

  bool msix_enabled() const { return msix && msix->enabled(); }

  void raise(uint8_t isr_bit, uint16_t vector) {
    isr.fetch_or(isr_bit);
    {
      std::lock_guard lock(intx_mutex);
      if (!msix_enabled()) {
        set_intx_locked(true, intx_disabled);
        return;
      }
    }
    if (vector != pci::kMsixNoVector) {
      (void)msix->trigger(vector);
    }
  }

  void set_intx_locked(bool pending, bool disabled) {
    intx_pending = pending && intx != nullptr;
    intx_disabled = disabled;
    const bool level = intx_pending && !disabled;
    if (intx && level != intx_level) {
      (void)intx->set_level(level);
    }
    intx_level = level;
  }
};

namespace {

constexpr uint8_t kIsrQueue = 1;
constexpr uint8_t kIsrConfig = 2;

// §4.1.4 virtio_pci_cap cfg_type values.
constexpr uint8_t kCapCommon = 1;
constexpr uint8_t kCapNotify = 2;
constexpr uint8_t kCapIsr = 3;
constexpr uint8_t kCapDevice = 4;
constexpr uint8_t kCapPciCfg = 5;

// §4.1.4.3 struct virtio_pci_common_cfg offsets.
constexpr uint64_t kDeviceFeatureSelect = 0x00;
constexpr uint64_t kDeviceFeature = 0x04;
constexpr uint64_t kDriverFeatureSelect = 0x08;
constexpr uint64_t kDriverFeature = 0x0c;
constexpr uint64_t kConfigMsixVector = 0x10;
constexpr uint64_t kNumQueues = 0x12;
constexpr uint64_t kDeviceStatus = 0x14;
constexpr uint64_t kConfigGeneration = 0x15;
constexpr uint64_t kQueueSelect = 0x16;
constexpr uint64_t kQueueSize = 0x18;
constexpr uint64_t kQueueMsixVector = 0x1a;
constexpr uint64_t kQueueEnable = 0x1c;
constexpr uint64_t kQueueNotifyOff = 0x1e;
constexpr uint64_t kQueueDesc = 0x20;
constexpr uint64_t kQueueDriver = 0x28;
constexpr uint64_t kQueueDevice = 0x30;
constexpr uint64_t kQueueNotifyData = 0x38;
constexpr uint64_t kCommonCfgBytes = 0x3c;

std::vector<uint8_t> virtio_cap(uint8_t type, uint32_t offset, uint32_t length,
                                size_t extra = 0) {
  std::vector<uint8_t> body(14 + extra, 0);
  body[0] = static_cast<uint8_t>(16 + extra);  // cap_len, counting ID and next
  body[1] = type;
  body[2] = 0;  // BAR 0
  std::memcpy(&body[6], &offset, 4);
  std::memcpy(&body[10], &length, 4);
  return body;
}

uint64_t load_le(std::span<const uint8_t> data) {
  uint64_t v = 0;
  std::memcpy(&v, data.data(), std::min<size_t>(data.size(), 8));
  return v;
}

// A worker's view of the transport's interrupts, with the queue→vector map fixed at
// activation (the driver must not change it while DRIVER_OK).
class TransportInterrupt final : public vio::VirtioInterrupt {
 public:
  TransportInterrupt(std::shared_ptr<InterruptState> state, std::vector<uint16_t> vectors)
      : state_(std::move(state)), vectors_(std::move(vectors)) {}
  void signal_used(uint16_t queue_index) override {
    const uint16_t vector =
        queue_index < vectors_.size() ? vectors_[queue_index] : pci::kMsixNoVector;
    state_->raise(kIsrQueue, vector);
  }
  void signal_config_change() override {
    state_->config_generation.fetch_add(1);
    state_->raise(kIsrConfig, state_->config_vector.load());
  }
  void set_needs_reset() override {
    state_->needs_reset.store(true);
    state_->raise(kIsrConfig, state_->config_vector.load());
  }

 private:
  std::shared_ptr<InterruptState> state_;
  std::vector<uint16_t> vectors_;
};

}  // namespace

VirtioPciDevice::VirtioPciDevice(std::unique_ptr<vio::VirtioDevice> device,
                                 const TransportContext& context)
    : device_(std::move(device)),
      context_(context),
      config_(pci::PciIdentity{
          .vendor_id = 0x1af4,
          .device_id = static_cast<uint16_t>(0x1040 + device_->device_type()),
          .revision = 1,
          .class_code = static_cast<uint8_t>(device_->pci_class() >> 16),
          .subclass = static_cast<uint8_t>(device_->pci_class() >> 8),
          .prog_if = static_cast<uint8_t>(device_->pci_class()),
          .subsystem_vendor_id = 0x1af4,
          .subsystem_id = 0x40,
          .interrupt_pin = static_cast<uint8_t>(context.intx ? 1 : 0)}),
      irq_(std::make_shared<InterruptState>()) {}

Result<std::shared_ptr<VirtioPciDevice>> VirtioPciDevice::create(
    std::unique_ptr<vio::VirtioDevice> device, const TransportContext& context) {
  if (device == nullptr || context.memory == nullptr) {
    return invalid_input("virtio-pci needs a device and guest memory");
  }
  if (device->num_queues() == 0 || device->num_queues() > 1024 ||
      device->max_queue_size() == 0 || device->max_queue_size() > vio::kMaxQueueSize) {
    return invalid_input("virtio device has an unsupported queue layout");
  }
  std::shared_ptr<VirtioPciDevice> transport(new VirtioPciDevice(std::move(device), context));
  KUMO_TRY(transport->init());
  return transport;
}

Status VirtioPciDevice::init() {
  KUMO_TRY(config_.add_bar({0, kBarBytes, pci::BarKind::kMmio32, false}));
  const uint16_t n = device_->num_queues();
  queues_.resize(n);
  for (auto& q : queues_) {
    q.size = device_->max_queue_size();
    q.notify = KUMO_TRY(make_eventfd());
  }
  irq_->intx = context_.intx;
  KUMO_TRY(config_.add_capability(pci::kCapIdVendor,
                                  virtio_cap(kCapCommon, kCommonCfgOffset, kCommonCfgBytes)));
  auto notify = virtio_cap(kCapNotify, kNotifyOffset, uint32_t{n} * kNotifyOffMultiplier, 4);
  std::memcpy(&notify[14], &kNotifyOffMultiplier, 4);
  KUMO_TRY(config_.add_capability(pci::kCapIdVendor, notify));
  KUMO_TRY(config_.add_capability(pci::kCapIdVendor, virtio_cap(kCapIsr, kIsrOffset, 1)));
  KUMO_TRY(config_.add_capability(pci::kCapIdVendor,
                                  virtio_cap(kCapDevice, kDeviceCfgOffset, 0x1000)));
  // §4.1.4.8 PCI configuration access: bar, offset, length and data are writable.
  auto pci_cfg = virtio_cap(kCapPciCfg, 0, 0, 4);
  std::vector<uint8_t> pci_cfg_mask(pci_cfg.size(), 0);
  pci_cfg_mask[2] = 0xff;
  std::fill(pci_cfg_mask.begin() + 6, pci_cfg_mask.end(), uint8_t{0xff});
  pci_cfg_cap_ = KUMO_TRY(config_.add_capability(pci::kCapIdVendor, pci_cfg, pci_cfg_mask));
  if (context_.msi != nullptr) {
    std::vector<std::unique_ptr<pci::MsiVector>> vectors;
    for (uint32_t i = 0; i < uint32_t{n} + 1; ++i) {
      vectors.push_back(KUMO_TRY(context_.msi->allocate()));
    }
    msix_ = std::make_shared<pci::MsixTable>(std::move(vectors));
    irq_->msix = msix_;
    msix_cap_ = KUMO_TRY(config_.add_capability(
        pci::kCapIdMsix, msix_->capability_body(0, kMsixTableOffset, kMsixPbaOffset),
        pci::MsixTable::capability_writable_mask()));
  }
  return {};
}

VirtioPciDevice::~VirtioPciDevice() {
  shutdown();
  std::lock_guard lock(mutex_);
  register_ioevents(config_.decoding_address(0), false);
}

void VirtioPciDevice::shutdown() {
  std::lock_guard lock(mutex_);
  reset_locked();
}

uint8_t VirtioPciDevice::device_status() {
  std::lock_guard lock(mutex_);
  return static_cast<uint8_t>(status_ | (irq_->needs_reset.load() ? vio::kStatusNeedsReset : 0));
}

uint64_t VirtioPciDevice::offered_features() const {
  return device_->device_features() | vio::feature_bit(vio::kFeatureVersion1) |
         vio::feature_bit(vio::kFeatureIndirectDesc) | vio::feature_bit(vio::kFeatureEventIdx);
}

std::vector<pci::BarSpec> VirtioPciDevice::bars() const { return {*config_.bar(0)}; }

void VirtioPciDevice::set_bar_address(uint8_t index, uint64_t address) {
  std::lock_guard lock(mutex_);
  if (index != 0) {
    return;
  }
  const uint64_t old = config_.decoding_address(0);
  config_.set_bar_address(0, address);
  move_ioevents(old, config_.decoding_address(0));
}

void VirtioPciDevice::move_ioevents(uint64_t from, uint64_t to) {
  if (from != to) {
    register_ioevents(from, false);
    register_ioevents(to, true);
  }
}

void VirtioPciDevice::follow_bar_moves(const std::vector<pci::BarMove>& moves) {
  for (const pci::BarMove& move : moves) {
    if (move.index == 0) {
      move_ioevents(move.old_address, move.new_address);
    }
  }
}

std::vector<pci::BarMove> VirtioPciDevice::reset() {
  std::lock_guard lock(mutex_);
  reset_locked();
  auto moves = config_.reset();
  follow_bar_moves(moves);
  if (msix_) {
    msix_->reset();
  }
  sync_intx_locked();
  return moves;
}

void VirtioPciDevice::register_ioevents(uint64_t bar_address, bool add) {
  if (context_.ioevents == nullptr || bar_address == 0) {
    return;
  }
  for (size_t i = 0; i < queues_.size(); ++i) {
    const uint64_t gpa = bar_address + kNotifyOffset + i * kNotifyOffMultiplier;
    const int fd = queues_[i].notify.get();
    // A failure leaves notifications on the (slower) MMIO exit path, which still works.
    (void)(add ? context_.ioevents->add(gpa, 0, fd) : context_.ioevents->remove(gpa, 0, fd));
  }
}

void VirtioPciDevice::config_read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  config_.read_bytes(offset, data);
  // PCI 3.0 §6.2.3: Status bit 3 (Interrupt Status) shows a pending INTx, whether or not
  // Interrupt Disable keeps the pin deasserted.
  if (offset <= pci::kRegStatus && offset + data.size() > pci::kRegStatus) {
    std::lock_guard intx_lock(irq_->intx_mutex);
    if (irq_->intx_pending) {
      data[pci::kRegStatus - offset] |= pci::kStatusInterrupt;
    }
  }
  // §4.1.4.8: a read of pci_cfg_data reads the BAR window the driver selected.
  const uint64_t data_field = pci_cfg_cap_ + 16u;
  if (pci_cfg_cap_ != 0 && offset >= data_field && offset < data_field + 4) {
    const uint8_t bar = static_cast<uint8_t>(config_.read(pci_cfg_cap_ + 4u, 1));
    const uint32_t bar_offset = config_.read(pci_cfg_cap_ + 8u, 4);
    const uint32_t length = config_.read(pci_cfg_cap_ + 12u, 4);
    std::array<uint8_t, 4> window{};
    if (bar == 0 && (length == 1 || length == 2 || length == 4)) {
      bar_read_locked(bar_offset, std::span(window.data(), length));
    }
    for (size_t i = 0; i < data.size(); ++i) {
      const uint64_t at = offset - data_field + i;
      data[i] = at < 4 ? window[at] : 0;
    }
  }
}

std::vector<pci::BarMove> VirtioPciDevice::config_write(uint64_t offset,
                                                        std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  auto moves = config_.write(offset, data);
  follow_bar_moves(moves);
  after_config_write(offset, data.size());
  return moves;
}

void VirtioPciDevice::after_config_write(uint64_t offset, size_t len) {
  const uint64_t end = offset + len;
  if (msix_cap_ != 0 && offset < msix_cap_ + 4u && end > msix_cap_ + 2u) {
    msix_->set_message_control(static_cast<uint16_t>(config_.read(msix_cap_ + 2u, 2)));
  }
  sync_intx_locked();
  const uint64_t data_field = pci_cfg_cap_ + 16u;
  if (pci_cfg_cap_ != 0 && offset >= data_field && offset < data_field + 4) {
    const uint8_t bar = static_cast<uint8_t>(config_.read(pci_cfg_cap_ + 4u, 1));
    const uint32_t bar_offset = config_.read(pci_cfg_cap_ + 8u, 4);
    const uint32_t length = config_.read(pci_cfg_cap_ + 12u, 4);
    if (bar == 0 && (length == 1 || length == 2 || length == 4)) {
      std::array<uint8_t, 4> window{};
      config_.read_bytes(data_field, window);
      bar_write_locked(bar_offset, std::span<const uint8_t>(window.data(), length));
    }
  }
}

void VirtioPciDevice::sync_intx_locked() {
  const bool msix_enabled = irq_->msix_enabled();
  std::lock_guard lock(irq_->intx_mutex);
  irq_->set_intx_locked(irq_->intx_pending && !msix_enabled,
                        (config_.command() & pci::kCommandInterruptDisable) != 0);
}

void VirtioPciDevice::bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (index != 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  bar_read_locked(offset, data);
}

void VirtioPciDevice::bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) {
  if (index != 0) {
    return;
  }
  std::lock_guard lock(mutex_);
  bar_write_locked(offset, data);
}

void VirtioPciDevice::bar_read_locked(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  if (data.empty() || data.size() > 8 || offset >= kBarBytes || kBarBytes - offset < data.size()) {
    return;
  }
  if (offset < kCommonCfgOffset + kCommonCfgBytes) {
    common_read(offset - kCommonCfgOffset, data);
  } else if (offset == kIsrOffset) {
    data[0] = isr_read();
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + 0x1000) {
    device_->read_config(offset - kDeviceCfgOffset, data);
  } else if (msix_ && offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
    msix_->table_read(offset - kMsixTableOffset, data);
  } else if (msix_ && offset >= kMsixPbaOffset) {
    msix_->pba_read(offset - kMsixPbaOffset, data);
  }
}

void VirtioPciDevice::bar_write_locked(uint64_t offset, std::span<const uint8_t> data) {
  if (data.empty() || data.size() > 8 || offset >= kBarBytes || kBarBytes - offset < data.size()) {
    return;
  }
  if (offset < kCommonCfgOffset + kCommonCfgBytes) {
    common_write(offset - kCommonCfgOffset, data);
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + 0x1000) {
    device_->write_config(offset - kDeviceCfgOffset, data);
  } else if (offset >= kNotifyOffset && offset < kNotifyOffset + 0x1000) {
    // A notification that did not go through an ioeventfd.
    const uint64_t queue = (offset - kNotifyOffset) / kNotifyOffMultiplier;
    if (queue < queues_.size()) {
      signal_eventfd(queues_[queue].notify.get());
    }
  } else if (msix_ && offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
    msix_->table_write(offset - kMsixTableOffset, data);
  }
}

uint8_t VirtioPciDevice::isr_read() {
  // §4.1.4.5.1: reading ISR resets it to zero and de-asserts INTx.
  std::lock_guard lock(irq_->intx_mutex);
  const uint8_t isr = irq_->isr.exchange(0);
  irq_->set_intx_locked(false, irq_->intx_disabled);
  return isr;
}

void VirtioPciDevice::common_read(uint64_t offset, std::span<uint8_t> data) {
  std::array<uint8_t, kCommonCfgBytes> cfg{};
  auto put = [&cfg](uint64_t at, uint64_t value, size_t len) {
    std::memcpy(&cfg[at], &value, len);
  };
  const uint64_t features = offered_features();
  put(kDeviceFeatureSelect, device_feature_select_, 4);
  put(kDeviceFeature,
      device_feature_select_ == 0   ? static_cast<uint32_t>(features)
      : device_feature_select_ == 1 ? static_cast<uint32_t>(features >> 32)
                                    : 0,
      4);
  put(kDriverFeatureSelect, driver_feature_select_, 4);
  put(kDriverFeature,
      driver_feature_select_ == 0   ? static_cast<uint32_t>(driver_features_)
      : driver_feature_select_ == 1 ? static_cast<uint32_t>(driver_features_ >> 32)
                                    : 0,
      4);
  put(kConfigMsixVector, irq_->config_vector.load(), 2);
  put(kNumQueues, queues_.size(), 2);
  put(kDeviceStatus, status_ | (irq_->needs_reset.load() ? vio::kStatusNeedsReset : 0), 1);
  put(kConfigGeneration, irq_->config_generation.load(), 1);
  put(kQueueSelect, queue_select_, 2);
  if (queue_select_ < queues_.size()) {
    const QueueState& q = queues_[queue_select_];
    put(kQueueSize, q.size, 2);
    put(kQueueMsixVector, q.msix_vector, 2);
    put(kQueueEnable, q.enabled ? 1 : 0, 2);
    put(kQueueNotifyOff, queue_select_, 2);
    put(kQueueDesc, q.desc, 8);
    put(kQueueDriver, q.driver, 8);
    put(kQueueDevice, q.device, 8);
    put(kQueueNotifyData, queue_select_, 2);
  }
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = offset + i < cfg.size() ? cfg[offset + i] : 0;
  }
}

void VirtioPciDevice::common_write(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t v = load_le(data);
  const size_t len = data.size();
  const bool driver_ok = (status_ & vio::kStatusDriverOk) != 0;
  QueueState* q = queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
  // 64-bit queue addresses may be written as one qword or two dwords (§4.1.3.1).
  if (offset >= kQueueDesc && offset < kQueueNotifyData) {
    if (q == nullptr || driver_ok || q->enabled) {
      return;
    }
    const uint64_t field = kQueueDesc + (offset - kQueueDesc) / 8 * 8;
    uint64_t& target = field == kQueueDesc ? q->desc : field == kQueueDriver ? q->driver : q->device;
    if (offset == field && len == 8) {
      target = v;
    } else if (offset == field && len == 4) {
      target = (target & 0xffff'ffff'0000'0000ULL) | (v & 0xffff'ffffULL);
    } else if (offset == field + 4 && len == 4) {
      target = (target & 0xffff'ffffULL) | (v << 32);
    }
    return;
  }
  switch (offset) {
    case kDeviceFeatureSelect:
      if (len == 4) device_feature_select_ = static_cast<uint32_t>(v);
      break;
    case kDriverFeatureSelect:
      if (len == 4) driver_feature_select_ = static_cast<uint32_t>(v);
      break;
    case kDriverFeature:
      if (len != 4 || (status_ & vio::kStatusFeaturesOk) != 0) break;
      if (driver_feature_select_ == 0) {
        driver_features_ = (driver_features_ & 0xffff'ffff'0000'0000ULL) | (v & 0xffff'ffffULL);
      } else if (driver_feature_select_ == 1) {
        driver_features_ = (driver_features_ & 0xffff'ffffULL) | (v << 32);
      }
      break;
    case kConfigMsixVector:
      if (len == 2) {
        const auto vector = static_cast<uint16_t>(v);
        // §4.1.5.1.2.1: a vector the device cannot use reads back as NO_VECTOR.
        irq_->config_vector.store(msix_ && vector < msix_->size() ? vector : pci::kMsixNoVector);
      }
      break;
    case kDeviceStatus:
      if (len == 1) write_status(static_cast<uint8_t>(v));
      break;
    case kQueueSelect:
      if (len == 2) queue_select_ = static_cast<uint16_t>(v);
      break;
    case kQueueSize:
      if (len == 2 && q != nullptr && !driver_ok && !q->enabled) {
        // Validated at DRIVER_OK (power of two, at most the maximum).
        q->size = static_cast<uint16_t>(v);
      }
      break;
    case kQueueMsixVector:
      if (len == 2 && q != nullptr) {
        const auto vector = static_cast<uint16_t>(v);
        q->msix_vector = msix_ && vector < msix_->size() ? vector : pci::kMsixNoVector;
      }
      break;
    case kQueueEnable:
      // §4.1.4.3.2: the driver writes 1 to enable; writing 0 has no effect.
      if (len == 2 && q != nullptr && v == 1 && !driver_ok) q->enabled = true;
      break;
    default:
      break;  // read-only or unknown field
  }
}

void VirtioPciDevice::write_status(uint8_t status) {
  if (status == 0) {
    reset_locked();
    return;
  }
  // §2.1.1: the driver MUST NOT clear a status bit (only writing 0 resets). One that does
  // anyway, e.g. drops DRIVER_OK, gets the device stopped — as QEMU stops its ioeventfds and
  // back end — and NEEDS_RESET (§2.1.2, with a configuration change notification while
  // DRIVER_OK is still set): it must reset the device before using it again.
  if ((status_ & ~status & ~vio::kStatusNeedsReset) != 0) {
    stop_device_locked();
    status_ = status;
    set_needs_reset_locked();
    return;
  }
  const uint8_t newly = static_cast<uint8_t>(status & ~status_);
  if ((newly & vio::kStatusFeaturesOk) != 0) {
    const uint64_t offered = offered_features();
    const bool subset = (driver_features_ & ~offered) == 0;
    const bool modern = (driver_features_ & vio::feature_bit(vio::kFeatureVersion1)) != 0;
    // §3.1.1 step 6: leaving FEATURES_OK clear tells the driver the subset is unsupported.
    if (!subset || !modern || !device_->accept_features(driver_features_)) {
      status = static_cast<uint8_t>(status & ~vio::kStatusFeaturesOk);
    }
  }
  status_ = status;
  if ((newly & vio::kStatusDriverOk) != 0) {
    // A device that needs a reset stays stopped until the driver resets it.
    if ((status_ & vio::kStatusFeaturesOk) == 0 || irq_->needs_reset.load()) {
      set_needs_reset_locked();
      return;
    }
    activate_locked();
  }
}

void VirtioPciDevice::set_needs_reset_locked() {
  irq_->needs_reset.store(true);
  // §2.1.2: with DRIVER_OK set, NEEDS_RESET comes with a configuration change notification.
  if ((status_ & vio::kStatusDriverOk) != 0) {
    irq_->raise(kIsrConfig, irq_->config_vector.load());
  }
}

void VirtioPciDevice::stop_device_locked() {
  device_->reset();
  active_ = false;
}

void VirtioPciDevice::activate_locked() {
  vio::ActivateContext ctx;
  ctx.memory = context_.memory;
  ctx.features = driver_features_;
  const bool event_idx = (driver_features_ & vio::feature_bit(vio::kFeatureEventIdx)) != 0;
  const bool indirect = (driver_features_ & vio::feature_bit(vio::kFeatureIndirectDesc)) != 0;
  std::vector<uint16_t> vectors;
  for (QueueState& q : queues_) {
    vectors.push_back(q.msix_vector);
    if (!q.enabled) {
      ctx.queues.emplace_back(std::nullopt);
      continue;
    }
    const vio::QueueConfig config{q.size, true, memory::GuestAddress(q.desc),
                                  memory::GuestAddress(q.driver), memory::GuestAddress(q.device)};
    if (q.size > device_->max_queue_size() ||
        !vio::SplitQueue::validate(*context_.memory, config, event_idx)) {
      set_needs_reset_locked();
      return;
    }
    ctx.queues.emplace_back(
        vio::ActiveQueue{vio::SplitQueue(*context_.memory, config, event_idx, indirect),
                         q.notify.get()});
  }
  ctx.interrupt = std::make_shared<TransportInterrupt>(irq_, std::move(vectors));
  if (!device_->activate(std::move(ctx))) {
    set_needs_reset_locked();
    return;
  }
  active_ = true;
}

void VirtioPciDevice::reset_locked() {
  stop_device_locked();
  status_ = 0;
  device_feature_select_ = 0;
  driver_feature_select_ = 0;
  driver_features_ = 0;
  queue_select_ = 0;
  for (QueueState& q : queues_) {
    q.size = device_->max_queue_size();
    q.enabled = false;
    q.msix_vector = pci::kMsixNoVector;
    q.desc = q.driver = q.device = 0;
    drain_eventfd(q.notify.get());
  }
  irq_->config_vector.store(pci::kMsixNoVector);
  irq_->needs_reset.store(false);
  {
    std::lock_guard lock(irq_->intx_mutex);
    irq_->isr.store(0);
    irq_->set_intx_locked(false, irq_->intx_disabled);
  }
}

}  // namespace kumo::devices::virtio
