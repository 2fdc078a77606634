#include "vmm/kvm_pci_glue.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include "base/unique_fd.h"

namespace kumo::vmm {
namespace {

class KvmMsiVector final : public devices::pci::MsiVector {
 public:
  KvmMsiVector(const kvm::VmFd& vm, IrqRouting& routing, uint32_t gsi, UniqueFd eventfd)
      : vm_(vm), routing_(routing), gsi_(gsi), eventfd_(std::move(eventfd)) {}
  ~KvmMsiVector() override { (void)vm_.irqfd(eventfd_.get(), gsi_, /*deassign=*/true); }

  Status trigger() override {
    const uint64_t one = 1;
    if (::write(eventfd_.get(), &one, sizeof(one)) != sizeof(one)) {
      return host_error("signalling MSI GSI {}", gsi_);
    }
    return {};
  }
  Status update(const devices::pci::MsiMessage& message, bool masked) override {
    return routing_.set_msi(gsi_, message.address, message.data, masked);
  }

 private:
  const kvm::VmFd& vm_;
  IrqRouting& routing_;
  uint32_t gsi_;
  UniqueFd eventfd_;
};

}  // namespace

Result<std::unique_ptr<devices::pci::MsiVector>> KvmMsiVectorAllocator::allocate() {
  const uint32_t gsi = KUMO_TRY(routing_.allocate_msi_gsi());
  UniqueFd eventfd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!eventfd) {
    return host_error("eventfd for MSI GSI {}", gsi);
  }
  KUMO_TRY(vm_.irqfd(eventfd.get(), gsi));
  return std::make_unique<KvmMsiVector>(vm_, routing_, gsi, std::move(eventfd));
}

Status KvmIoEventRegistry::add(uint64_t gpa, uint32_t len_bytes, int eventfd) {
  return vm_.ioeventfd(eventfd, gpa, len_bytes, /*pio=*/false, /*datamatch=*/nullptr);
}

Status KvmIoEventRegistry::remove(uint64_t gpa, uint32_t len_bytes, int eventfd) {
  return vm_.ioeventfd(eventfd, gpa, len_bytes, /*pio=*/false, nullptr, /*deassign=*/true);
}

}  // namespace kumo::vmm
