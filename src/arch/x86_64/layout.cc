#include "arch/x86_64/layout.h"

namespace kumo::arch::x86_64 {
namespace {
constexpr uint64_t kPtePresent = 1ull << 0;
constexpr uint64_t kPteWritable = 1ull << 1;
constexpr uint64_t kPtePageSize = 1ull << 7;  // a 2 MiB page in a PD entry
constexpr uint64_t kLargePageBytes = 2 * kMiB;
constexpr uint64_t kEntriesPerTable = 512;

static_assert(kPvhMemmapGpa + kPvhMemmapMaxEntries * 24 <= kZeroPageGpa);
static_assert(kCmdlineGpa + kCmdlineMaxBytes <= kEbdaGpa);
static_assert(kAcpiGpa + kAcpiMaxBytes <= kMpTableGpa);
static_assert(kMpTableGpa + kMpTableMaxBytes <= kKernelLoadGpa);
static_assert(kIdentityMapBytes == kEntriesPerTable * kLargePageBytes);
static_assert(kPciMmioEndGpa <= kIoapicGpa && kIoapicGpa < kLapicGpa);
}  // namespace

Result<std::vector<memory::RegionSpec>> ram_regions(uint64_t ram_bytes) {
  if (ram_bytes < kMinRamBytes) {
    return invalid_input("guest RAM of {} bytes is below the minimum of {} MiB", ram_bytes,
                         kMinRamBytes / kMiB);
  }
  if (ram_bytes > kMaxRamBytes) {
    return invalid_input("guest RAM of {} bytes is above the maximum of {} GiB", ram_bytes,
                         kMaxRamBytes / kGiB);
  }
  if (ram_bytes % kPageSize != 0) {
    return invalid_input("guest RAM of {} bytes is not a multiple of {} bytes", ram_bytes,
                         kPageSize);
  }
  std::vector<memory::RegionSpec> regions;
  regions.push_back({memory::GuestAddress(0), low_ram_end(ram_bytes)});
  if (ram_bytes > kMmioHoleGpa) {
    regions.push_back({memory::GuestAddress(kHighRamGpa), ram_bytes - kMmioHoleGpa});
  }
  return regions;
}

Result<uint64_t> layout_ram_bytes(const memory::GuestMemory& mem) {
  const uint64_t total = mem.total_bytes();
  auto expected = ram_regions(total);
  if (!expected) {
    return tl::unexpected(expected.error());
  }
  const auto& actual = mem.regions();
  bool same = actual.size() == expected->size();
  for (size_t i = 0; same && i < actual.size(); ++i) {
    same = actual[i].start() == (*expected)[i].start &&
           actual[i].size_bytes() == (*expected)[i].size_bytes;
  }
  if (!same) {
    return invalid_input("guest memory regions do not follow the x86_64 layout for {} bytes",
                         total);
  }
  return total;
}

Status write_identity_page_tables(memory::GuestMemory& mem) {
  const memory::GuestAddress pml4(kPml4Gpa);
  const memory::GuestAddress pdpt(kPdptGpa);
  const memory::GuestAddress pd(kPdGpa);
  KUMO_TRY(mem.fill(pml4, 0, kPageSize));
  KUMO_TRY(mem.fill(pdpt, 0, kPageSize));
  KUMO_TRY(mem.write_obj<uint64_t>(pml4, kPdptGpa | kPtePresent | kPteWritable));
  KUMO_TRY(mem.write_obj<uint64_t>(pdpt, kPdGpa | kPtePresent | kPteWritable));
  for (uint64_t i = 0; i < kEntriesPerTable; ++i) {
    const uint64_t entry = (i * kLargePageBytes) | kPtePresent | kPteWritable | kPtePageSize;
    KUMO_TRY(mem.write_obj<uint64_t>(pd.unchecked_add(i * sizeof(uint64_t)), entry));
  }
  return {};
}

}  // namespace kumo::arch::x86_64
