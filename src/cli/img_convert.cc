// kumo img convert | commit | rebase | compare: commands that copy data between images.

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "block/qcow2/format.h"
#include "block/qcow2/qcow2_image.h"
#include "block/raw_file.h"
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
// the chain, zero clusters, past the end of a layer)? Returns how far, 0 if not.
Result<uint64_t> zero_run(block::BlockBackend* top, uint64_t off, uint64_t len) {
  const ChainStatus c = KUMO_TRY(chain_status(top, nullptr, off, len));
  return c.reads_zero() || !c.defined() ? c.len_bytes : 0;
}

struct ConvertJob {
  std::string in, in_fmt, out, out_fmt;
  bool compress = false;
  block::Qcow2CreateOptions create;  // backing_file/backing_format: the output's backing (-B)
};

// Writes the piece of `data` at `off` into the new image: compressed when it is a whole
// cluster and -c asks for it, as zero clusters when it is all zeros and a backing file shows
// something else below it.
Status write_piece(block::BlockBackend* dst, bool compress, bool over_backing, uint64_t off,
                   std::span<const uint8_t> data) {
  if (all_zero(data)) {
    return over_backing ? dst->write_zeroes(off, data.size()) : Status{};
  }
  auto* q = dynamic_cast<block::Qcow2Image*>(dst);
  if (compress && off % q->cluster_size() == 0 &&
      (data.size() == q->cluster_size() || off + data.size() == dst->size_bytes())) {
    return q->write_compressed(off, data);
  }
  return dst->write(off, data);
}

// qemu-img convert: copies what the source chain shows. With a backing file (-B) the new
// image is an overlay that holds only the clusters whose content differs from the backing
// file's: a range the source's own chain takes unchanged from that same file is skipped
// without reading; anything else is compared with what the new image shows there.
Status do_convert(const ConvertJob& job) {
  auto src = KUMO_TRY(open_image(job.in, job.in_fmt, true));
  block::Qcow2CreateOptions o = job.create;
  o.size_bytes = src->size_bytes();
  if (job.compress && job.out_fmt != "qcow2") {
    return invalid_input("-c needs -O qcow2");
  }
  const bool over_backing = !o.backing_file.empty();
  if (over_backing && job.out_fmt != "qcow2") {
    return invalid_input("-B needs -O qcow2: a {} image has no backing file", job.out_fmt);
  }
  const std::string backing_path = resolve_backing_path(job.out, o.backing_file);
  if (over_backing && o.backing_format.empty()) {
    auto fmt = block::probe_format(backing_path);
    if (!fmt) {
      return tl::unexpected(
          fmt.error().with_context(fmt::format("backing file '{}'", o.backing_file)));
    }
    o.backing_format = block::image_format_name(*fmt);
  }
  block::BlockBackend* same = nullptr;  // the backing file as a layer of the source chain
  if (over_backing) {
    // Open it before creating the output, so that a missing backing file leaves nothing.
    KUMO_TRY(open_image(backing_path, o.backing_format, true));
    const int depth = find_layer(chain_paths(src.get(), job.in), backing_path);
    same = depth >= 0 ? chain_layer(src.get(), depth) : nullptr;
  }
  KUMO_TRY(create_image(job.out, job.out_fmt, o));
  auto dst = KUMO_TRY(open_image(job.out, job.out_fmt, false));
  auto* q = dynamic_cast<block::Qcow2Image*>(dst.get());
  const uint64_t cs = q != nullptr ? q->cluster_size() : kChunk;
  const uint64_t unit = job.compress ? cs : std::max(cs, kChunk);
  // Over a backing file, pieces are compared (and written) per cluster, or per subcluster
  // where the output has them and -c does not ask for whole clusters.
  const bool subclusters = q != nullptr && q->header().extended_l2() && !job.compress;
  const uint64_t grain = subclusters ? cs / block::qcow2::kSubclustersPerCluster : cs;
  std::vector<uint8_t> buf(unit), below(unit);
  const uint64_t size = src->size_bytes();
  for (uint64_t off = 0; off < size && same != src.get();) {
    uint64_t n = std::min(unit - off % unit, size - off);
    std::span<uint8_t> b(buf.data(), static_cast<size_t>(n));
    if (same != nullptr) {
      const ChainStatus c = KUMO_TRY(chain_status(src.get(), same, off, n));
      if (!c.defined()) {
        off += c.len_bytes;  // the source shows the backing file's data here
        continue;
      }
      n = c.len_bytes;
      b = b.first(static_cast<size_t>(n));
    }
    const uint64_t z = KUMO_TRY(zero_run(src.get(), off, n));
    if (z > 0 && !over_backing) {
      off += z;  // a fresh destination already reads zeros there
      continue;
    }
    if (z > 0) {
      n = z;
      b = b.first(static_cast<size_t>(n));
      std::fill(b.begin(), b.end(), uint8_t{0});
    } else {
      KUMO_TRY(src->read(off, b));
    }
    if (!over_backing) {
      KUMO_TRY(write_piece(dst.get(), job.compress, false, off, b));
      off += n;
      continue;
    }
    // What the backing file shows through the still empty range, one grain at a time.
    std::span<uint8_t> old(below.data(), b.size());
    KUMO_TRY(dst->read(off, old));
    for (uint64_t pos = 0; pos < n;) {
      const uint64_t len = std::min(grain - (off + pos) % grain, n - pos);
      const auto piece = b.subspan(static_cast<size_t>(pos), static_cast<size_t>(len));
      const auto shown = old.subspan(static_cast<size_t>(pos), static_cast<size_t>(len));
      if (!std::equal(piece.begin(), piece.end(), shown.begin())) {
        KUMO_TRY(write_piece(dst.get(), job.compress, true, off + pos, piece));
      }
      pos += len;
    }
    off += n;
  }
  return dst->close();
}

}  // namespace

