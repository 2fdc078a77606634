#include "memory/guest_memory.h"

// Before <sys/mman.h>, whose MFD_* defaults then step aside: only this one has MFD_HUGE_2MB.
#include <linux/memfd.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <string>

namespace kumo::memory {
namespace {
constexpr uint64_t kPageSize = 4096;
constexpr const char* kRamName = "kumo-guest-ram";

// Reserves (PROT_NONE, nothing committed) `size_bytes` of address space starting on a
// kHugePageBytes boundary: maps one huge page more than needed and trims both ends.
Result<uint8_t*> reserve_aligned(uint64_t size_bytes) {
  const uint64_t span = size_bytes + kHugePageBytes;
  void* raw = ::mmap(nullptr, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (raw == MAP_FAILED) {
    return host_error("reserving {} bytes of address space for guest RAM", span);
  }
  auto* const base = static_cast<uint8_t*>(raw);
  const uint64_t misalignment = reinterpret_cast<uintptr_t>(raw) % kHugePageBytes;
  const uint64_t head = misalignment == 0 ? 0 : kHugePageBytes - misalignment;
  const uint64_t tail = span - head - size_bytes;
  if (head > 0) {
    ::munmap(base, head);
  }
  if (tail > 0) {
    ::munmap(base + head + size_bytes, tail);
  }
  return base + head;
}

std::optional<uint64_t> read_sysfs_count(const std::string& path) {
  std::ifstream in(path);
  uint64_t value = 0;
  if (!(in >> value)) {
    return std::nullopt;
  }
  return value;
}

tl::unexpected<Error> hugetlb_pool_too_small(uint64_t needed_pages) {
  const auto available = unreserved_huge_pages();
  const std::string has = available ? fmt::format("{} are free", *available) : "too few are free";
  return invalid_input(
      "{} MiB of guest RAM on hugetlb pages needs {} free 2 MiB huge pages, {} on this host "
      "(the pool is set with sysctl vm.nr_hugepages)",
      needed_pages * (kHugePageBytes >> 20), needed_pages, has);
}

Status check_spec(const RegionSpec& spec, uint64_t previous_end, Backend backend) {
  if (spec.size_bytes == 0 || spec.start.raw() % kPageSize != 0 ||
      spec.size_bytes % kPageSize != 0) {
    return invalid_input("guest memory region at {:#x} of {:#x} bytes is not page aligned",
                         spec.start.raw(), spec.size_bytes);
  }
  if (!spec.start.checked_add(spec.size_bytes) || spec.start.raw() < previous_end ||
      spec.size_bytes > UINT64_MAX - kHugePageBytes) {
    return invalid_input("guest memory region at {:#x} overlaps or wraps", spec.start.raw());
  }
  if (backend == Backend::kHugetlb &&
      (spec.start.raw() % kHugePageBytes != 0 || spec.size_bytes % kHugePageBytes != 0)) {
    return invalid_input(
        "guest memory region at {:#x} of {:#x} bytes is not made of whole 2 MiB huge pages",
        spec.start.raw(), spec.size_bytes);
  }
  return {};
}

Result<UniqueFd> create_memfd(uint64_t size_bytes, Backend backend) {
  const bool hugetlb = backend == Backend::kHugetlb;
  const unsigned flags = MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB | MFD_HUGE_2MB : 0u);
  UniqueFd fd(::memfd_create(kRamName, flags));
  if (!fd) {
    if (hugetlb && errno == EINVAL) {
      return invalid_input("this host's kernel has no 2 MiB hugetlb pages (memfd_create "
                           "MFD_HUGETLB failed)");
    }
    return host_error("memfd_create for guest RAM");
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) != 0) {
    return host_error("sizing guest RAM memfd to {} bytes", size_bytes);
  }
  return fd;
}

// Maps one region at a kHugePageBytes-aligned host address and applies the advice.
Result<GuestRegion> map_region(const RegionSpec& spec, Backend backend) {
  UniqueFd fd;
  if (backend != Backend::kAnonymous) {
    fd = KUMO_TRY(create_memfd(spec.size_bytes, backend));
  }
  uint8_t* const host = KUMO_TRY(reserve_aligned(spec.size_bytes));
  int flags = MAP_FIXED;
  switch (backend) {
    case Backend::kAnonymous:
      flags |= MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
      break;
    case Backend::kMemfd:
      flags |= MAP_SHARED | MAP_NORESERVE;
      break;
    case Backend::kHugetlb:
      flags |= MAP_SHARED;  // reserves the pages now: ENOMEM instead of a SIGBUS later
      break;
  }
  if (::mmap(host, spec.size_bytes, PROT_READ | PROT_WRITE, flags, fd.get(), 0) == MAP_FAILED) {
    const int saved = errno;
    ::munmap(host, spec.size_bytes);
    return host_error_errno(saved, "mapping {} bytes of guest RAM", spec.size_bytes);
  }
  if (backend != Backend::kHugetlb) {
    // Advice only: a kernel without THP (EINVAL) or without anonymous VMA names leaves
    // the RAM on 4 KiB pages or unnamed, which is still correct.
    (void)::madvise(host, spec.size_bytes, MADV_HUGEPAGE);
  }
  if (backend == Backend::kAnonymous) {
    // Private memory would turn copy-on-write in both processes if kumo ever forked; a child
    // has no use for guest RAM (QEMU does the same).
    if (::madvise(host, spec.size_bytes, MADV_DONTFORK) != 0) {
      const int saved = errno;
      ::munmap(host, spec.size_bytes);
      return host_error_errno(saved, "MADV_DONTFORK on guest RAM");
    }
    (void)::prctl(PR_SET_VMA, PR_SET_VMA_ANON_NAME, host, spec.size_bytes, kRamName);
  }
  return GuestRegion(spec.start, spec.size_bytes, backend, std::move(fd), host);
}

}  // namespace

