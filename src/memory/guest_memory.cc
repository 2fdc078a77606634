#include "memory/guest_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>

namespace kumo::memory {
namespace {
constexpr uint64_t kPageSize = 4096;
}  // namespace

GuestRegion::GuestRegion(GuestAddress start, uint64_t size_bytes, UniqueFd memfd, uint8_t* host)
    : start_(start), size_bytes_(size_bytes), memfd_(std::move(memfd)), host_(host) {}

GuestRegion::GuestRegion(GuestRegion&& other) noexcept
    : start_(other.start_),
      size_bytes_(std::exchange(other.size_bytes_, 0)),
      memfd_(std::move(other.memfd_)),
      host_(std::exchange(other.host_, nullptr)) {}

GuestRegion::~GuestRegion() {
  if (host_ != nullptr) {
    ::munmap(host_, size_bytes_);
  }
}

Result<GuestMemory> GuestMemory::create(const std::vector<RegionSpec>& specs) {
  std::vector<GuestRegion> regions;
  regions.reserve(specs.size());
  uint64_t previous_end = 0;
  for (const RegionSpec& spec : specs) {
    if (spec.size_bytes == 0 || spec.start.raw() % kPageSize != 0 ||
        spec.size_bytes % kPageSize != 0) {
      return invalid_input("guest memory region at {:#x} of {:#x} bytes is not page aligned",
                           spec.start.raw(), spec.size_bytes);
    }
    if (!spec.start.checked_add(spec.size_bytes) || spec.start.raw() < previous_end) {
      return invalid_input("guest memory region at {:#x} overlaps or wraps", spec.start.raw());
    }
    previous_end = spec.start.raw() + spec.size_bytes;
    UniqueFd fd(::memfd_create("kumo-guest-ram", MFD_CLOEXEC));
    if (!fd) {
      return host_error("memfd_create for guest RAM");
    }
    if (::ftruncate(fd.get(), static_cast<off_t>(spec.size_bytes)) != 0) {
      return host_error("sizing guest RAM memfd to {} bytes", spec.size_bytes);
    }
    void* host = ::mmap(nullptr, spec.size_bytes, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_NORESERVE, fd.get(), 0);
    if (host == MAP_FAILED) {
      return host_error("mapping {} bytes of guest RAM", spec.size_bytes);
    }
    ::madvise(host, spec.size_bytes, MADV_DONTDUMP);
    regions.emplace_back(spec.start, spec.size_bytes, std::move(fd), static_cast<uint8_t*>(host));
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
    if (::fallocate(r.memfd(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
                    static_cast<off_t>(r.size_bytes())) != 0) {
      return host_error("discarding guest RAM at {:#x}", r.start().raw());
    }
  }
  return {};
}

}  // namespace kumo::memory
