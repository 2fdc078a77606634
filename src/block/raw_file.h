#pragma once
// RawFile: the raw format BlockBackend. Guest byte N is host file byte N.
//
// Synchronous calls use positional I/O directly; the asynchronous path hands requests to an
// IoEngine (io_uring by default, worker threads as the fallback). With cache=none the file is
// opened O_DIRECT; asynchronous requests that are not 4 KiB aligned are served synchronously
// through a bounce buffer and completed at once, so any request works in any mode.
// The virtual size is the file size at open time (or after resize()).

#include <memory>
#include <string>

#include "block/block_backend.h"
#include "block/host_file.h"
#include "block/io_engine.h"

namespace kumo::block {

class RawFile final : public BlockBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<RawFile>> create(HostFile file, EngineKind engine,
                                                               size_t queue_depth);
  ~RawFile() override = default;

  [[nodiscard]] uint64_t size_bytes() const override { return size_bytes_; }
  [[nodiscard]] bool read_only() const override { return file_.read_only(); }

  [[nodiscard]] Status read(uint64_t offset_bytes, std::span<uint8_t> out) override;
  [[nodiscard]] Status write(uint64_t offset_bytes, std::span<const uint8_t> in) override;
  [[nodiscard]] Status flush() override;
  [[nodiscard]] Status discard(uint64_t offset_bytes, uint64_t len_bytes) override;
  [[nodiscard]] Status write_zeroes(uint64_t offset_bytes, uint64_t len_bytes) override;

  [[nodiscard]] Status submit(const IoRequest& request) override;
  [[nodiscard]] int completion_fd() const override { return engine_->completion_fd(); }
  [[nodiscard]] size_t reap(std::span<IoCompletion> out) override {
    return engine_->reap(out);
  }
  void plug() override { engine_->plug(); }
  void unplug() override { engine_->unplug(); }

  // Grows or shrinks the file (kumo img resize).
  [[nodiscard]] Status resize(uint64_t new_size_bytes);
  [[nodiscard]] HostFile& file() { return file_; }

 private:
  RawFile(HostFile file, std::unique_ptr<IoEngine> engine, uint64_t size_bytes)
      : file_(std::move(file)), engine_(std::move(engine)), size_bytes_(size_bytes) {}
  int64_t execute_bounced(const IoRequest& request);

  HostFile file_;
  std::unique_ptr<IoEngine> engine_;
  uint64_t size_bytes_;
};

// Validates [offset, offset+len) against size; kInvalidInput names the range otherwise.
[[nodiscard]] Status check_range(uint64_t offset_bytes, uint64_t len_bytes, uint64_t size_bytes);

}  // namespace kumo::block
