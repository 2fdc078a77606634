#pragma once
// open_block_backend(): the one way consumers (virtio-blk, kumo img) open a disk image.
//
//   auto disk = KUMO_TRY(open_block_backend("vm1.qcow2", {.read_only = false}));
//
// Errors are kInvalidInput, naming the file and the problem, for everything the user can fix:
// missing file, directory, no permission, unknown or malformed format, a broken backing chain.

#include <memory>
#include <string>

#include "block/block_backend.h"
#include "block/io_engine.h"

namespace kumo::block {

enum class ImageFormat { kAuto, kRaw, kQcow2 };
enum class CacheMode {
  kWriteback,  // page cache; flush() makes data durable
  kNone,       // O_DIRECT; flush() still needed for the device's volatile cache
};

struct OpenOptions {
  ImageFormat format = ImageFormat::kAuto;  // kAuto: qcow2 magic ⇒ qcow2, else raw
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;
  EngineKind io = EngineKind::kIoUring;  // kThreadPool is the synchronous/threaded fallback
  size_t queue_depth = 128;              // async requests in flight per back end
  // qcow2 metadata caches; 0 picks a default (L2: enough to map the whole disk, at most
  // 32 MiB; refcount: 256 KiB).
  uint64_t l2_cache_bytes = 0;
  uint64_t refcount_cache_bytes = 0;
  bool open_backing = true;
  // Lock the image (and, shared, its backing files) against conflicting users — another VM,
  // QEMU, or a second disk of the same VM (HostFile::open). The VMM sets it.
  bool lock = false;  // false: unallocated clusters read as zeros (kumo img rebase -u)
  bool allow_corrupt = false;  // open a qcow2 marked corrupt read-write (kumo img check -r)
};

[[nodiscard]] Result<std::unique_ptr<BlockBackend>> open_block_backend(const std::string& path,
                                                                       const OpenOptions& options);

// Reads the first bytes of `path` and names its format (kQcow2 or kRaw).
[[nodiscard]] Result<ImageFormat> probe_format(const std::string& path);

[[nodiscard]] Result<ImageFormat> parse_image_format(std::string_view name);
[[nodiscard]] const char* image_format_name(ImageFormat format);
[[nodiscard]] Result<CacheMode> parse_cache_mode(std::string_view name);
[[nodiscard]] Result<EngineKind> parse_engine_kind(std::string_view name);

}  // namespace kumo::block
