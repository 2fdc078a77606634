#pragma once
// KvmSystem: the /dev/kvm fd. Checks the API version and the capabilities kumo relies on.

#include <linux/kvm.h>

#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "kvm/vm_fd.h"

namespace kumo::kvm {

class KvmSystem final {
 public:
  // Opens /dev/kvm (or `path`) and checks KVM_GET_API_VERSION == 12 and every capability
  // kumo needs; a missing one is a kHost error naming it.
  [[nodiscard]] static Result<KvmSystem> open(const char* path = "/dev/kvm");

  [[nodiscard]] int fd() const { return fd_.get(); }
  // KVM_CHECK_EXTENSION; 0 when absent.
  [[nodiscard]] int check_extension(long capability) const;
  [[nodiscard]] Result<int> vcpu_mmap_size() const;
  // KVM_CAP_MAX_VCPUS (falls back to KVM_CAP_NR_VCPUS, then 4 as the API doc says).
  [[nodiscard]] int max_vcpus() const;
  [[nodiscard]] Result<std::vector<kvm_cpuid_entry2>> supported_cpuid() const;
  [[nodiscard]] Result<std::vector<uint32_t>> msr_index_list() const;
  [[nodiscard]] Result<VmFd> create_vm() const;

 private:
  explicit KvmSystem(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace kumo::kvm
