// libFuzzer target: a whole qcow2 image from arbitrary bytes (header, L1/L2 tables, refcount
// table and blocks, snapshot table, compressed clusters). Opens it read-only from a memfd,
// reads through the mapping (synchronously and through submit/reap, as virtio-blk does), asks
// for block status and runs the consistency check; then opens a copy read-write and writes to
// it, both ways. Nothing may crash or hang; every asynchronous request completes.

#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "block/qcow2/qcow2_image.h"

namespace {

std::string memfd_with(const uint8_t* data, size_t size, int* fd_out) {
  const int fd = ::memfd_create("qcow2-fuzz", MFD_CLOEXEC);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::write(fd, data + done, size - done);
    if (n <= 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  *fd_out = fd;
  return "/proc/self/fd/" + std::to_string(fd);
}

// One request through the asynchronous path; a request that never completes is a hang.
void submit_and_reap(kumo::block::Qcow2Image& q, kumo::block::IoOp op, uint64_t offset,
                     std::span<uint8_t> buf) {
  using namespace kumo::block;  // NOLINT(google-build-using-namespace)
  const iovec v{buf.data(), buf.size()};
  if (!q.submit({.op = op, .offset_bytes = offset, .iov = std::span<const iovec>(&v, 1),
                 .cookie = 7})) {
    return;
  }
  IoCompletion done[4];
  for (int wait = 0; wait < 500; ++wait) {
    if (q.reap(done) > 0) {
      return;
    }
    pollfd p{q.completion_fd(), POLLIN, 0};
    (void)::poll(&p, 1, 10);
  }
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kumo::block;  // NOLINT(google-build-using-namespace)
  if (size > (1 << 20)) {
    return 0;
  }
  int fd = -1;
  const std::string path = memfd_with(data, size, &fd);
  OpenOptions o;
  o.read_only = true;
  o.open_backing = false;
  o.io = EngineKind::kThreadPool;
  o.l2_cache_bytes = 1 << 20;
  if (auto img = Qcow2Image::open(path, o)) {
    Qcow2Image& q = **img;
    const uint64_t vsize = q.size_bytes();
    std::vector<uint8_t> buf(65536);
    for (uint64_t off : {uint64_t{0}, vsize / 3, vsize / 2, vsize > 65536 ? vsize - 65536 : 0}) {
      const uint64_t len = std::min<uint64_t>(buf.size(), vsize - std::min(off, vsize));
      [[maybe_unused]] auto r = q.read(off, std::span(buf).first(static_cast<size_t>(len)));
      [[maybe_unused]] auto s = q.block_status(off, len);
      // Asynchronously, straddling a cluster boundary where the disk is large enough.
      const uint64_t at = off + std::min<uint64_t>(len / 2, 4096) / 512 * 512;
      const uint64_t alen = std::min<uint64_t>(16384, vsize - std::min(at, vsize));
      submit_and_reap(q, IoOp::kRead, at, std::span(buf).first(static_cast<size_t>(alen)));
    }
    if (q.header().l1_size <= 4096 && q.snapshots().size() <= 64) {
      [[maybe_unused]] auto c = q.check(RepairMode::kNone);
    }
  }
  // Read-write: a writable copy of the same bytes.
  if (size <= (256 << 10)) {
    int wfd = -1;
    const std::string wpath = memfd_with(data, size, &wfd);
    o.read_only = false;
    if (auto img = Qcow2Image::open(wpath, o); img && (*img)->size_bytes() >= 8192 &&
                                               (*img)->header().l1_size <= 4096) {
      std::vector<uint8_t> w(4096, 0x5a);
      [[maybe_unused]] auto a = (*img)->write(4096, w);
      submit_and_reap(**img, IoOp::kWrite, 2048, std::span(w).first(4096));  // in place or not
      submit_and_reap(**img, IoOp::kWrite, (*img)->size_bytes() - 4096, w);
      [[maybe_unused]] auto z = (*img)->write_zeroes(1000, 6000);  // partial (sub)clusters
      [[maybe_unused]] auto b = (*img)->discard(0, (*img)->size_bytes() / 2);
      [[maybe_unused]] auto c = (*img)->close();
    }
    ::close(wfd);
  }
  ::close(fd);
  return 0;
}
