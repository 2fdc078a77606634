#include "kvm/kvm_system.h"

#include <fcntl.h>
#include <sys/ioctl.h>

#include <memory>

#include "kvm/kvm_abi.h"

namespace kumo::kvm {
namespace {

struct RequiredCap {
  long cap;
  const char* name;
};

constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_USER_NMI, "KVM_CAP_USER_NMI"},
};

}  // namespace

Result<KvmSystem> KvmSystem::open(const char* path) {
  UniqueFd fd(::open(path, O_RDWR | O_CLOEXEC));
  if (!fd) {
    return host_error("opening {} (is KVM available and are you allowed to use it?)", path);
  }
  const int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return host_error_errno(0, "{} reports KVM API version {}, kumo needs {}", path, version,
                            KVM_API_VERSION);
  }
  KvmSystem kvm(std::move(fd));
  for (const RequiredCap& c : kRequiredCaps) {
    if (kvm.check_extension(c.cap) <= 0) {
      return host_error_errno(0, "KVM lacks required capability {}", c.name);
    }
  }
  return kvm;
}

int KvmSystem::check_extension(long capability) const {
  const int r = ::ioctl(fd_.get(), KVM_CHECK_EXTENSION, capability);
  return r < 0 ? 0 : r;
}

Result<int> KvmSystem::vcpu_mmap_size() const {
  const int size = ::ioctl(fd_.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (size <= 0) {
    return host_error("KVM_GET_VCPU_MMAP_SIZE");
  }
  return size;
}

int KvmSystem::max_vcpus() const {
  if (int n = check_extension(KVM_CAP_MAX_VCPUS); n > 0) {
    return n;
  }
  if (int n = check_extension(KVM_CAP_NR_VCPUS); n > 0) {
    return n;
  }
  return 4;
}

Result<std::vector<kvm_cpuid_entry2>> KvmSystem::supported_cpuid() const {
  // The ioctl fails with E2BIG until the buffer is large enough.
  for (uint32_t max_entries = 64; max_entries <= 4096; max_entries *= 2) {
    abi::VarBuffer<abi::CpuidHeader, kvm_cpuid_entry2> buffer(max_entries);
    buffer.header().nent = max_entries;
    if (::ioctl(fd_.get(), abi::kGetSupportedCpuid, buffer.data()) == 0) {
      return std::vector<kvm_cpuid_entry2>(buffer.entries(),
                                           buffer.entries() + buffer.header().nent);
    }
    if (errno != E2BIG) {
      break;
    }
  }
  return host_error("KVM_GET_SUPPORTED_CPUID");
}

Result<std::vector<uint32_t>> KvmSystem::msr_index_list() const {
  abi::MsrListHeader probe{0};
  ::ioctl(fd_.get(), abi::kGetMsrIndexList, &probe);  // E2BIG, fills nmsrs
  abi::VarBuffer<abi::MsrListHeader, uint32_t> buffer(probe.nmsrs);
  buffer.header().nmsrs = probe.nmsrs;
  if (::ioctl(fd_.get(), abi::kGetMsrIndexList, buffer.data()) != 0) {
    return host_error("KVM_GET_MSR_INDEX_LIST");
  }
  return std::vector<uint32_t>(buffer.entries(), buffer.entries() + buffer.header().nmsrs);
}

Result<VmFd> KvmSystem::create_vm() const {
  int vm = -1;
  do {
    vm = ::ioctl(fd_.get(), KVM_CREATE_VM, 0);
  } while (vm < 0 && errno == EINTR);
  if (vm < 0) {
    return host_error("KVM_CREATE_VM");
  }
  auto mmap_size = KUMO_TRY(vcpu_mmap_size());
  return VmFd(UniqueFd(vm), mmap_size);
}

}  // namespace kumo::kvm
