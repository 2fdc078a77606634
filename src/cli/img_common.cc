#include "cli/img_common.h"

#include <cstdio>
#include <filesystem>

#include "base/size_parse.h"
#include "block/host_file.h"

namespace kumo::cli::img {

std::optional<int> parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    return 0;
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "kumo %s: %s (see 'kumo %s --help')\n", app.get_name().c_str(),
                 e.what(), app.get_name().c_str());
    return 2;
  }
  return std::nullopt;
}

int fail(const std::string& verb, const Error& error) {
  std::fprintf(stderr, "kumo img %s: %s\n", verb.c_str(), error.to_string().c_str());
  return error.kind == ErrorKind::kInvalidInput ? 2 : 1;
}

int fail_status(const std::string& verb, const Status& status) {
  return status ? 0 : fail(verb, status.error());
}

Result<std::unique_ptr<block::BlockBackend>> open_image(const std::string& path,
                                                        const std::string& format,
                                                        bool read_only, bool open_backing) {
  block::OpenOptions o;
  o.format = KUMO_TRY(block::parse_image_format(format));
  o.read_only = read_only;
  o.open_backing = open_backing;
  o.io = block::EngineKind::kThreadPool;  // synchronous use: no ring needed
  return block::open_block_backend(path, o);
}

Status parse_create_options(const std::string& text, block::Qcow2CreateOptions* out) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) {
      end = text.size();
    }
    const std::string item = text.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) {
      continue;
    }
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return invalid_input("option '{}' needs a value (key=value)", item);
    }
    const std::string key = item.substr(0, eq);
    const std::string value = item.substr(eq + 1);
    auto on_off = [&](bool* b) -> Status {
      if (value == "on" || value == "true") {
        *b = true;
      } else if (value == "off" || value == "false") {
        *b = false;
      } else {
        return invalid_input("option '{}' takes on or off, not '{}'", key, value);
      }
      return {};
    };
    if (key == "cluster_size") {
      out->cluster_size = static_cast<uint32_t>(KUMO_TRY(parse_size_bytes(value)));
    } else if (key == "compat") {
      if (value == "0.10" || value == "v2") {
        out->version = 2;
      } else if (value == "1.1" || value == "v3") {
        out->version = 3;
      } else {
        return invalid_input("compat must be 0.10 or 1.1, not '{}'", value);
      }
    } else if (key == "refcount_bits") {
      out->refcount_bits = static_cast<uint32_t>(KUMO_TRY(parse_size_bytes(value)));
    } else if (key == "lazy_refcounts") {
      KUMO_TRY(on_off(&out->lazy_refcounts));
    } else if (key == "compression_type") {
      if (value == "zlib") {
        out->compression_type = 0;
      } else if (value == "zstd") {
        out->compression_type = 1;
      } else {
        return invalid_input("compression_type must be zlib or zstd, not '{}'", value);
      }
    } else if (key == "backing_file") {
      out->backing_file = value;
    } else if (key == "backing_fmt") {
      out->backing_format = value;
    } else if (key == "extended_l2") {
      KUMO_TRY(on_off(&out->extended_l2));
    } else if (key == "preallocation") {
      if (value != "off") {
        return invalid_input("preallocation={} is not supported (only off)", value);
      }
    } else {
      return invalid_input("unknown option '{}'", key);
    }
  }
  return {};
}

Status create_image(const std::string& path, const std::string& format,
                    block::Qcow2CreateOptions options) {
  // As qemu-img: sizes are whole 512-byte sectors, rounded up.
  if (options.size_bytes > UINT64_MAX - 511) {
    return invalid_input("image size {} is too large", options.size_bytes);
  }
  options.size_bytes = (options.size_bytes + 511) / 512 * 512;
  if (format == "qcow2") {
    return block::create_qcow2(path, options);
  }
  if (format == "raw") {
    if (!options.backing_file.empty()) {
      return invalid_input("raw images cannot have a backing file");
    }
    block::HostFile f = KUMO_TRY(block::HostFile::create(path));
    return f.truncate(options.size_bytes);
  }
  return invalid_input("unknown image format '{}' (use raw or qcow2)", format);
}

int chain_length(block::BlockBackend* top) {
  int n = 0;
  for (block::BlockBackend* b = top; b != nullptr; b = b->backing()) {
    ++n;
  }
  return n;
}

std::string resolve_backing_path(const std::string& image, const std::string& backing) {
  namespace fs = std::filesystem;
  const fs::path p(backing);
  if (backing.empty() || p.is_absolute()) {
    return backing;
  }
  return (fs::path(image).parent_path() / p).string();
}

std::vector<std::string> chain_paths(block::BlockBackend* top, const std::string& top_path) {
  std::vector<std::string> paths{top_path};
  for (block::BlockBackend* b = top; b != nullptr && b->backing() != nullptr; b = b->backing()) {
    auto* q = dynamic_cast<block::Qcow2Image*>(b);
    paths.push_back(q != nullptr ? q->backing_full_path() : std::string());
  }
  return paths;
}

int find_layer(const std::vector<std::string>& paths, const std::string& path) {
  for (size_t i = 0; i < paths.size(); ++i) {
    std::error_code ec;  // a missing file is no layer
    if (std::filesystem::equivalent(paths[i], path, ec)) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

Result<ChainStatus> chain_status(block::BlockBackend* top, block::BlockBackend* base,
                                 uint64_t offset, uint64_t len) {
  ChainStatus c;
  block::BlockBackend* layer = top;
  for (;;) {
    if (offset >= layer->size_bytes()) {
      c.len_bytes = len;
      c.past_end = true;
      return c;
    }
    len = std::min(len, layer->size_bytes() - offset);
    c.status = KUMO_TRY(layer->block_status(offset, len));
    len = c.status.len_bytes;
    c.len_bytes = len;
    if (c.status.allocated || layer->backing() == nullptr || layer->backing() == base) {
      return c;
    }
    layer = layer->backing();
    ++c.depth;
  }
}

block::BlockBackend* chain_layer(block::BlockBackend* top, int depth) {
  block::BlockBackend* b = top;
  for (int i = 0; i < depth && b != nullptr; ++i) {
    b = b->backing();
  }
  return b;
}

}  // namespace kumo::cli::img
