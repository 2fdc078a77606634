#include "block/host_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "block/aligned_buffer.h"

namespace kumo::block {
static_assert(AlignedBuffer::kAlignment == HostFile::kDirectAlignment);

namespace {

bool is_aligned(uint64_t offset, size_t len, const void* buf) {
  constexpr uint64_t a = HostFile::kDirectAlignment;
  return offset % a == 0 && len % a == 0 && reinterpret_cast<uintptr_t>(buf) % a == 0;
}

}  // namespace

Result<HostFile> HostFile::open(const std::string& path, bool read_only, bool direct,
                                bool lock) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) {
      return make_error(ErrorKind::kInvalidInput, 0, fmt::format("'{}': no such file", path));
    }
    if (e == EACCES) {
      return make_error(ErrorKind::kInvalidInput, 0,
                        fmt::format("'{}': permission denied", path));
    }
    return host_error_errno(e, "'{}': cannot stat", path);
  }
  if (S_ISDIR(st.st_mode)) {
    return invalid_input("'{}': is a directory, not a disk image", path);
  }
  if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
    return invalid_input("'{}': not a regular file or block device", path);
  }
  int flags = O_CLOEXEC | (read_only ? O_RDONLY : O_RDWR);
  if (direct) {
    flags |= O_DIRECT;
  }
  UniqueFd fd(::open(path.c_str(), flags));
  if (!fd) {
    const int e = errno;
    if (e == EACCES || e == EPERM || e == EROFS) {
      return make_error(ErrorKind::kInvalidInput, 0,
                        fmt::format("'{}': permission denied (opening {})", path,
                                    read_only ? "read-only" : "read-write"));
    }
    if (e == EINVAL && direct) {
      return make_error(ErrorKind::kInvalidInput, e,
                        fmt::format("'{}': the file system does not support O_DIRECT "
                                    "(cache=none)",
                                    path));
    }
    return host_error_errno(e, "'{}': cannot open", path);
  }
  // Many readers or one writer, across processes and across two opens in one process.
  struct flock range {};
  range.l_type = read_only ? F_RDLCK : F_WRLCK;
  range.l_whence = SEEK_SET;
  if (lock && ::fcntl(fd.get(), F_OFD_SETLK, &range) != 0) {
    const int e = errno;
    if (e == EAGAIN || e == EACCES) {
      return make_error(ErrorKind::kInvalidInput, 0,
                        fmt::format("'{}': in use by another process or disk (cannot lock it "
                                    "for {})",
                                    path, read_only ? "reading" : "writing"));
    }
    return host_error_errno(e, "'{}': cannot lock", path);
  }
  return HostFile(std::move(fd), path, read_only, direct, S_ISBLK(st.st_mode));
}

Result<HostFile> HostFile::create(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_CLOEXEC | O_RDWR | O_CREAT | O_TRUNC, 0644));
  if (!fd) {
    const int e = errno;
    if (e == EACCES || e == EPERM || e == EROFS || e == ENOENT || e == EISDIR ||
        e == ENOTDIR) {
      return make_error(ErrorKind::kInvalidInput, 0,
                        fmt::format("'{}': cannot create ({})", path, std::strerror(e)));
    }
    return host_error_errno(e, "'{}': cannot create", path);
  }
  return HostFile(std::move(fd), path, false, false, false);
}

bool HostFile::consume_write_budget() {
  ++writes_issued_;
  if (!write_budget_) {
    return false;
  }
  if (*write_budget_ == 0) {
    return true;
  }
  --*write_budget_;
  return false;
}

