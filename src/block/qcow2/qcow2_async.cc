// Qcow2Image's asynchronous path (BlockBackend::submit/reap): reads and in-place writes of
// data clusters go to the I/O engine; everything else runs synchronously (qcow2_image.cc).
//
// Every user request owns a Parent slot while in flight; the slot index is the cookie of its
// engine requests (and of completions posted without I/O). The common case, a request inside
// one data cluster, costs one L2 cache lookup and one engine request on the caller's own
// iovecs: no allocation, no copy, no extra system call.

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <vector>

#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"
#include "block/raw_file.h"

namespace kumo::block {

using namespace qcow2;  // NOLINT(google-build-using-namespace): this file implements qcow2

Status Qcow2Image::ensure_engine() {
  if (!engine_) {
    engine_ = KUMO_TRY(make_io_engine(options_.io, file_.fd(), options_.queue_depth));
  }
  return {};
}

int Qcow2Image::completion_fd() const { return engine_ ? engine_->completion_fd() : -1; }

uint64_t Qcow2Image::new_parent(uint64_t user_cookie) {
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
  p.remaining = 1;
  p.error = 0;
  p.done_bytes = 0;
  p.cow_guest = kNoCow;
  return idx;
}

bool Qcow2Image::complete_parent_part(uint64_t index, int64_t result, IoCompletion* out) {
  Parent& p = parents_[index];
  if (result < 0) {
    if (p.error == 0) {
      p.error = result;
    }
  } else {
    p.done_bytes += result;
  }
  if (--p.remaining != 0) {
    return false;
  }
  const int64_t done = p.cow_guest != kNoCow ? finish_cow(p)
                       : p.error != 0         ? p.error
                                              : p.done_bytes;
  *out = IoCompletion{p.user_cookie, done};
  free_parents_.push_back(index);
  return true;
}

void Qcow2Image::finish_submitter_part(uint64_t index) {
  IoCompletion c;
  if (complete_parent_part(index, 0, &c)) {
    ready_.push_back(c);
    engine_->signal();
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
        scatter_iovecs(buf, r.iov);
      } else {
        gather_iovecs(r.iov, buf);
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

Result<uint64_t> Qcow2Image::in_place_cluster(uint64_t offset, bool write) {
  const uint64_t gc = offset >> header_.cluster_bits;
  const uint64_t l1i = gc >> l2_bits_;
  if (l1i >= l1_.size() || header_.extended_l2()) {
    return 0;
  }
  const uint64_t l2off = l1_[l1i] & kL1OffsetMask;
  if (l2off == 0) {
    return 0;
  }
  const uint8_t* t = KUMO_TRY(l2_cache_->get(l2off));
  const uint64_t word = load_be64(t + (gc & ((uint64_t{1} << l2_bits_) - 1)) * 8);
  // Compressed, zero-flagged (or v2's reserved bit 0), unallocated, misaligned and shared
  // clusters all take the general path, which knows what each of them means.
  const uint64_t host = word & kL2OffsetMask;
  if ((word & (kOflagCompressed | kOflagZero)) != 0 || host == 0 ||
      (host & (cluster_size() - 1)) != 0 || (write && (word & kOflagCopied) == 0)) {
    return 0;
  }
  return host;
}

Qcow2Image::Split Qcow2Image::submit_pieces(const IoRequest& r, uint64_t len, uint64_t idx) {
  // Every piece must map to an in-place data cluster (or, for reads, to zeros); a data
  // cluster cut short by end-of-file is left to the slow path, which reads zeros past it.
  std::vector<Piece>& pieces = scratch_pieces_;  // reused: no allocation per request
  pieces.clear();
  size_t data_pieces = 0;
  for (uint64_t pos = 0; pos < len;) {
    auto e = map_extent(r.offset_bytes + pos, len - pos);
    if (!e) {
      return Split::kSlow;
    }
    if (e->kind == Kind::kNormal && (r.op == IoOp::kRead || e->writable) &&
        e->host + e->len <= host_end_) {
      pieces.push_back({e->host, e->len, false});
      ++data_pieces;
    } else if (r.op == IoOp::kRead &&
               (e->kind == Kind::kZero || (e->kind == Kind::kUnallocated && !backing_))) {
      pieces.push_back({0, e->len, true});
    } else {
      return Split::kSlow;
    }
    pos += e->len;
  }
  if (engine_->in_flight() + data_pieces > engine_->capacity()) {
    return Split::kQueueFull;
  }
  // Split the caller's iovecs at piece boundaries.
  Parent& p = parents_[idx];
  p.iov.clear();
  p.iov.reserve(r.iov.size() + pieces.size());
  std::vector<std::pair<size_t, size_t>>& ranges = scratch_ranges_;  // into p.iov
  ranges.clear();
  size_t vi = 0;
  uint64_t voff = 0;
  for (const Piece& pc : pieces) {
    const size_t begin = p.iov.size();
    uint64_t left = pc.len;
    while (left > 0 && vi < r.iov.size()) {
      const uint64_t take = std::min<uint64_t>(left, r.iov[vi].iov_len - voff);
      uint8_t* base = static_cast<uint8_t*>(r.iov[vi].iov_base) + voff;
      if (pc.zero) {
        std::memset(base, 0, take);
        p.done_bytes += static_cast<int64_t>(take);
      } else {
        p.iov.push_back(iovec{base, take});
      }
      left -= take;
      voff += take;
      if (voff == r.iov[vi].iov_len) {
        ++vi;
        voff = 0;
      }
    }
    ranges.emplace_back(begin, p.iov.size());
  }
  if (r.op == IoOp::kWrite) {
    unsynced_ = true;  // the next flush() must fdatasync the in-place writes
  }
  p.remaining += static_cast<uint32_t>(data_pieces);  // plus the submitter's own part
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].zero) {
      continue;
    }
    const EngineRequest er{r.op,
                           pieces[i].host,
                           p.iov.data() + ranges[i].first,
                           static_cast<int>(ranges[i].second - ranges[i].first),
                           0,
                           idx};
    if (!engine_->submit(er)) {
      IoCompletion unused;
      (void)complete_parent_part(idx, -EIO, &unused);  // the submitter's part keeps it open
    }
  }
  finish_submitter_part(idx);
  return Split::kSubmitted;
}

