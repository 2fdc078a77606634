#include "block/raw_file.h"

#include <cerrno>
#include <cstring>
#include <vector>

namespace kumo::block {

Status check_range(uint64_t offset_bytes, uint64_t len_bytes, uint64_t size_bytes) {
  if (offset_bytes > size_bytes || len_bytes > size_bytes - offset_bytes) {
    return invalid_input("range [{}, +{}) lies outside the {}-byte disk", offset_bytes,
                         len_bytes, size_bytes);
  }
  return {};
}

Result<std::unique_ptr<RawFile>> RawFile::create(HostFile file, EngineKind engine,
                                                 size_t queue_depth) {
  const uint64_t size = KUMO_TRY(file.size_bytes());
  auto eng = KUMO_TRY(make_io_engine(engine, file.fd(), queue_depth));
  return std::unique_ptr<RawFile>(new RawFile(std::move(file), std::move(eng), size));
}

Status RawFile::read(uint64_t offset_bytes, std::span<uint8_t> out) {
  KUMO_TRY(check_range(offset_bytes, out.size(), size_bytes_));
  return file_.pread_full(offset_bytes, out);
}

Status RawFile::write(uint64_t offset_bytes, std::span<const uint8_t> in) {
  if (read_only()) {
    return invalid_input("'{}': image is read-only", file_.path());
  }
  KUMO_TRY(check_range(offset_bytes, in.size(), size_bytes_));
  return file_.pwrite_full(offset_bytes, in);
}

Status RawFile::flush() { return read_only() ? Status{} : file_.datasync(); }

Status RawFile::discard(uint64_t offset_bytes, uint64_t len_bytes) {
  if (read_only()) {
    return invalid_input("'{}': image is read-only", file_.path());
  }
  KUMO_TRY(check_range(offset_bytes, len_bytes, size_bytes_));
  auto st = file_.punch_hole(offset_bytes, len_bytes);
  if (!st && st.error().errno_value == EOPNOTSUPP) {
    return {};  // discard is advisory
  }
  return st;
}

Status RawFile::write_zeroes(uint64_t offset_bytes, uint64_t len_bytes) {
  if (read_only()) {
    return invalid_input("'{}': image is read-only", file_.path());
  }
  KUMO_TRY(check_range(offset_bytes, len_bytes, size_bytes_));
  return file_.zero_range(offset_bytes, len_bytes);
}

Status RawFile::resize(uint64_t new_size_bytes) {
  if (read_only()) {
    return invalid_input("'{}': image is read-only", file_.path());
  }
  KUMO_TRY(file_.truncate(new_size_bytes));
  size_bytes_ = new_size_bytes;
  return {};
}

int64_t RawFile::execute_bounced(const IoRequest& r) {
  const uint64_t len = iov_length(r.iov);
  std::vector<uint8_t> buf(len);
  if (r.op == IoOp::kRead) {
    if (!file_.pread_full(r.offset_bytes, buf)) {
      return -EIO;
    }
    scatter_iovecs(buf, r.iov);
  } else {
    gather_iovecs(r.iov, buf);
    if (!file_.pwrite_full(r.offset_bytes, buf)) {
      return -EIO;
    }
  }
  return static_cast<int64_t>(len);
}

Status RawFile::submit(const IoRequest& r) {
  const bool data = r.op == IoOp::kRead || r.op == IoOp::kWrite;
  const uint64_t len = data ? iov_length(r.iov) : r.len_bytes;
  if (r.op != IoOp::kRead && read_only()) {
    engine_->post(r.cookie, -EROFS);
    return {};
  }
  if (r.op != IoOp::kFlush && !check_range(r.offset_bytes, len, size_bytes_)) {
    engine_->post(r.cookie, -EINVAL);
    return {};
  }
  if (data && file_.direct()) {
    bool aligned = r.offset_bytes % HostFile::kDirectAlignment == 0;
    for (const iovec& v : r.iov) {
      aligned = aligned && reinterpret_cast<uintptr_t>(v.iov_base) % HostFile::kDirectAlignment ==
                               0 &&
                v.iov_len % HostFile::kDirectAlignment == 0;
    }
    if (!aligned) {
      engine_->post(r.cookie, execute_bounced(r));
      return {};
    }
  }
  if (data && r.iov.size() > IOV_MAX) {
    engine_->post(r.cookie, execute_bounced(r));
    return {};
  }
  EngineRequest er{r.op, r.offset_bytes, r.iov.data(), static_cast<int>(r.iov.size()),
                   r.len_bytes, r.cookie};
  return engine_->submit(er);
}

}  // namespace kumo::block
