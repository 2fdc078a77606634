#include "devices/virtio/net/net_device.h"

#include <algorithm>
#include <cstring>

#include "net/tap.h"
#include "virtio/virtio_spec.h"

namespace kumo::devices::virtio::net {

namespace vio = kumo::virtio;

VirtioNet::VirtioNet(FrameBackends backends, const kumo::net::MacAddress& mac,
                     NetWorkerSettings settings)
    : backends_(std::move(backends)),
      backend_enabled_(backends_.size(), true),
      settings_(std::move(settings)),
      rx_limit_(settings_.bandwidth, settings_.ops),
      tx_limit_(settings_.bandwidth, settings_.ops) {
  std::memcpy(config_.mac, mac.bytes.data(), 6);
  config_.status = kStatusLinkUp;
  config_.max_virtqueue_pairs = max_pairs();
}

namespace {
FrameBackends one_backend(std::unique_ptr<kumo::net::FrameBackend> backend) {
  FrameBackends v;
  v.push_back(std::move(backend));
  return v;
}
}  // namespace

VirtioNet::VirtioNet(std::unique_ptr<kumo::net::FrameBackend> backend,
                     const kumo::net::MacAddress& mac, NetWorkerSettings settings)
    : VirtioNet(one_backend(std::move(backend)), mac, std::move(settings)) {}

VirtioNet::~VirtioNet() { reset(); }

uint16_t VirtioNet::device_type() const { return vio::kDeviceIdNet; }

uint64_t VirtioNet::device_features() const {
  uint64_t f = 0;
  for (uint32_t bit : {kFeatureCsum, kFeatureGuestCsum, kFeatureMac, kFeatureGuestTso4,
                       kFeatureGuestTso6, kFeatureGuestEcn, kFeatureHostTso4, kFeatureHostTso6,
                       kFeatureHostEcn, kFeatureMrgRxbuf, kFeatureStatus}) {
    f |= vio::feature_bit(bit);
  }
  if (max_pairs() > 1) {
    f |= vio::feature_bit(kFeatureCtrlVq) | vio::feature_bit(kFeatureMq);
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
  if (has(kFeatureMq) && !has(kFeatureCtrlVq)) {
    return guest_error("MQ without CTRL_VQ");
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
  for (auto& backend : backends_) {
    KUMO_TRY(backend->set_offloads(kumo::net::Offloads{.csum = has(kFeatureGuestCsum),
                                                       .tso4 = has(kFeatureGuestTso4),
                                                       .tso6 = has(kFeatureGuestTso6),
                                                       .tso_ecn = has(kFeatureGuestEcn),
                                                       .ufo = false}));
  }
  {
    std::lock_guard lock(config_mutex_);
    interrupt_ = context.interrupt;
  }
  context_ = std::move(context);
  // §5.1.6.5.5: only the first pair until the driver asks for more.
  KUMO_TRY(set_active_pairs(1));
  if (has(kFeatureCtrlVq)) {
    control_ = KUMO_TRY(ControlWorker::start(
        context_, static_cast<uint16_t>(2 * max_pairs()),
        [this, mq = has(kFeatureMq)](const ControlCommand& cmd) {
          const auto pairs = requested_pairs(cmd, mq, max_pairs());
          return pairs && set_active_pairs(*pairs) ? kCtrlOk : kCtrlErr;
        }));
  }
  return {};
}

Status VirtioNet::set_active_pairs(size_t pairs) {
  while (workers_.size() > pairs) {
    workers_.back()->stop();
    workers_.pop_back();
    active_pairs_.store(workers_.size());
  }
  // The tap queues of the pairs not in use: just stopped, or never run since creation or a
  // reset (tap queues start attached).
  for (size_t k = pairs; k < backends_.size(); ++k) {
    KUMO_TRY(set_backend_enabled(k, false));
  }
  while (workers_.size() < pairs) {
    const size_t k = workers_.size();
    KUMO_TRY(set_backend_enabled(k, true));
    workers_.push_back(KUMO_TRY(NetWorker::start(context_, static_cast<uint16_t>(k),
                                                 *backends_[k], settings_,
                                                 NetLimiters{rx_limit_, tx_limit_}, counters_)));
    active_pairs_.store(workers_.size());
  }
  return {};
}

Status VirtioNet::set_backend_enabled(size_t pair, bool enabled) {
  if (backend_enabled_[pair] != enabled) {
    KUMO_TRY(backends_[pair]->set_enabled(enabled));
    backend_enabled_[pair] = enabled;
  }
  return {};
}

void VirtioNet::reset() {
  // The control worker first: it may be starting or stopping pair workers.
  control_.reset();
  while (!workers_.empty()) {
    workers_.back()->stop();
    workers_.pop_back();
  }
  active_pairs_.store(0);
  context_ = vio::ActivateContext{};
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

Result<FrameBackends> open_tap_backends(const NetOptions& options,
                                        const kumo::net::MacAddress& mac) {
  KUMO_TRY(kumo::net::check_mac_unused(mac));
  auto taps = KUMO_TRY(kumo::net::Tap::create_multiqueue(options.tap, options.queues));
  if (!options.bridge.empty()) {
    KUMO_TRY(kumo::net::attach_to_bridge(taps.front().name(), options.bridge));
  }
  FrameBackends backends;
  for (auto& tap : taps) {
    backends.push_back(std::make_unique<kumo::net::Tap>(std::move(tap)));
  }
  return backends;
}

}  // namespace kumo::devices::virtio::net
