#include "devices/shared_interrupt_line.h"

namespace kumo::devices {

class SharedInterruptLine::Source final : public InterruptLine {
 public:
  Source(std::shared_ptr<SharedInterruptLine> shared, uint64_t bit)
      : shared_(std::move(shared)), bit_(bit) {}
  Status set_level(bool asserted) override { return shared_->set(bit_, asserted); }
  Status pulse() override {
    KUMO_TRY(shared_->set(bit_, true));
    return shared_->set(bit_, false);
  }

 private:
  std::shared_ptr<SharedInterruptLine> shared_;
  uint64_t bit_;
};

Result<std::shared_ptr<InterruptLine>> SharedInterruptLine::add_source() {
  std::lock_guard lock(mutex_);
  if (sources_ == 64) {
    return invalid_input("more than 64 devices share one interrupt line");
  }
  const uint64_t bit = uint64_t{1} << sources_++;
  return std::shared_ptr<InterruptLine>(std::make_shared<Source>(shared_from_this(), bit));
}

Status SharedInterruptLine::set(uint64_t bit, bool asserted) {
  std::lock_guard lock(mutex_);
  const bool was = asserted_ != 0;
  asserted_ = asserted ? (asserted_ | bit) : (asserted_ & ~bit);
  const bool now = asserted_ != 0;
  if (was == now) {
    return {};
  }
  return line_->set_level(now);
}

}  // namespace kumo::devices