std::optional<uint64_t> unreserved_huge_pages() {
  const std::string dir = "/sys/kernel/mm/hugepages/hugepages-2048kB/";
  const auto free = read_sysfs_count(dir + "free_hugepages");
  const auto reserved = read_sysfs_count(dir + "resv_hugepages");
  if (!free || !reserved) {
    return std::nullopt;
  }
  return *free > *reserved ? *free - *reserved : 0;
}

GuestRegion::GuestRegion(GuestAddress start, uint64_t size_bytes, Backend backend, UniqueFd memfd,
                         uint8_t* host)
    : start_(start), size_bytes_(size_bytes), backend_(backend), memfd_(std::move(memfd)),
      host_(host) {}

GuestRegion::GuestRegion(GuestRegion&& other) noexcept
    : start_(other.start_),
      size_bytes_(std::exchange(other.size_bytes_, 0)),
      backend_(other.backend_),
      memfd_(std::move(other.memfd_)),
      host_(std::exchange(other.host_, nullptr)) {}

GuestRegion::~GuestRegion() {
  if (host_ != nullptr) {
    ::munmap(host_, size_bytes_);
  }
}

Status GuestRegion::discard() const {
  if (host_ == nullptr) {
    return {};
  }
  switch (backend_) {
    case Backend::kAnonymous:
      if (::madvise(host_, size_bytes_, MADV_DONTNEED) != 0) {
        return host_error("discarding guest RAM at {:#x}", start_.raw());
      }
      return {};
    case Backend::kMemfd:
      if (::fallocate(memfd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                      static_cast<off_t>(size_bytes_)) != 0) {
        return host_error("discarding guest RAM at {:#x}", start_.raw());
      }
      return {};
    case Backend::kHugetlb:
      // A punched hole would give up the pages' reservation: another process could take
      // them before the guest touches them again, and that touch would then be a SIGBUS.
      std::memset(host_, 0, size_bytes_);
      return {};
  }
  return {};
}

Result<GuestMemory> GuestMemory::create(const std::vector<RegionSpec>& specs, Backend backend) {
  uint64_t previous_end = 0;
  uint64_t total_bytes = 0;
  for (const RegionSpec& spec : specs) {
    KUMO_TRY(check_spec(spec, previous_end, backend));
    previous_end = spec.start.raw() + spec.size_bytes;
    total_bytes += spec.size_bytes;
  }
  if (backend == Backend::kHugetlb) {
    const uint64_t needed = total_bytes / kHugePageBytes;
    const auto available = unreserved_huge_pages();
    if (available && *available < needed) {
      return hugetlb_pool_too_small(needed);
    }
  }
  std::vector<GuestRegion> regions;
  regions.reserve(specs.size());
  for (const RegionSpec& spec : specs) {
    auto region = map_region(spec, backend);
    if (!region && backend == Backend::kHugetlb && region.error().errno_value == ENOMEM) {
      return hugetlb_pool_too_small(total_bytes / kHugePageBytes);  // lost a race for pages
    }
    regions.push_back(KUMO_TRY(std::move(region)));
  }
  return GuestMemory(std::move(regions));
}

uint64_t GuestMemory::total_bytes() const {
  uint64_t total = 0;
  for (const GuestRegion& r : regions_) {
    total += r.size_bytes();
  }
  return total;
}

Result<std::span<uint8_t>> GuestMemory::host_span(GuestAddress gpa, uint64_t len) const {
  const auto end = gpa.checked_add(len);
  if (!end) {
    return guest_error("guest range {:#x}+{:#x} wraps around", gpa.raw(), len);
  }
  for (const GuestRegion& r : regions_) {
    if (gpa >= r.start() && end->raw() <= r.end_raw()) {
      const uint64_t offset = gpa.raw() - r.start().raw();
      return std::span<uint8_t>(r.host_base() + offset, len);
    }
  }
  return guest_error("guest range {:#x}+{:#x} is outside guest RAM", gpa.raw(), len);
}

bool GuestMemory::contains(GuestAddress gpa, uint64_t len) const {
  return host_span(gpa, len).has_value();
}

Status GuestMemory::read(GuestAddress gpa, std::span<uint8_t> out) const {
  auto src = KUMO_TRY(host_span(gpa, out.size()));
  std::memcpy(out.data(), src.data(), out.size());
  return {};
}

Status GuestMemory::write(GuestAddress gpa, std::span<const uint8_t> in) const {
  auto dst = KUMO_TRY(host_span(gpa, in.size()));
  std::memcpy(dst.data(), in.data(), in.size());
  return {};
}

Status GuestMemory::fill(GuestAddress gpa, uint8_t value, uint64_t len) const {
  auto dst = KUMO_TRY(host_span(gpa, len));
  std::memset(dst.data(), value, len);
  return {};
}

Status GuestMemory::discard_all() const {
  for (const GuestRegion& r : regions_) {
    KUMO_TRY(r.discard());
  }
  return {};
}

}  // namespace kumo::memory