int convert_main(int argc, char** argv) {
  CLI::App app("Copy an image (through its whole backing chain) into a new image. With -B, "
               "the new image is a qcow2 overlay over BACKING_FILE that stores only what "
               "differs from it (ranges that read as zeros where BACKING_FILE has data become "
               "zero clusters).",
               "img convert");
  ConvertJob job;
  job.out_fmt = "raw";
  std::string options, backing, backing_fmt;
  bool quiet = false, progress = false;
  app.add_option("-f", job.in_fmt, "input format (default: probe)");
  app.add_option("-O", job.out_fmt, "output format: raw or qcow2 (default raw)")
      ->check(CLI::IsMember({"raw", "qcow2"}));
  app.add_flag("-c", job.compress, "compress the output (qcow2 only)");
  app.add_option("-B", backing,
                 "backing file of the output (qcow2 only; stored as given, relative names "
                 "resolve against the output's directory)");
  app.add_option("-F", backing_fmt, "format of the -B backing file (default: probe)")
      ->check(CLI::IsMember({"raw", "qcow2"}));
  app.add_option("-o", options, "qcow2 creation options, as for create");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("input", job.in, "source image")->required();
  app.add_option("output", job.out, "new image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  if (auto st = parse_create_options(options, &job.create); !st) {
    return fail("convert", st.error());
  }
  if (!backing.empty()) {
    job.create.backing_file = backing;  // -o backing_file=... means the same, as in qemu-img
  }
  if (!backing_fmt.empty()) {
    job.create.backing_format = backing_fmt;
  }
  if (!job.create.backing_format.empty() && job.create.backing_file.empty()) {
    return fail("convert", Error{ErrorKind::kInvalidInput, 0, "-F needs -B"});
  }
  return fail_status("convert", do_convert(job));
}

int commit_main(int argc, char** argv) {
  CLI::App app("Write the data of an image into an image below it in its backing chain "
               "(default: its backing file), then empty the image (unless -d). With -b BASE, "
               "every image above BASE is committed and, as in qemu-img, -d is implied: the "
               "top image still reads the same, images between it and BASE may not.",
               "img commit");
  std::string format, base_name, file;
  bool keep = false, quiet = false, progress = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("-b", base_name, "the image of the backing chain to commit into");
  app.add_flag("-d", keep, "do not empty the image afterwards");
  app.add_flag("-q", quiet, "quiet");
  app.add_flag("-p", progress, "accepted for qemu-img compatibility");
  app.add_option("filename", file, "top image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  const bool empty_top = !keep && base_name.empty();
  auto run = [&]() -> Status {
    auto top = KUMO_TRY(open_image(file, format, !empty_top));
    if (top->backing() == nullptr) {
      return invalid_input("'{}' has no backing file to commit into", file);
    }
    const std::vector<std::string> paths = chain_paths(top.get(), file);
    int depth = 1;
    if (!base_name.empty()) {
      // As qemu-img: BASE as given, or as a backing file name relative to the top image.
      depth = find_layer(paths, base_name);
      if (depth < 0) {
        depth = find_layer(paths, resolve_backing_path(file, base_name));
      }
      if (depth <= 0) {
        return invalid_input("did not find '{}' in the backing chain of '{}'", base_name, file);
      }
    }
    block::BlockBackend* below = chain_layer(top.get(), depth);
    const std::string& base_path = paths[static_cast<size_t>(depth)];
    auto base = KUMO_TRY(open_image(base_path, std::string(below->format_name()), false));
    if (base->size_bytes() < top->size_bytes()) {
      if (auto* bq = dynamic_cast<block::Qcow2Image*>(base.get())) {
        KUMO_TRY(bq->resize(top->size_bytes(), false));
      } else if (auto* br = dynamic_cast<block::RawFile*>(base.get())) {
        KUMO_TRY(br->resize(top->size_bytes()));
      }
    }
    // Every range a layer above the base defines goes down as the top image shows it.
    std::vector<uint8_t> buf(kChunk);
    for (uint64_t off = 0; off < top->size_bytes();) {
      const uint64_t len = std::min(kChunk, top->size_bytes() - off);
      const ChainStatus c = KUMO_TRY(chain_status(top.get(), below, off, len));
      if (c.reads_zero()) {
        KUMO_TRY(base->write_zeroes(off, c.len_bytes));
      } else if (c.defined()) {
        std::span<uint8_t> b(buf.data(), static_cast<size_t>(c.len_bytes));
        KUMO_TRY(top->read(off, b));
        KUMO_TRY(base->write(off, b));
      }
      off += c.len_bytes;
    }
    KUMO_TRY(base->close());
    if (empty_top) {
      auto* q = dynamic_cast<block::Qcow2Image*>(top.get());
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
    const std::string resolved = resolve_backing_path(file, backing);
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
