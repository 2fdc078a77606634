// kumo img convert | commit | rebase | compare: commands that copy data between images.

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "block/qcow2/qcow2_image.h"
#include "cli/img_common.h"
#include "cli/img_verbs.h"

namespace kumo::cli::img {
namespace {

constexpr uint64_t kChunk = 2 << 20;

bool all_zero(std::span<const uint8_t> b) {
  const uint8_t* p = b.data();
  size_t n = b.size();
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    if (v != 0) {
      return false;
    }
    p += 8;
    n -= 8;
  }
  while (n-- > 0) {
    if (*p++ != 0) {
      return false;
    }
  }
  return true;
}

// Is [off, off+len) known to read as zeros without reading it (unallocated to the bottom of
// the chain, or zero clusters)?
Result<uint64_t> zero_run(block::BlockBackend* top, uint64_t off, uint64_t len) {
  block::BlockBackend* layer = top;
  for (;;) {
    if (off >= layer->size_bytes()) {
      return len;
    }
    len = std::min(len, layer->size_bytes() - off);
    const block::BlockStatus s = KUMO_TRY(layer->block_status(off, len));
    if (s.allocated) {
      return s.zero ? s.len_bytes : 0;
    }
    len = s.len_bytes;
    if (layer->backing() == nullptr) {
      return len;
    }
    layer = layer->backing();
  }
}

Status do_convert(const std::string& in, const std::string& in_fmt, const std::string& out,
                  const std::string& out_fmt, bool compress,
                  const block::Qcow2CreateOptions& create_opts) {
  auto src = KUMO_TRY(open_image(in, in_fmt, true));
  block::Qcow2CreateOptions o = create_opts;
  o.size_bytes = src->size_bytes();
  if (compress && out_fmt != "qcow2") {
    return invalid_input("-c needs -O qcow2");
  }
  KUMO_TRY(create_image(out, out_fmt, o));
  auto dst = KUMO_TRY(open_image(out, out_fmt, false));
  auto* q = dynamic_cast<block::Qcow2Image*>(dst.get());
  const uint64_t unit = compress ? q->cluster_size() : kChunk;
  std::vector<uint8_t> buf(unit);
  const uint64_t size = src->size_bytes();
  for (uint64_t off = 0; off < size;) {
    const uint64_t n = std::min(unit - off % unit, size - off);
    const uint64_t z = KUMO_TRY(zero_run(src.get(), off, n));
    if (z > 0) {
      off += z;  // a fresh destination already reads zeros there
      continue;
    }
    std::span<uint8_t> b(buf.data(), static_cast<size_t>(n));
    KUMO_TRY(src->read(off, b));
    if (!all_zero(b)) {
      if (compress && off % unit == 0) {
        KUMO_TRY(q->write_compressed(off, b));
      } else {
        KUMO_TRY(dst->write(off, b));
      }
    }
    off += n;
  }
  return dst->close();
}

}  // namespace

