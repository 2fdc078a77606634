#include "devices/virtio/net/net_device.h"

#include <algorithm>
#include <cstring>

#include "net/tap.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

VirtioNet::VirtioNet(std::unique_ptr<kumo::net::FrameBackend> backend,
                     const kumo::net::MacAddress& mac, NetWorkerSettings settings)
    : backend_(std::move(backend)), settings_(std::move(settings)) {
  std::memcpy(config_.mac, mac.bytes.data(), 6);
  config_.status = kStatusLinkUp;
}

VirtioNet::~VirtioNet() { reset(); }

uint16_t VirtioNet::device_type() const { return vio::kDeviceIdNet; }

uint64_t VirtioNet::device_features() const {
  uint64_t f = 0;
  for (uint32_t bit : {kFeatureCsum, kFeatureGuestCsum, kFeatureMac, kFeatureGuestTso4,
                       kFeatureGuestTso6, kFeatureGuestEcn, kFeatureHostTso4, kFeatureHostTso6,
                       kFeatureHostEcn, kFeatureMrgRxbuf, kFeatureStatus}) {
    f |= vio::feature_bit(bit);
  }
  return f;
}

Status VirtioNet::accept_features(uint64_t features) {
  auto has = [features](uint32_t bit) { return (features & vio::feature_bit(bit)) != 0; };
  // §5.1.3.1 Feature bit requirements.
  if ((has(kFeatureGuestTso4) || has(kFeatureGuestTso6)) && !has(kFeatureGuestCsum)) {
    return guest_error("GUEST_TSO without GUEST_CSUM");
  }
  if (has(kFeatureGuestEcn) && !has(kFeatureGuestTso4) && !has(kFeatureGuestTso6)) {
    return guest_error("GUEST_ECN without GUEST_TSO4/6");
  }
  if ((has(kFeatureHostTso4) || has(kFeatureHostTso6)) && !has(kFeatureCsum)) {
    return guest_error("HOST_TSO without CSUM");
  }
  if (has(kFeatureHostEcn) && !has(kFeatureHostTso4) && !has(kFeatureHostTso6)) {
    return guest_error("HOST_ECN without HOST_TSO4/6");
  }
  return {};
}

void VirtioNet::read_config(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), uint8_t{0});
  std::lock_guard lock(config_mutex_);
  if (offset >= sizeof(config_)) return;
  const size_t n = std::min<size_t>(data.size(), sizeof(config_) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config_) + offset, n);
}

Status VirtioNet::activate(vio::ActivateContext context) {
  reset();
  auto has = [&](uint32_t bit) { return (context.features & vio::feature_bit(bit)) != 0; };
  KUMO_TRY(backend_->set_offloads(kumo::net::Offloads{.csum = has(kFeatureGuestCsum),
                                                      .tso4 = has(kFeatureGuestTso4),
                                                      .tso6 = has(kFeatureGuestTso6),
                                                      .tso_ecn = has(kFeatureGuestEcn),
                                                      .ufo = false}));
  {
    std::lock_guard lock(config_mutex_);
    interrupt_ = context.interrupt;
  }
  worker_ = KUMO_TRY(NetWorker::start(std::move(context), *backend_, settings_, counters_));
  return {};
}

void VirtioNet::reset() {
  if (worker_) {
    worker_->stop();
    worker_.reset();
  }
  std::lock_guard lock(config_mutex_);
  interrupt_.reset();
}

void VirtioNet::set_link(bool up) {
  std::shared_ptr<vio::VirtioInterrupt> interrupt;
  {
    std::lock_guard lock(config_mutex_);
    config_.status = up ? kStatusLinkUp : 0;
    interrupt = interrupt_;
  }
  if (interrupt) {
    interrupt->signal_config_change();
  }
}

Result<std::unique_ptr<kumo::net::FrameBackend>> open_tap_backend(
    const NetOptions& options, const kumo::net::MacAddress& mac) {
  KUMO_TRY(kumo::net::check_mac_unused(mac));
  auto tap = KUMO_TRY(kumo::net::Tap::create(options.tap));
  if (!options.bridge.empty()) {
    KUMO_TRY(kumo::net::attach_to_bridge(tap.name(), options.bridge));
  }
  return std::unique_ptr<kumo::net::FrameBackend>(
      std::make_unique<kumo::net::Tap>(std::move(tap)));
}

}  // namespace kumo::devices::virtio::net