Qcow2Image::Split Qcow2Image::submit_cow(const IoRequest& r, uint64_t len, uint64_t idx) {
  const uint64_t cs = cluster_size();
  const uint64_t in_off = r.offset_bytes & (cs - 1);
  const uint64_t tail = in_off + len;
  const uint64_t gc = r.offset_bytes >> header_.cluster_bits;
  const uint64_t l1i = gc >> l2_bits_;
  if (!backing_ || read_only_ || header_.extended_l2() || len == 0 || tail > cs || len == cs ||
      r.iov.size() + 2 > IOV_MAX || l1i >= l1_.size() || (l1_[l1i] & kOflagCopied) == 0 ||
      cow_clusters_.contains(gc)) {
    return Split::kSlow;
  }
  const uint64_t l2off = l1_[l1i] & kL1OffsetMask;
  auto table = l2_cache_->get(l2off);  // the COPIED flag above implies an L2 table
  if (!table || load_be64(*table + (gc & ((uint64_t{1} << l2_bits_) - 1)) * 8) != 0) {
    return Split::kSlow;  // allocated, zero, compressed: the general path knows what to keep
  }
  if (engine_->in_flight() >= engine_->capacity()) {
    return Split::kQueueFull;
  }
  // The old bytes around the new ones, read now (from the page cache, usually); head and
  // tail then go out with the caller's bytes as one write of the whole cluster.
  Parent& p = parents_[idx];
  const uint64_t old_len = cs - len;
  if (!p.cow_bytes.resize(old_len)) {
    return Split::kSlow;
  }
  const std::span<uint8_t> old(p.cow_bytes.data(), old_len);
  const uint64_t guest_cluster = r.offset_bytes - in_off;
  if (!read_backing(guest_cluster, old.first(in_off)) ||
      !read_backing(guest_cluster + tail, old.subspan(in_off))) {
    return Split::kSlow;  // the slow path reports the failure
  }
  if (!mark_dirty_for_lazy_refcounts()) {
    return Split::kSlow;
  }
  auto cluster = refcounts_->allocate(1);
  if (!cluster) {
    return Split::kSlow;
  }
  const uint64_t new_host = *cluster << header_.cluster_bits;
  host_end_ = std::max(host_end_, new_host + cs);
  unsynced_ = true;
  cow_clusters_.insert(gc);
  p.cow_guest = r.offset_bytes;
  p.cow_host = new_host;
  p.iov.clear();
  if (in_off > 0) {
    p.iov.push_back({old.data(), in_off});
  }
  p.iov.insert(p.iov.end(), r.iov.begin(), r.iov.end());
  if (tail < cs) {
    p.iov.push_back({old.data() + in_off, cs - tail});
  }
  ++p.remaining;
  if (!engine_->submit(EngineRequest{IoOp::kWrite, new_host, p.iov.data(),
                                     static_cast<int>(p.iov.size()), 0, idx})) {
    IoCompletion unused;
    (void)complete_parent_part(idx, -EIO, &unused);  // the submitter's part keeps it open
  }
  finish_submitter_part(idx);
  return Split::kSubmitted;
}

int64_t Qcow2Image::finish_cow(Parent& p) {
  const uint64_t gc = p.cow_guest >> header_.cluster_bits;
  const uint64_t len = cluster_size() - p.cow_bytes.size();
  cow_clusters_.erase(gc);
  p.cow_guest = kNoCow;
  p.cow_bytes.release_if_larger(kKeptCowBytes);
  if (p.error != 0) {
    return p.error;  // the new cluster leaks; the old content stays visible
  }
  const uint64_t l2off = l1_[gc >> l2_bits_] & kL1OffsetMask;
  auto table = l2_cache_->get(l2off);
  if (!table) {
    return -EIO;  // the new cluster leaks; the old content stays visible
  }
  store_l2_entry(*table, gc & ((uint64_t{1} << l2_bits_) - 1), {p.cow_host | kOflagCopied});
  l2_cache_->mark_dirty(l2off);
  return static_cast<int64_t>(len);
}

