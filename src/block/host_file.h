#pragma once
// HostFile: one open host file (an image or a raw disk) with whole-buffer positional I/O.
//
// Contract:
//  - pread_full() reads exactly out.size() bytes; bytes past end-of-file read as zeros.
//  - pwrite_full() writes everything or fails; EINTR and short writes are retried.
//  - With O_DIRECT (cache=none) any offset, length and buffer is accepted: misaligned
//    requests go through an aligned bounce buffer (read-modify-write for writes).
//  - Thread-safety: positional I/O may be issued from several threads at once; everything
//    else from one thread.
//  - Fault injection (tests only): set_write_budget(n) lets n more writes through, then
//    silently drops every later write and sync, which models a power cut after n writes.

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace kumo::block {

class HostFile final {
 public:
  // Alignment O_DIRECT needs for offsets, lengths and buffers.
  static constexpr uint64_t kDirectAlignment = 4096;

  // Opens an existing regular file or block device. Errors are kInvalidInput (naming the file)
  // for a missing file, a directory or no permission. With `lock`, takes a whole-file
  // open-file-description lock — shared for read-only, exclusive otherwise — and fails with
  // kInvalidInput when another process (or another open in this one) holds a conflicting
  // lock; released on close. It also conflicts with QEMU's image locks.
  [[nodiscard]] static Result<HostFile> open(const std::string& path, bool read_only,
                                             bool direct, bool lock = false);
  // Creates (or truncates) a regular file for writing.
  [[nodiscard]] static Result<HostFile> create(const std::string& path);

  HostFile(HostFile&&) noexcept = default;
  HostFile& operator=(HostFile&&) noexcept = default;
  HostFile(const HostFile&) = delete;
  HostFile& operator=(const HostFile&) = delete;
  ~HostFile() = default;

  [[nodiscard]] int fd() const { return fd_.get(); }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] bool read_only() const { return read_only_; }
  [[nodiscard]] bool direct() const { return direct_; }

  [[nodiscard]] Status pread_full(uint64_t offset_bytes, std::span<uint8_t> out) const;
  [[nodiscard]] Status pwrite_full(uint64_t offset_bytes, std::span<const uint8_t> in);
  [[nodiscard]] Result<uint64_t> size_bytes() const;
  [[nodiscard]] Status truncate(uint64_t size_bytes);
  [[nodiscard]] Status datasync();
  // Deallocates the range (reads back as zeros) without changing the file size. Returns an
  // error with errno EOPNOTSUPP when the file system cannot.
  [[nodiscard]] Status punch_hole(uint64_t offset_bytes, uint64_t len_bytes);
  // Makes the range read as zeros by whatever means the file system offers, writing zeros as
  // the last resort. Extends the file when the range ends past end-of-file.
  [[nodiscard]] Status zero_range(uint64_t offset_bytes, uint64_t len_bytes);

  // Simulated power cut for crash-consistency tests; nullopt = no limit.
  void set_write_budget(std::optional<uint64_t> writes) { write_budget_ = writes; }
  [[nodiscard]] uint64_t writes_issued() const { return writes_issued_; }
  // fdatasync calls made through datasync() (tests: was a flush honoured?).
  [[nodiscard]] uint64_t syncs_issued() const { return syncs_issued_; }

 private:
  HostFile(UniqueFd fd, std::string path, bool read_only, bool direct, bool block_device)
      : fd_(std::move(fd)),
        path_(std::move(path)),
        read_only_(read_only),
        direct_(direct),
        block_device_(block_device) {}

  // True when the write must be dropped (budget exhausted).
  bool consume_write_budget();
  [[nodiscard]] Status pread_raw(uint64_t offset_bytes, std::span<uint8_t> out) const;
  [[nodiscard]] Status pwrite_raw(uint64_t offset_bytes, std::span<const uint8_t> in);

  UniqueFd fd_;
  std::string path_;
  bool read_only_ = false;
  bool direct_ = false;
  bool block_device_ = false;
  std::optional<uint64_t> write_budget_;
  uint64_t writes_issued_ = 0;
  uint64_t syncs_issued_ = 0;
};

}  // namespace kumo::block
