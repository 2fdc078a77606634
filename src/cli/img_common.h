#pragma once
// Shared plumbing of the `kumo img` sub-verbs: argument parsing with CLI11, error reporting
// (kInvalidInput ⇒ exit 2, other failures ⇒ 1), opening images, qcow2 -o option strings.

#include <CLI/CLI.hpp>

#include <memory>
#include <string>

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
// lazy_refcounts, compression_type, backing_file, backing_fmt) into `out`.
[[nodiscard]] Status parse_create_options(const std::string& text,
                                          block::Qcow2CreateOptions* out);

// Creates an image of the given format (raw or qcow2).
[[nodiscard]] Status create_image(const std::string& path, const std::string& format,
                                  const block::Qcow2CreateOptions& options);

// Number of layers from `top` down (1 = no backing file).
int chain_length(block::BlockBackend* top);

}  // namespace kumo::cli::img