void Qcow2Image::settle_engine() {
  engine_->drain();
  IoCompletion got[64];
  for (;;) {
    const size_t n = engine_->reap(got);
    for (size_t i = 0; i < n; ++i) {
      IoCompletion c;
      if (complete_parent_part(got[i].cookie, got[i].result, &c)) {
        ready_.push_back(c);
      }
    }
    if (n < std::size(got)) {
      break;
    }
  }
  if (!ready_.empty()) {
    engine_->signal();
  }
}

Status Qcow2Image::submit(const IoRequest& r) {
  KUMO_TRY(ensure_engine());
  const bool data = r.op == IoOp::kRead || r.op == IoOp::kWrite;
  const uint64_t len = data ? iov_length(r.iov) : r.len_bytes;
  const uint64_t idx = new_parent(r.cookie);
  if (closed_ || (r.op != IoOp::kRead && read_only_)) {
    engine_->post(idx, closed_ ? -EBADF : -EROFS);
    return {};
  }
  if (r.op != IoOp::kFlush && !check_range(r.offset_bytes, len, header_.size_bytes)) {
    engine_->post(idx, -EINVAL);
    return {};
  }
  bool fast_ok = data && len > 0 && r.iov.size() <= IOV_MAX;
  if (fast_ok && file_.direct()) {
    fast_ok = cluster_size() >= HostFile::kDirectAlignment &&
              r.offset_bytes % HostFile::kDirectAlignment == 0;
    for (const iovec& v : r.iov) {
      fast_ok = fast_ok &&
                reinterpret_cast<uintptr_t>(v.iov_base) % HostFile::kDirectAlignment == 0 &&
                v.iov_len % HostFile::kDirectAlignment == 0;
    }
  }
  if (!fast_ok) {
    return submit_slow(r, idx);
  }
  const uint64_t in_cluster = r.offset_bytes & (cluster_size() - 1);
  if (in_cluster + len <= cluster_size()) {
    // Fast path: one cluster, one L2 lookup, the caller's iovecs handed on unchanged.
    auto host = in_place_cluster(r.offset_bytes, r.op == IoOp::kWrite);
    if (host && *host != 0 && *host + in_cluster + len <= host_end_) {
      const EngineRequest er{
          r.op, *host + in_cluster, r.iov.data(), static_cast<int>(r.iov.size()), 0, idx};
      if (auto st = engine_->submit(er); !st) {
        free_parents_.push_back(idx);
        return st;  // queue full (EAGAIN): the caller retries after reaping
      }
      if (r.op == IoOp::kWrite) {
        unsynced_ = true;  // the next flush() must fdatasync the in-place write
      }
      return {};
    }
  }
  // A first write into part of an unallocated cluster, else in-place pieces, else the slow path.
  Split split = r.op == IoOp::kWrite ? submit_cow(r, len, idx) : Split::kSlow;
  if (split == Split::kSlow) {
    split = submit_pieces(r, len, idx);
  }
  switch (split) {
    case Split::kSubmitted:
      return {};
    case Split::kQueueFull:
      free_parents_.push_back(idx);
      return host_error_errno(EAGAIN, "'{}': request queue full", file_.path());
    case Split::kSlow:
      break;
  }
  return submit_slow(r, idx);
}

Status Qcow2Image::submit_slow(const IoRequest& r, uint64_t idx) {
  // Metadata changes: settle, so that no request in flight races a reallocation.
  settle_engine();
  engine_->post(idx, execute_slow(r));
  return {};
}

size_t Qcow2Image::reap(std::span<IoCompletion> out) {
  if (!engine_) {
    return 0;
  }
  size_t got = 0;
  while (got < out.size() && !ready_.empty()) {
    out[got++] = ready_.front();
    ready_.pop_front();
  }
  // Engine completions carry Parent indices; they are turned into user completions in place.
  // The engine is asked again only when it filled the space it was given (then it may hold
  // more), so a reap costs the one eventfd read the engine needs.
  while (got < out.size()) {
    const std::span<IoCompletion> room = out.subspan(got);
    const size_t n = engine_->reap(room);
    for (size_t i = 0; i < n; ++i) {
      if (complete_parent_part(room[i].cookie, room[i].result, &out[got])) {
        ++got;
      }
    }
    if (n < room.size()) {
      break;
    }
  }
  if (!ready_.empty()) {
    engine_->signal();
  }
  return got;
}

void Qcow2Image::plug() {
  if (engine_) {
    engine_->plug();
  }
}

void Qcow2Image::unplug() {
  if (engine_) {
    engine_->unplug();
  }
}

}  // namespace kumo::block