Status HostFile::pread_raw(uint64_t offset_bytes, std::span<uint8_t> out) const {
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_.get(), out.data() + done, out.size() - done,
                              static_cast<off_t>(offset_bytes + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return host_error("'{}': read of {} bytes at offset {} failed", path_, out.size(),
                        offset_bytes);
    }
    if (n == 0) {  // end of file: the rest reads as zeros
      std::memset(out.data() + done, 0, out.size() - done);
      return {};
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status HostFile::pwrite_raw(uint64_t offset_bytes, std::span<const uint8_t> in) {
  if (consume_write_budget()) {
    return {};
  }
  size_t done = 0;
  while (done < in.size()) {
    const ssize_t n = ::pwrite(fd_.get(), in.data() + done, in.size() - done,
                               static_cast<off_t>(offset_bytes + done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return host_error("'{}': write of {} bytes at offset {} failed", path_, in.size(),
                        offset_bytes);
    }
    done += static_cast<size_t>(n);
  }
  return {};
}

Status HostFile::pread_full(uint64_t offset_bytes, std::span<uint8_t> out) const {
  if (out.empty()) {
    return {};
  }
  if (!direct_ || is_aligned(offset_bytes, out.size(), out.data())) {
    return pread_raw(offset_bytes, out);
  }
  const uint64_t start = offset_bytes / kDirectAlignment * kDirectAlignment;
  const uint64_t end = (offset_bytes + out.size() + kDirectAlignment - 1) / kDirectAlignment *
                       kDirectAlignment;
  const size_t len = static_cast<size_t>(end - start);
  AlignedBuffer bounce(len);
  if (!bounce) {
    return host_error_errno(ENOMEM, "'{}': bounce buffer of {} bytes", path_, len);
  }
  KUMO_TRY(pread_raw(start, std::span<uint8_t>(bounce.data(), len)));
  std::memcpy(out.data(), bounce.data() + (offset_bytes - start), out.size());
  return {};
}

Status HostFile::pwrite_full(uint64_t offset_bytes, std::span<const uint8_t> in) {
  if (in.empty()) {
    return {};
  }
  if (!direct_ || is_aligned(offset_bytes, in.size(), in.data())) {
    return pwrite_raw(offset_bytes, in);
  }
  const uint64_t start = offset_bytes / kDirectAlignment * kDirectAlignment;
  const uint64_t end = (offset_bytes + in.size() + kDirectAlignment - 1) / kDirectAlignment *
                       kDirectAlignment;
  const size_t len = static_cast<size_t>(end - start);
  AlignedBuffer bounce(len);
  if (!bounce) {
    return host_error_errno(ENOMEM, "'{}': bounce buffer of {} bytes", path_, len);
  }
  std::span<uint8_t> b(bounce.data(), len);
  if (start != offset_bytes || end != offset_bytes + in.size()) {
    KUMO_TRY(pread_raw(start, b));
  }
  std::memcpy(bounce.data() + (offset_bytes - start), in.data(), in.size());
  return pwrite_raw(start, b);
}

Result<uint64_t> HostFile::size_bytes() const {
  if (block_device_) {
    uint64_t size = 0;
    if (::ioctl(fd_.get(), BLKGETSIZE64, &size) != 0) {
      return host_error("'{}': BLKGETSIZE64", path_);
    }
    return size;
  }
  struct stat st{};
  if (::fstat(fd_.get(), &st) != 0) {
    return host_error("'{}': fstat", path_);
  }
  return static_cast<uint64_t>(st.st_size);
}

Status HostFile::truncate(uint64_t size_bytes) {
  if (consume_write_budget()) {
    return {};
  }
  if (::ftruncate(fd_.get(), static_cast<off_t>(size_bytes)) != 0) {
    return host_error("'{}': truncate to {} bytes", path_, size_bytes);
  }
  return {};
}

Status HostFile::datasync() {
  if (write_budget_ && *write_budget_ == 0) {
    return {};
  }
  ++syncs_issued_;
  if (::fdatasync(fd_.get()) != 0) {
    return host_error("'{}': fdatasync", path_);
  }
  return {};
}

Status HostFile::punch_hole(uint64_t offset_bytes, uint64_t len_bytes) {
  if (len_bytes == 0) {
    return {};
  }
  if (consume_write_budget()) {
    return {};
  }
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset_bytes), static_cast<off_t>(len_bytes)) != 0) {
    return host_error("'{}': punch hole of {} bytes at {}", path_, len_bytes, offset_bytes);
  }
  return {};
}

Status HostFile::zero_range(uint64_t offset_bytes, uint64_t len_bytes) {
  if (len_bytes == 0) {
    return {};
  }
  const uint64_t file_size = block_device_ ? UINT64_MAX : KUMO_TRY(size_bytes());
  if (!block_device_ && offset_bytes >= file_size) {
    return truncate(std::max(file_size, offset_bytes + len_bytes));
  }
  if (consume_write_budget()) {
    return {};
  }
  if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE, static_cast<off_t>(offset_bytes),
                  static_cast<off_t>(len_bytes)) == 0) {
    return {};
  }
  if (offset_bytes + len_bytes <= file_size &&
      ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                  static_cast<off_t>(offset_bytes), static_cast<off_t>(len_bytes)) == 0) {
    return {};
  }
  --writes_issued_;  // the fallback below counts its own writes
  if (write_budget_) {
    ++*write_budget_;
  }
  constexpr size_t kChunk = 1 << 20;
  AlignedBuffer zeros(kChunk);
  if (!zeros) {
    return host_error_errno(ENOMEM, "'{}': zero buffer", path_);
  }
  std::memset(zeros.data(), 0, kChunk);
  uint64_t done = 0;
  while (done < len_bytes) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, len_bytes - done));
    KUMO_TRY(pwrite_full(offset_bytes + done, std::span<const uint8_t>(zeros.data(), n)));
    done += n;
  }
  return {};
}

}  // namespace kumo::block