int convert_main(int argc, char** argv) {
  CLI::App app("Copy an image (through its whole backing chain) into a new image.",
               "img convert");
  std::string in_fmt, out_fmt = "raw", options, in, out;
  bool compress = false, quiet = false, progress = false;
  app.add_option("-f", in_fmt, "input format (default: probe)");
  app.add_option("-O", out_fmt, "output format: raw or qcow2 (default raw)")
      ->check(CLI::IsMember({"raw", "qcow2"}));
  app.add_flag("-c", compress, "compress the output (qcow2 only)");
  app.add_option("-o", options, "qcow2 creation options, as for create");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("input", in, "source image")->required();
  app.add_option("output", out, "new image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  block::Qcow2CreateOptions o;
  if (auto st = parse_create_options(options, &o); !st) {
    return fail("convert", st.error());
  }
  if (!o.backing_file.empty()) {
    return fail("convert", Error{ErrorKind::kInvalidInput, 0,
                                 "convert writes a standalone image (no backing_file)"});
  }
  return fail_status("convert", do_convert(in, in_fmt, out, out_fmt, compress, o));
}

int commit_main(int argc, char** argv) {
  CLI::App app("Write the data of an overlay into its backing file; then empty the overlay "
               "(unless -d).",
               "img commit");
  std::string format, file;
  bool keep = false, quiet = false, progress = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_flag("-d", keep, "do not empty the overlay afterwards");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("filename", file, "overlay image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto run = [&]() -> Status {
    auto top = KUMO_TRY(open_image(file, format, false));
    auto* q = dynamic_cast<block::Qcow2Image*>(top.get());
    if (q == nullptr || q->backing() == nullptr) {
      return invalid_input("'{}' has no backing file to commit into", file);
    }
    const std::string base_path = q->backing_full_path();
    auto base = KUMO_TRY(open_image(base_path, std::string(q->backing()->format_name()), false));
    if (base->size_bytes() < top->size_bytes()) {
      if (auto* bq = dynamic_cast<block::Qcow2Image*>(base.get())) {
        KUMO_TRY(bq->resize(top->size_bytes(), false));
      } else {
        return invalid_input("backing file '{}' is smaller than the overlay", base_path);
      }
    }
    std::vector<uint8_t> buf(kChunk);
    for (uint64_t off = 0; off < top->size_bytes();) {
      const uint64_t len = std::min(kChunk, top->size_bytes() - off);
      const block::BlockStatus s = KUMO_TRY(top->block_status(off, len));
      if (s.allocated) {
        if (s.zero) {
          KUMO_TRY(base->write_zeroes(off, s.len_bytes));
        } else {
          std::span<uint8_t> b(buf.data(), static_cast<size_t>(s.len_bytes));
          KUMO_TRY(top->read(off, b));
          KUMO_TRY(base->write(off, b));
        }
      }
      off += s.len_bytes;
    }
    KUMO_TRY(base->close());
    if (!keep) {
      KUMO_TRY(q->make_empty());
    }
    KUMO_TRY(top->close());
    if (!quiet) {
      std::printf("Image committed.\n");
    }
    return {};
  };
  return fail_status("commit", run());
}

int rebase_main(int argc, char** argv) {
  CLI::App app("Change the backing file of a qcow2 image. Safe mode (default) copies every "
               "range where the old and new backing files differ into the image first; -u "
               "only rewrites the header. An empty -b \"\" makes the image standalone.",
               "img rebase");
  std::string format, backing, backing_fmt, file;
  bool unsafe = false, quiet = false, progress = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("-b", backing, "new backing file (\"\" for none)")->required();
  app.add_option("-F", backing_fmt, "new backing file format");
  app.add_flag("-u", unsafe, "unsafe: rewrite the header only");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto run = [&]() -> Status {
    auto img = KUMO_TRY(open_image(file, format, false, !unsafe));
    auto* q = dynamic_cast<block::Qcow2Image*>(img.get());
    if (q == nullptr) {
      return invalid_input("'{}': only qcow2 images have a backing file", file);
    }
    std::string new_fmt = backing_fmt;
    std::string resolved = backing;
    if (!backing.empty() && backing[0] != '/') {
      const auto slash = file.rfind('/');
      if (slash != std::string::npos) {
        resolved = file.substr(0, slash + 1) + backing;
      }
    }
    if (!backing.empty() && new_fmt.empty()) {
      const auto f = KUMO_TRY(block::probe_format(resolved));
      new_fmt = block::image_format_name(f);
    }
    if (!unsafe) {
      std::unique_ptr<block::BlockBackend> nb;
      if (!backing.empty()) {
        nb = KUMO_TRY(open_image(resolved, new_fmt, true));
      }
      std::vector<uint8_t> a(kChunk), b(kChunk);
      const uint64_t size = img->size_bytes();
      for (uint64_t off = 0; off < size;) {
        const uint64_t len = std::min(kChunk, size - off);
        const block::BlockStatus s = KUMO_TRY(img->block_status(off, len));
        if (!s.allocated) {
          std::span<uint8_t> old_data(a.data(), static_cast<size_t>(s.len_bytes));
          std::span<uint8_t> new_data(b.data(), static_cast<size_t>(s.len_bytes));
          KUMO_TRY(img->read(off, old_data));  // through the old backing file
          std::fill(new_data.begin(), new_data.end(), uint8_t{0});
          if (nb && off < nb->size_bytes()) {
            const uint64_t n = std::min<uint64_t>(s.len_bytes, nb->size_bytes() - off);
            KUMO_TRY(nb->read(off, new_data.first(static_cast<size_t>(n))));
          }
          if (!std::equal(old_data.begin(), old_data.end(), new_data.begin())) {
            KUMO_TRY(img->write(off, old_data));
          }
        }
        off += s.len_bytes;
      }
    }
    KUMO_TRY(q->set_backing(backing, new_fmt));
    return img->close();
  };
  return fail_status("rebase", run());
}

int compare_main(int argc, char** argv) {
  CLI::App app("Compare the guest-visible contents of two images. Exit status: 0 identical, "
               "1 different, 2 error.",
               "img compare");
  std::string fmt1, fmt2, a, b;
  bool strict = false, quiet = false, progress = false;
  app.add_option("-f", fmt1, "format of the first image");
  app.add_option("-F", fmt2, "format of the second image");
  app.add_flag("-s", strict, "strict: a size difference is a mismatch");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("image1", a, "first image")->required();
  app.add_option("image2", b, "second image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto ia = open_image(a, fmt1, true);
  if (!ia) {
    return fail("compare", ia.error());
  }
  auto ib = open_image(b, fmt2, true);
  if (!ib) {
    return fail("compare", ib.error());
  }
  const uint64_t sa = (*ia)->size_bytes(), sb = (*ib)->size_bytes();
  if (sa != sb) {
    if (strict) {
      std::printf("Strict mode: Image size mismatch!\n");
      return 1;
    }
    if (!quiet) {
      std::printf("Warning: Image size mismatch!\n");
    }
  }
  std::vector<uint8_t> x(kChunk), y(kChunk);
  const uint64_t common = std::min(sa, sb);
  for (uint64_t off = 0; off < std::max(sa, sb); off += kChunk) {
    const uint64_t len = std::min(kChunk, std::max(sa, sb) - off);
    std::span<uint8_t> px(x.data(), static_cast<size_t>(len));
    std::span<uint8_t> py(y.data(), static_cast<size_t>(len));
    std::fill(px.begin(), px.end(), uint8_t{0});
    std::fill(py.begin(), py.end(), uint8_t{0});
    if (off < sa) {
      if (auto st = (*ia)->read(off, px.first(static_cast<size_t>(std::min(len, sa - off))));
          !st) {
        return fail("compare", st.error());
      }
    }
    if (off < sb) {
      if (auto st = (*ib)->read(off, py.first(static_cast<size_t>(std::min(len, sb - off))));
          !st) {
        return fail("compare", st.error());
      }
    }
    if (!std::equal(px.begin(), px.end(), py.begin())) {
      size_t i = 0;
      while (px[i] == py[i]) {
        ++i;
      }
      const uint64_t at = off + i;
      std::printf("Content mismatch at offset %llu!\n", static_cast<unsigned long long>(at));
      (void)common;
      return 1;
    }
  }
  if (!quiet) {
    std::printf("Images are identical.\n");
  }
  return 0;
}

}  // namespace kumo::cli::img
