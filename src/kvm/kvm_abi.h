#pragma once
// Variable-length KVM ioctl ABI, spelled out for C++.
//
// Debian 12's <linux/kvm.h> declares flexible arrays with __DECLARE_FLEX_ARRAY, which in C++
// adds a one-byte member: sizeof(kvm_cpuid2) becomes 12 instead of 8, shifting `entries` and
// changing the ioctl numbers (KVM then answers EINVAL). These headers have the C layout:
// a fixed header followed by the entries, and the ioctl numbers computed from it.

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace kumo::kvm::abi {

struct CpuidHeader {  // struct kvm_cpuid2
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {  // struct kvm_msrs
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {  // struct kvm_msr_list
  uint32_t nmsrs;
};
struct IrqRoutingHeader {  // struct kvm_irq_routing
  uint32_t nr;
  uint32_t flags;
};

static_assert(sizeof(CpuidHeader) == 8 && sizeof(MsrsHeader) == 8);

constexpr unsigned long kGetSupportedCpuid = _IOWR(KVMIO, 0x05, CpuidHeader);
constexpr unsigned long kSetCpuid2 = _IOW(KVMIO, 0x90, CpuidHeader);
constexpr unsigned long kGetMsrIndexList = _IOWR(KVMIO, 0x02, MsrListHeader);
constexpr unsigned long kGetMsrs = _IOWR(KVMIO, 0x88, MsrsHeader);
constexpr unsigned long kSetMsrs = _IOW(KVMIO, 0x89, MsrsHeader);
constexpr unsigned long kSetGsiRouting = _IOW(KVMIO, 0x6a, IrqRoutingHeader);

// A header followed by `count` entries, 8-byte aligned, zero-initialized.
template <typename Header, typename Entry>
class VarBuffer final {
 public:
  explicit VarBuffer(size_t count)
      : storage_(std::make_unique<uint64_t[]>((sizeof(Header) + count * sizeof(Entry)) / 8 + 1)),
        count_(count) {}
  [[nodiscard]] void* data() { return storage_.get(); }
  [[nodiscard]] Header& header() { return *reinterpret_cast<Header*>(storage_.get()); }
  [[nodiscard]] Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<uint8_t*>(storage_.get()) + sizeof(Header));
  }
  [[nodiscard]] size_t capacity() const { return count_; }

 private:
  std::unique_ptr<uint64_t[]> storage_;
  size_t count_;
};

}  // namespace kumo::kvm::abi

// The numbers as the C headers compute them (checked against gcc's C build of <linux/kvm.h>).
static_assert(kumo::kvm::abi::kGetSupportedCpuid == 0xc008ae05);
static_assert(kumo::kvm::abi::kSetCpuid2 == 0x4008ae90);
static_assert(kumo::kvm::abi::kSetMsrs == 0x4008ae89);
static_assert(kumo::kvm::abi::kGetMsrIndexList == 0xc004ae02);
static_assert(kumo::kvm::abi::kSetGsiRouting == 0x4008ae6a);
