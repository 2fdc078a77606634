// kumo img bench: drives a BlockBackend through its asynchronous path (as virtio-blk does)
// with a fixed queue depth. Options mirror `qemu-img bench` so both run the same workload;
// --pattern rand adds random offsets, which qemu-img bench lacks.

#include <poll.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>

#include "base/size_parse.h"
#include "cli/img_common.h"
#include "cli/img_verbs.h"

namespace kumo::cli::img {
namespace {

// User + system time of every thread of this process (the engine's workers included).
double process_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  auto secs = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

}  // namespace

int bench_main(int argc, char** argv) {
  CLI::App app("Block-layer benchmark: COUNT requests (or SECONDS of them) of SIZE bytes, DEPTH "
               "in flight, through the asynchronous path. Same options as qemu-img bench.",
               "img bench");
  uint64_t count = 75000;
  unsigned depth = 64;
  double seconds = 0;
  std::string format, engine = "io_uring", pattern = "seq", size_text = "4K", step_text,
                      offset_text = "0", file;
  bool write = false, nocache = false, quiet = false, no_batch = false;
  uint64_t flush_interval = 0;
  app.add_option("-c", count, "number of requests (default 75000)");
  app.add_option("-d", depth, "requests in flight (default 64)")->check(CLI::Range(1u, 1024u));
  app.add_option("-t", seconds, "run for this many seconds instead of COUNT requests");
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("-i", engine, "I/O engine: io_uring or sync (threads)")
      ->check(CLI::IsMember({"io_uring", "sync", "threads"}));
  app.add_flag("-n", nocache, "cache=none (O_DIRECT)");
  app.add_option("-o", offset_text, "lowest offset: sequential requests start there and wrap back to it");
  app.add_option("-s", size_text, "request size (default 4K)");
  app.add_option("-S", step_text, "step between sequential requests (default: SIZE)");
  app.add_option("--pattern", pattern, "seq (default, like qemu-img) or rand")
      ->check(CLI::IsMember({"seq", "rand"}));
  app.add_option("--flush-interval", flush_interval, "flush after this many writes");
  app.add_flag("-w", write, "write instead of read");
  app.add_flag("--no-batch", no_batch,
               "submit each request on its own (default: each burst as one batch, as "
               "virtio-blk does)");
  app.add_flag("-q", quiet, "quiet");
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  const bool batch = !no_batch;
  auto req_size = parse_size_bytes(size_text);
  auto start = parse_size_bytes(offset_text);
  if (!req_size || *req_size == 0) {
    return fail("bench", req_size ? Error{ErrorKind::kInvalidInput, 0, "-s must be > 0"}
                                  : req_size.error());
  }
  if (!start) {
    return fail("bench", start.error());
  }
  uint64_t step = *req_size;
  if (!step_text.empty()) {
    auto s = parse_size_bytes(step_text);
    if (!s) {
      return fail("bench", s.error());
    }
    step = *s;
  }
  block::OpenOptions o;
  auto fmt = block::parse_image_format(format);
  if (!fmt) {
    return fail("bench", fmt.error());
  }
  o.format = *fmt;
  o.read_only = !write;
  o.cache = nocache ? block::CacheMode::kNone : block::CacheMode::kWriteback;
  o.io = engine == "io_uring" ? block::EngineKind::kIoUring : block::EngineKind::kThreadPool;
  o.queue_depth = std::max<size_t>(depth * 4, 128);
  auto img = block::open_block_backend(file, o);
  if (!img) {
    return fail("bench", img.error());
  }
  block::BlockBackend& disk = **img;
  const uint64_t size = disk.size_bytes();
  if (*req_size > size) {
    return fail("bench", Error{ErrorKind::kInvalidInput, 0, "request size exceeds the image"});
  }
  if (*start > size - *req_size) {
    return fail("bench", Error{ErrorKind::kInvalidInput, 0,
                               "the offset leaves no room for one request before the end"});
  }
  if (pattern == "rand" && *start % *req_size != 0) {
    return fail("bench", Error{ErrorKind::kInvalidInput, 0,
                               "with --pattern rand the offset must be a multiple of the request "
                               "size"});
  }
  // Requests stay in [start, size): random ones request-aligned, sequential ones wrap to start.
  const uint64_t span = size - *start - *req_size + 1;
  void* mem = nullptr;
  if (::posix_memalign(&mem, 4096, depth * *req_size) != 0) {
    return fail("bench", Error{ErrorKind::kHost, ENOMEM, "buffers"});
  }
  std::unique_ptr<uint8_t, decltype(&std::free)> bufs(static_cast<uint8_t*>(mem), &std::free);
  std::memset(bufs.get(), write ? 0xa5 : 0, depth * *req_size);
  std::vector<iovec> iov(depth);
  for (unsigned i = 0; i < depth; ++i) {
    iov[i] = {bufs.get() + i * *req_size, *req_size};
  }
  std::mt19937_64 rng(42);
  uint64_t next_off = *start;
  auto next_offset = [&]() {
    if (pattern == "rand") {
      return *start + rng() % span / *req_size * *req_size;
    }
    uint64_t off = next_off;
    if (off > size - *req_size) {
      off = *start;
    }
    next_off = off + step;
    return off;
  };
  if (!quiet) {
    std::printf("Sending %s requests, %llu bytes each, %u in parallel (starting at offset %llu, "
                "step size %llu)\n",
                seconds > 0 ? "timed" : std::to_string(count).c_str(),
                static_cast<unsigned long long>(*req_size), depth,
                static_cast<unsigned long long>(*start), static_cast<unsigned long long>(step));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const double cpu0 = process_cpu_seconds();
  const auto deadline = t0 + std::chrono::duration<double>(seconds);
  uint64_t submitted = 0, completed = 0, errors = 0, writes_since_flush = 0;
  unsigned in_flight = 0;
  std::vector<unsigned> free_slots;
  for (unsigned i = 0; i < depth; ++i) {
    free_slots.push_back(depth - 1 - i);
  }
  bool stop = false;
  block::IoCompletion done[64];
  const uint64_t kFlushCookie = UINT64_MAX;
  while (!stop || in_flight > 0) {
    // Each burst of submissions goes to the host as one batch, as virtio-blk sends the
    // requests of one queue notification (BlockBackend::plug).
    if (batch) {
      disk.plug();
    }
    while (!stop && !free_slots.empty()) {
      if ((seconds <= 0 && submitted >= count)) {
        stop = true;
        break;
      }
      const unsigned slot = free_slots.back();
      block::IoRequest r;
      r.op = write ? block::IoOp::kWrite : block::IoOp::kRead;
      r.offset_bytes = next_offset();
      r.iov = std::span<const iovec>(&iov[slot], 1);
      r.cookie = slot;
      auto st = disk.submit(r);
      if (!st) {
        if (st.error().errno_value == EAGAIN) {
          break;
        }
        return fail("bench", st.error());
      }
      free_slots.pop_back();
      ++submitted;
      ++in_flight;
      if (write && flush_interval > 0 && ++writes_since_flush >= flush_interval) {
        writes_since_flush = 0;
        block::IoRequest f;
        f.op = block::IoOp::kFlush;
        f.cookie = kFlushCookie;
        if (disk.submit(f)) {
          ++in_flight;
        }
      }
    }
    if (batch) {
      disk.unplug();
    }
    if (in_flight == 0) {
      break;
    }
    size_t n = disk.reap(done);
    if (n == 0) {
      pollfd p{disk.completion_fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      n = disk.reap(done);
    }
    for (size_t i = 0; i < n; ++i) {
      --in_flight;
      if (done[i].cookie == kFlushCookie) {
        continue;
      }
      ++completed;
      if (done[i].result < 0) {
        ++errors;
      }
      free_slots.push_back(static_cast<unsigned>(done[i].cookie));
    }
    if (seconds > 0 && !stop && std::chrono::steady_clock::now() >= deadline) {
      stop = true;
    }
  }
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = process_cpu_seconds() - cpu0;
  if (auto st = disk.close(); !st) {
    return fail("bench", st.error());
  }
  const double iops = static_cast<double>(completed) / elapsed;
  std::printf("Run completed in %.3f seconds.\n", elapsed);
  std::printf("requests=%llu iops=%.0f mib_per_s=%.1f errors=%llu cpu_s=%.3f\n",
              static_cast<unsigned long long>(completed), iops,
              iops * static_cast<double>(*req_size) / (1 << 20),
              static_cast<unsigned long long>(errors), cpu);
  return errors > 0 ? 1 : 0;
}

}  // namespace kumo::cli::img
