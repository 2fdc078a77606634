#include "block/open_backend.h"

#include <array>

#include "block/host_file.h"
#include "block/raw_file.h"

namespace kumo::block {

Result<ImageFormat> probe_format(const std::string& path) {
  HostFile f = KUMO_TRY(HostFile::open(path, /*read_only=*/true, /*direct=*/false));
  std::array<uint8_t, 4> magic{};
  KUMO_TRY(f.pread_full(0, magic));
  if (magic == std::array<uint8_t, 4>{'Q', 'F', 'I', 0xfb}) {
    return ImageFormat::kQcow2;
  }
  return ImageFormat::kRaw;
}

Result<ImageFormat> parse_image_format(std::string_view name) {
  if (name == "raw") {
    return ImageFormat::kRaw;
  }
  if (name == "qcow2") {
    return ImageFormat::kQcow2;
  }
  if (name == "auto" || name.empty()) {
    return ImageFormat::kAuto;
  }
  return invalid_input("unknown image format '{}' (use raw or qcow2)", name);
}

const char* image_format_name(ImageFormat format) {
  switch (format) {
    case ImageFormat::kRaw:
      return "raw";
    case ImageFormat::kQcow2:
      return "qcow2";
    case ImageFormat::kAuto:
      break;
  }
  return "auto";
}

Result<CacheMode> parse_cache_mode(std::string_view name) {
  if (name == "writeback") {
    return CacheMode::kWriteback;
  }
  if (name == "none") {
    return CacheMode::kNone;
  }
  return invalid_input("unknown cache mode '{}' (use none or writeback)", name);
}

Result<EngineKind> parse_engine_kind(std::string_view name) {
  if (name == "io_uring") {
    return EngineKind::kIoUring;
  }
  if (name == "sync" || name == "threads") {
    return EngineKind::kThreadPool;
  }
  return invalid_input("unknown I/O engine '{}' (use io_uring or sync)", name);
}

Result<std::unique_ptr<BlockBackend>> open_qcow2_backend(const std::string& path,
                                                         const OpenOptions& options);

Result<std::unique_ptr<BlockBackend>> open_block_backend(const std::string& path,
                                                         const OpenOptions& options) {
  ImageFormat format = options.format;
  if (format == ImageFormat::kAuto) {
    format = KUMO_TRY(probe_format(path));
  }
  if (format == ImageFormat::kQcow2) {
    return open_qcow2_backend(path, options);
  }
  HostFile file =
      KUMO_TRY(HostFile::open(path, options.read_only, options.cache == CacheMode::kNone,
                              options.lock));
  auto raw = KUMO_TRY(RawFile::create(std::move(file), options.io, options.queue_depth));
  return std::unique_ptr<BlockBackend>(std::move(raw));
}

}  // namespace kumo::block
