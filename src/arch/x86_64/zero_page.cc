#include "arch/x86_64/zero_page.h"

#include <algorithm>

#include "arch/x86_64/byte_order.h"
#include "arch/x86_64/bzimage.h"
#include "arch/x86_64/layout.h"
#include "base/check.h"

namespace kumo::arch::x86_64 {
namespace {
constexpr size_t kE820EntryBytes = 20;
constexpr uint8_t kLoaderUndefined = 0xff;
constexpr uint16_t kVidModeNormal = 0xffff;
static_assert(kBpE820Table + kZeroPageE820MaxEntries * kE820EntryBytes <= kZeroPageBytes);
}  // namespace

Result<std::array<uint8_t, kZeroPageBytes>> build_zero_page(const LoadedKernel& kernel,
                                                            const BootInfo& info) {
  if (info.e820.size() > kZeroPageE820MaxEntries) {
    return invalid_input("e820 map has {} entries, the zero page holds at most {}",
                         info.e820.size(), kZeroPageE820MaxEntries);
  }
  KUMO_CHECK(kernel.setup_header.size() <= kSetupHeaderEndMax - kSetupHeaderGpaOffset);
  std::array<uint8_t, kZeroPageBytes> page{};
  std::copy(kernel.setup_header.begin(), kernel.setup_header.end(),
            page.begin() + kSetupHeaderGpaOffset);

  page[kBpTypeOfLoader] = kLoaderUndefined;
  store_le<uint16_t>(page, kBpVidMode, kVidModeNormal);
  store_le<uint32_t>(page, kBpHardwareSubarch, 0);
  store_le<uint64_t>(page, kBpSetupData, 0);
  store_le<uint32_t>(page, kBpCmdLinePtr, static_cast<uint32_t>(info.cmdline_gpa));
  store_le<uint32_t>(page, kBpExtCmdLinePtr, static_cast<uint32_t>(info.cmdline_gpa >> 32));
  if (info.initrd) {
    const uint64_t gpa = info.initrd->gpa;
    const uint64_t size = info.initrd->size_bytes;
    store_le<uint32_t>(page, kBpRamdiskImage, static_cast<uint32_t>(gpa));
    store_le<uint32_t>(page, kBpExtRamdiskImage, static_cast<uint32_t>(gpa >> 32));
    store_le<uint32_t>(page, kBpRamdiskSize, static_cast<uint32_t>(size));
    store_le<uint32_t>(page, kBpExtRamdiskSize, static_cast<uint32_t>(size >> 32));
  }
  store_le<uint64_t>(page, kBpAcpiRsdpAddr, info.rsdp_gpa);
  page[kBpE820Entries] = static_cast<uint8_t>(info.e820.size());
  for (size_t i = 0; i < info.e820.size(); ++i) {
    const size_t at = kBpE820Table + i * kE820EntryBytes;
    store_le<uint64_t>(page, at, info.e820[i].addr);
    store_le<uint64_t>(page, at + 8, info.e820[i].size);
    store_le<uint32_t>(page, at + 16, static_cast<uint32_t>(info.e820[i].type));
  }
  return page;
}

Status write_zero_page(memory::GuestMemory& mem, const LoadedKernel& kernel,
                       const BootInfo& info) {
  const auto page = KUMO_TRY(build_zero_page(kernel, info));
  return mem.write(memory::GuestAddress(kZeroPageGpa), page);
}

}  // namespace kumo::arch::x86_64
