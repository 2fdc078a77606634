#pragma once
// GuestMemory: the guest's RAM as host mappings, reached only through checked accesses.
//
// Every address and length given to these functions may be guest-controlled: they check
// overflow and bounds and return an error (kGuest) instead of touching host memory outside
// guest RAM. Accesses never span two regions.
//
// Thread-safety: the mappings are fixed after create(), so concurrent reads and writes from
// vCPU and device threads are safe as far as the host is concerned (the guest sees races it
// made itself). The object is move-only; moving it does not move the mappings, so host
// pointers handed to KVM stay valid for the object's lifetime.

#include <atomic>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_address.h"

namespace kumo::memory {

// Every region's host mapping starts on this boundary, as do the guest's regions on x86_64,
// so a 2 MiB guest frame is a 2 MiB host page whenever the host backs it with one (THP,
// hugetlb) and KVM can map it with one large page-table entry.
inline constexpr uint64_t kHugePageBytes = 2ull << 20;

// 2 MiB pages of the host's hugetlb pool that are neither in use nor promised to a mapping;
// nullopt where sysfs does not say.
[[nodiscard]] std::optional<uint64_t> unreserved_huge_pages();

// What backs guest RAM on the host (`kumo run --memory-backend`).
enum class Backend {
  // Private anonymous memory with MADV_HUGEPAGE: transparent huge pages wherever the host's
  // THP mode is `always` or `madvise`. Only this process can map it.
  kAnonymous,
  // One memfd per region, mapped shared, so another process can map the same RAM. Gets huge
  // pages only if the host enables THP for shmem (`shmem_enabled`), which many hosts do not.
  kMemfd,
  // One memfd per region of 2 MiB hugetlb pages (MFD_HUGETLB), reserved at create(): needs
  // enough free pages in the host's pool (vm.nr_hugepages) and regions in whole 2 MiB pages.
  kHugetlb,
};

struct RegionSpec {
  GuestAddress start;
  uint64_t size_bytes = 0;
};

// One region's mapping (and memfd, unless anonymous); unmapped on destruction.
class GuestRegion final {
 public:
  GuestRegion(GuestAddress start, uint64_t size_bytes, Backend backend, UniqueFd memfd,
              uint8_t* host);
  GuestRegion(GuestRegion&& other) noexcept;
  GuestRegion& operator=(GuestRegion&&) = delete;
  GuestRegion(const GuestRegion&) = delete;
  GuestRegion& operator=(const GuestRegion&) = delete;
  ~GuestRegion();

  [[nodiscard]] GuestAddress start() const { return start_; }
  [[nodiscard]] uint64_t size_bytes() const { return size_bytes_; }
  [[nodiscard]] uint64_t end_raw() const { return start_.raw() + size_bytes_; }
  [[nodiscard]] Backend backend() const { return backend_; }
  // kHugePageBytes-aligned.
  [[nodiscard]] uint8_t* host_base() const { return host_; }
  // The memfd behind this region (offset 0 is `start`), to share the RAM with another
  // process; -1 for Backend::kAnonymous.
  [[nodiscard]] int memfd() const { return memfd_.get(); }
  // Zeroes the region: anonymous and memfd pages go back to the host (MADV_DONTNEED, hole
  // punch); hugetlb pages are zeroed in place, so they stay reserved for this VM. Not to be
  // called while vCPUs run.
  [[nodiscard]] Status discard() const;

 private:
  GuestAddress start_;
  uint64_t size_bytes_;
  Backend backend_;
  UniqueFd memfd_;
  uint8_t* host_;
};

class GuestMemory final {
 public:
  // Regions must be page-aligned, non-empty, sorted and non-overlapping; with kHugetlb also
  // multiples of 2 MiB. Fails with kInvalidInput when the hugetlb pool is too small.
  // Host support for huge pages is optional: where the kernel rejects MADV_HUGEPAGE, RAM is
  // simply backed by 4 KiB pages.
  [[nodiscard]] static Result<GuestMemory> create(const std::vector<RegionSpec>& specs,
                                                  Backend backend = Backend::kAnonymous);

  GuestMemory(GuestMemory&&) noexcept = default;
  GuestMemory& operator=(GuestMemory&&) noexcept = default;

  [[nodiscard]] const std::vector<GuestRegion>& regions() const { return regions_; }
  [[nodiscard]] uint64_t total_bytes() const;

  [[nodiscard]] Status read(GuestAddress gpa, std::span<uint8_t> out) const;
  [[nodiscard]] Status write(GuestAddress gpa, std::span<const uint8_t> in) const;
  [[nodiscard]] Status fill(GuestAddress gpa, uint8_t value, uint64_t len) const;
  // Zeroes all guest RAM for a machine reset (GuestRegion::discard on every region). Not to
  // be called while vCPUs run.
  [[nodiscard]] Status discard_all() const;

  template <typename T>
  [[nodiscard]] Result<T> read_obj(GuestAddress gpa) const {
    static_assert(std::is_trivially_copyable_v<T>);
    T value;
    KUMO_TRY(read(gpa, std::span(reinterpret_cast<uint8_t*>(&value), sizeof(T))));
    return value;
  }
  template <typename T>
  [[nodiscard]] Status write_obj(GuestAddress gpa, const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    return write(gpa, std::span(reinterpret_cast<const uint8_t*>(&value), sizeof(T)));
  }

  // Single-copy-atomic load / store of a naturally aligned 2-, 4- or 8-byte integer that the
  // guest may change or read concurrently (virtio ring indices, flags and event fields,
  // virtio 1.2 §2.7). read_obj/write_obj copy bytes and can tear such a value: a 16-bit index
  // moving from 0x12ff to 0x1300 may read as 0x13ff. Relaxed ordering; callers add fences.
  // A misaligned address is a kGuest error.
  template <typename T>
  [[nodiscard]] Result<T> load_atomic(GuestAddress gpa) const {
    T* p = KUMO_TRY(atomic_target<T>(gpa));
    return std::atomic_ref<T>(*p).load(std::memory_order_relaxed);
  }
  template <typename T>
  [[nodiscard]] Status store_atomic(GuestAddress gpa, T value) const {
    T* p = KUMO_TRY(atomic_target<T>(gpa));
    std::atomic_ref<T>(*p).store(value, std::memory_order_relaxed);
    return {};
  }

  // The one escape hatch to a raw host view of guest RAM (for zero-copy I/O vectors).
  // SAFETY: the span is valid while this GuestMemory lives; the guest may change the bytes
  // at any time, so callers must copy before validating anything they read through it.
  [[nodiscard]] Result<std::span<uint8_t>> host_span(GuestAddress gpa, uint64_t len) const;

  [[nodiscard]] bool contains(GuestAddress gpa, uint64_t len) const;

 private:
  template <typename T>
  [[nodiscard]] Result<T*> atomic_target(GuestAddress gpa) const {
    static_assert(std::is_integral_v<T> && (sizeof(T) == 2 || sizeof(T) == 4 || sizeof(T) == 8));
    static_assert(std::atomic_ref<T>::is_always_lock_free);
    if (gpa.raw() % sizeof(T) != 0) {
      return guest_error("{}-byte shared value at {:#x} is misaligned", sizeof(T), gpa.raw());
    }
    auto span = KUMO_TRY(host_span(gpa, sizeof(T)));
    // SAFETY: regions are page-aligned, so an aligned guest address is an aligned host one.
    return reinterpret_cast<T*>(span.data());
  }

  explicit GuestMemory(std::vector<GuestRegion> regions) : regions_(std::move(regions)) {}
  std::vector<GuestRegion> regions_;
};

}  // namespace kumo::memory
