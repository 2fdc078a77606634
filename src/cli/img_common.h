#pragma once
// Shared plumbing of the `kumo img` sub-verbs: argument parsing with CLI11, error reporting
// (kInvalidInput ⇒ exit 2, other failures ⇒ 1), opening images, qcow2 -o option strings.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "block/block_backend.h"
#include "block/open_backend.h"
#include "block/qcow2/qcow2_image.h"

namespace kumo::cli::img {

// Parses argv; returns an exit status when the program should stop (help: 0, misuse: 2).
[[nodiscard]] std::optional<int> parse(CLI::App& app, int argc, char** argv);
// Prints "kumo img <verb>: <message>" and returns the exit status for the error.
int fail(const std::string& verb, const Error& error);
int fail_status(const std::string& verb, const Status& status);

[[nodiscard]] Result<std::unique_ptr<block::BlockBackend>> open_image(
    const std::string& path, const std::string& format, bool read_only,
    bool open_backing = true);

// Parses "key=value,key=value" qcow2 creation options (cluster_size, compat, refcount_bits,
// lazy_refcounts, compression_type, extended_l2, backing_file, backing_fmt) into `out`.
[[nodiscard]] Status parse_create_options(const std::string& text,
                                          block::Qcow2CreateOptions* out);

// Creates an image of the given format (raw or qcow2), its size rounded up to a multiple of
// 512 bytes as qemu-img does.
[[nodiscard]] Status create_image(const std::string& path, const std::string& format,
                                  block::Qcow2CreateOptions options);

// Number of layers from `top` down (1 = no backing file).
int chain_length(block::BlockBackend* top);

// Where a backing file named `backing` in the header of `image` lives: relative names resolve
// against the image's directory, as qcow2 readers resolve them.
[[nodiscard]] std::string resolve_backing_path(const std::string& image,
                                               const std::string& backing);

// The file of each layer of the chain under `top` (opened from `top_path`), top first.
[[nodiscard]] std::vector<std::string> chain_paths(block::BlockBackend* top,
                                                   const std::string& top_path);

// Index in `paths` of the layer that is the same file as `path`, or -1.
[[nodiscard]] int find_layer(const std::vector<std::string>& paths, const std::string& path);

// Which layer of a backing chain defines a range: the walk goes from `top` down and stops
// before `base` (nullptr: the bottom of the chain).
struct ChainStatus {
  uint64_t len_bytes = 0;  // how far the answer extends
  int depth = 0;           // the layer that answered (0 = top); the last one walked if none did
  bool past_end = false;   // the range lies past the end of layer `depth`, which reads zeros
  block::BlockStatus status;  // of layer `depth`; unallocated when no layer above base has it
  // True when a layer above `base` decides what the range reads.
  [[nodiscard]] bool defined() const { return past_end || status.allocated; }
  // True when the range reads as zeros whatever lies below (zero clusters, past an end).
  [[nodiscard]] bool reads_zero() const { return past_end || (status.allocated && status.zero); }
};
[[nodiscard]] Result<ChainStatus> chain_status(block::BlockBackend* top,
                                               block::BlockBackend* base, uint64_t offset_bytes,
                                               uint64_t max_len_bytes);

// The layer `depth` levels below `top` (0 = top), or nullptr.
[[nodiscard]] block::BlockBackend* chain_layer(block::BlockBackend* top, int depth);

}  // namespace kumo::cli::img
