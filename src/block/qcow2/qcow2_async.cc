// Qcow2Image's asynchronous path (BlockBackend::submit/reap): reads and in-place writes of
// data clusters go to the I/O engine; everything else runs synchronously (qcow2_image.cc).

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "block/qcow2/qcow2_image.h"
#include "block/raw_file.h"

namespace kumo::block {

Status Qcow2Image::ensure_engine() {
  if (!engine_) {
    engine_ = KUMO_TRY(make_io_engine(options_.io, file_.fd(), options_.queue_depth));
  }
  return {};
}

int Qcow2Image::completion_fd() const { return engine_ ? engine_->completion_fd() : -1; }

uint64_t Qcow2Image::new_parent(uint64_t user_cookie, int64_t len) {
  uint64_t idx = 0;
  if (!free_parents_.empty()) {
    idx = free_parents_.back();
    free_parents_.pop_back();
  } else {
    idx = parents_.size();
    parents_.emplace_back();
  }
  Parent& p = parents_[idx];
  p.user_cookie = user_cookie;
  p.remaining = 0;
  p.error = 0;
  p.len = len;
  p.iov.clear();
  return idx;
}

void Qcow2Image::complete_parent_part(uint64_t index, int64_t result) {
  Parent& p = parents_[index];
  if (result < 0 && p.error == 0) {
    p.error = result;
  }
  if (--p.remaining == 0) {
    ready_.push_back(IoCompletion{p.user_cookie, p.error != 0 ? p.error : p.len});
    free_parents_.push_back(index);
  }
}

int64_t Qcow2Image::execute_slow(const IoRequest& r) {
  Status st;
  int64_t len = 0;
  switch (r.op) {
    case IoOp::kRead:
    case IoOp::kWrite: {
      len = static_cast<int64_t>(iov_length(r.iov));
      std::vector<uint8_t> buf(static_cast<size_t>(len));
      if (r.op == IoOp::kRead) {
        st = read(r.offset_bytes, buf);
        size_t pos = 0;
        for (const iovec& v : r.iov) {
          std::memcpy(v.iov_base, buf.data() + pos, v.iov_len);
          pos += v.iov_len;
        }
      } else {
        size_t pos = 0;
        for (const iovec& v : r.iov) {
          std::memcpy(buf.data() + pos, v.iov_base, v.iov_len);
          pos += v.iov_len;
        }
        st = write(r.offset_bytes, buf);
      }
      break;
    }
    case IoOp::kFlush:
      st = flush();
      break;
    case IoOp::kDiscard:
      st = discard(r.offset_bytes, r.len_bytes);
      len = static_cast<int64_t>(r.len_bytes);
      break;
    case IoOp::kWriteZeroes:
      st = write_zeroes(r.offset_bytes, r.len_bytes);
      len = static_cast<int64_t>(r.len_bytes);
      break;
  }
  if (!st) {
    return st.error().kind == ErrorKind::kInvalidInput ? -EINVAL
                                                       : -(st.error().errno_value != 0
                                                               ? st.error().errno_value
                                                               : EIO);
  }
  return len;
}

Status Qcow2Image::submit(const IoRequest& r) {
  KUMO_TRY(ensure_engine());
  const bool data = r.op == IoOp::kRead || r.op == IoOp::kWrite;
  const uint64_t len = data ? iov_length(r.iov) : r.len_bytes;
  const uint64_t idx = new_parent(r.cookie, static_cast<int64_t>(len));
  Parent* p = &parents_[idx];
  p->remaining = 1;
  if (closed_ || (r.op != IoOp::kRead && read_only_)) {
    engine_->post(idx, closed_ ? -EBADF : -EROFS);
    return {};
  }
  if (r.op != IoOp::kFlush && !check_range(r.offset_bytes, len, header_.size_bytes)) {
    engine_->post(idx, -EINVAL);
    return {};
  }
  bool fast_ok = data && len > 0;
  if (fast_ok && file_.direct()) {
    fast_ok = cluster_size() >= HostFile::kDirectAlignment &&
              r.offset_bytes % HostFile::kDirectAlignment == 0;
    for (const iovec& v : r.iov) {
      fast_ok = fast_ok &&
                reinterpret_cast<uintptr_t>(v.iov_base) % HostFile::kDirectAlignment == 0 &&
                v.iov_len % HostFile::kDirectAlignment == 0;
    }
  }
  if (fast_ok) {
    // Fast path: every piece maps to an in-place data cluster (or, for reads, to zeros).
    std::vector<Piece>& pieces = scratch_pieces_;  // reused: no allocation per request
    pieces.clear();
    bool fast = true;
    size_t data_pieces = 0;
    for (uint64_t pos = 0; pos < len && fast;) {
      auto e = map_extent(r.offset_bytes + pos, len - pos);
      if (!e) {
        fast = false;
        break;
      }
      // A data cluster cut short by end-of-file reads as zeros past it: the slow path's job.
      if (e->kind == Kind::kNormal && (r.op == IoOp::kRead || e->writable) &&
          e->host + e->len <= host_end_) {
        pieces.push_back({e->host, e->len, false});
        ++data_pieces;
      } else if (r.op == IoOp::kRead &&
                 (e->kind == Kind::kZero || (e->kind == Kind::kUnallocated && !backing_))) {
        pieces.push_back({0, e->len, true});
      } else {
        fast = false;
      }
      pos += e->len;
    }
    if (fast && engine_->in_flight() + data_pieces > engine_->capacity()) {
      free_parents_.push_back(idx);
      return host_error_errno(EAGAIN, "'{}': request queue full", file_.path());
    }
    if (fast) {
      // Split the caller's iovecs at piece boundaries.
      size_t vi = 0;
      uint64_t voff = 0;
      std::vector<std::pair<size_t, size_t>>& ranges = scratch_ranges_;  // into p->iov
      ranges.clear();
      p->iov.reserve(r.iov.size() + pieces.size());
      for (const Piece& pc : pieces) {
        const size_t begin = p->iov.size();
        uint64_t left = pc.len;
        while (left > 0 && vi < r.iov.size()) {
          const uint64_t take = std::min<uint64_t>(left, r.iov[vi].iov_len - voff);
          uint8_t* base = static_cast<uint8_t*>(r.iov[vi].iov_base) + voff;
          if (pc.zero) {
            std::memset(base, 0, take);
          } else {
            p->iov.push_back(iovec{base, take});
          }
          left -= take;
          voff += take;
          if (voff == r.iov[vi].iov_len) {
            ++vi;
            voff = 0;
          }
        }
        ranges.emplace_back(begin, p->iov.size());
      }
      p->remaining = static_cast<uint32_t>(data_pieces + 1);
      if (r.op == IoOp::kWrite) {
        unsynced_ = true;  // the next flush() must fdatasync the in-place writes
      }
      for (size_t i = 0; i < pieces.size(); ++i) {
        if (pieces[i].zero) {
          continue;
        }
        EngineRequest er{r.op,
                         pieces[i].host,
                         p->iov.data() + ranges[i].first,
                         static_cast<int>(ranges[i].second - ranges[i].first),
                         0,
                         idx};
        auto st = engine_->submit(er);
        if (!st) {
          complete_parent_part(idx, -EIO);
        }
      }
      complete_parent_part(idx, 0);  // the submitter's own reference
      if (!ready_.empty()) {
        engine_->signal();
      }
      return {};
    }
  }
  // Slow path: metadata changes. Drain so no in-flight request races a reallocation.
  engine_->drain();
  engine_->post(idx, execute_slow(r));
  return {};
}

size_t Qcow2Image::reap(std::span<IoCompletion> out) {
  if (!engine_) {
    return 0;
  }
  size_t got = 0;
  IoCompletion tmp[64];
  while (got < out.size()) {
    if (ready_.empty()) {
      const size_t n = engine_->reap(tmp);
      if (n == 0) {
        break;
      }
      for (size_t i = 0; i < n; ++i) {
        complete_parent_part(tmp[i].cookie, tmp[i].result);
      }
      continue;
    }
    out[got++] = ready_.front();
    ready_.pop_front();
  }
  if (!ready_.empty()) {
    engine_->signal();
  }
  return got;
}

}  // namespace kumo::block
