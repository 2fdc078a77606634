// kumo img: the offline disk image tool (create, info, check, snapshot, resize, map here;
// convert, commit, rebase, compare in img_convert.cc; bench in img_bench.cc). Options and
// JSON field names follow qemu-img so scripts carry over.

#include <sys/stat.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/size_parse.h"
#include "block/raw_file.h"
#include "cli/img_common.h"
#include "cli/img_verbs.h"
#include "cli/verbs.h"

namespace kumo::cli {
namespace img {
namespace {

using nlohmann::ordered_json;

int create_main(int argc, char** argv) {
  CLI::App app("Create a new disk image. SIZE may carry a K, M, G or T suffix; it may be "
               "omitted when a backing file gives it.",
               "img create");
  std::string format = "raw", backing, backing_fmt, options, file, size_text;
  bool quiet = false;
  app.add_option("-f", format, "image format: raw or qcow2 (default raw)");
  app.add_option("-b", backing, "backing file (copy-on-write overlay)");
  app.add_option("-F", backing_fmt, "backing file format: raw or qcow2");
  app.add_option("-o", options,
                 "qcow2 options: cluster_size, compat (0.10|1.1), refcount_bits, "
                 "lazy_refcounts, compression_type (zlib|zstd), extended_l2 (on: 32 "
                 "subclusters per cluster, 16 KiB clusters or larger)");
  app.add_flag("-q", quiet, "quiet");
  app.add_option("filename", file, "image to create")->required();
  app.add_option("size", size_text, "virtual size");
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  block::Qcow2CreateOptions o;
  if (auto st = parse_create_options(options, &o); !st) {
    return fail("create", st.error());
  }
  if (!backing.empty()) {
    o.backing_file = backing;
  }
  if (!backing_fmt.empty()) {
    o.backing_format = backing_fmt;
  }
  if (!o.backing_file.empty() && format != "qcow2") {
    return fail("create", Error{ErrorKind::kInvalidInput, 0, "-b needs -f qcow2"});
  }
  if (!size_text.empty()) {
    auto size = parse_size_bytes(size_text);
    if (!size) {
      return fail("create", *&size.error());
    }
    o.size_bytes = *size;
  } else if (!o.backing_file.empty()) {
    const std::string path = resolve_backing_path(file, o.backing_file);
    auto b = open_image(path, o.backing_format, true);
    if (!b) {
      return fail("create", b.error().with_context(fmt::format("backing file '{}'", path)));
    }
    o.size_bytes = (*b)->size_bytes();
    if (o.backing_format.empty()) {
      o.backing_format = std::string((*b)->format_name());
    }
  } else {
    return fail("create", Error{ErrorKind::kInvalidInput, 0, "missing SIZE"});
  }
  if (!o.backing_file.empty() && o.backing_format.empty()) {
    // Record the format so that readers never have to probe it.
    const std::string path = resolve_backing_path(file, o.backing_file);
    auto fmt = block::probe_format(path);
    if (!fmt) {
      return fail("create", fmt.error().with_context(fmt::format("backing file '{}'", path)));
    }
    o.backing_format = block::image_format_name(*fmt);
  }
  if (auto st = create_image(file, format, o); !st) {
    return fail("create", st.error());
  }
  if (!quiet) {
    std::printf("Formatting '%s', fmt=%s size=%llu\n", file.c_str(), format.c_str(),
                static_cast<unsigned long long>(o.size_bytes));
  }
  return 0;
}

std::string human_size(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  if (u == 0) {
    return fmt::format("{} B", bytes);
  }
  return fmt::format("{:.3g} {}", v, units[u]);
}

ordered_json info_json(block::BlockBackend& b, const std::string& filename) {
  ordered_json j;
  j["virtual-size"] = b.size_bytes();
  j["filename"] = filename;
  j["format"] = std::string(b.format_name());
  struct stat st{};
  if (::stat(filename.c_str(), &st) == 0) {
    j["actual-size"] = static_cast<uint64_t>(st.st_blocks) * 512;
  }
  if (auto* q = dynamic_cast<block::Qcow2Image*>(&b)) {
    const auto& h = q->header();
    j["cluster-size"] = h.cluster_size();
    if (!q->snapshots().empty()) {
      ordered_json snaps = ordered_json::array();
      for (const auto& s : q->snapshots()) {
        ordered_json e;
        if (s.has_icount && s.icount != UINT64_MAX) {
          e["icount"] = s.icount;
        }
        e["vm-state-size"] = s.vm_state_size_large != 0 ? s.vm_state_size_large
                                                       : s.vm_state_size;
        e["name"] = s.name;
        e["date-sec"] = s.date_sec;
        e["date-nsec"] = s.date_nsec;
        e["vm-clock-nsec"] = s.vm_clock_nsec % 1000000000;
        e["id"] = s.id;
        e["vm-clock-sec"] = s.vm_clock_nsec / 1000000000;
        snaps.push_back(e);
      }
      j["snapshots"] = snaps;
    }
    if (!h.backing_file.empty()) {
      j["backing-filename"] = h.backing_file;
      j["full-backing-filename"] = q->backing_full_path();
      if (!h.backing_format.empty()) {
        j["backing-filename-format"] = h.backing_format;
      }
    }
    ordered_json data;
    data["compat"] = h.version >= 3 ? "1.1" : "0.10";
    if (h.version >= 3) {
      data["compression-type"] = h.compression_type == 1 ? "zstd" : "zlib";
      data["lazy-refcounts"] = (h.compatible_features & 1) != 0;
    }
    data["refcount-bits"] = h.refcount_bits();
    if (h.version >= 3) {
      data["corrupt"] = (h.incompatible_features & 2) != 0;
      data["extended-l2"] = h.extended_l2();
    }
    j["format-specific"] = ordered_json{{"type", "qcow2"}, {"data", data}};
    j["dirty-flag"] = q->dirty_bit();
  } else {
    j["dirty-flag"] = false;
  }
  return j;
}

void print_info_human(const ordered_json& j) {
  std::printf("image: %s\n", j["filename"].get<std::string>().c_str());
  std::printf("file format: %s\n", j["format"].get<std::string>().c_str());
  const uint64_t vs = j["virtual-size"].get<uint64_t>();
  std::printf("virtual size: %s (%llu bytes)\n", human_size(vs).c_str(),
              static_cast<unsigned long long>(vs));
  if (j.contains("actual-size")) {
    std::printf("disk size: %s\n", human_size(j["actual-size"].get<uint64_t>()).c_str());
  }
  if (j.contains("cluster-size")) {
    std::printf("cluster_size: %llu\n",
                static_cast<unsigned long long>(j["cluster-size"].get<uint64_t>()));
  }
  if (j.contains("backing-filename")) {
    std::printf("backing file: %s", j["backing-filename"].get<std::string>().c_str());
    if (j["backing-filename"] != j["full-backing-filename"]) {
      std::printf(" (actual path: %s)", j["full-backing-filename"].get<std::string>().c_str());
    }
    std::printf("\n");
    if (j.contains("backing-filename-format")) {
      std::printf("backing file format: %s\n",
                  j["backing-filename-format"].get<std::string>().c_str());
    }
  }
  if (j.contains("snapshots")) {
    std::printf("Snapshot list:\nID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n");
    for (const auto& s : j["snapshots"]) {
      const auto t = static_cast<time_t>(s["date-sec"].get<uint64_t>());
      char date[32];
      std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
      std::printf("%-9s %-17s %7s %s %s\n", s["id"].get<std::string>().c_str(),
                  s["name"].get<std::string>().c_str(),
                  human_size(s["vm-state-size"].get<uint64_t>()).c_str(), date, "00:00:00.000");
    }
  }
  if (j.contains("format-specific")) {
    const auto& d = j["format-specific"]["data"];
    std::printf("Format specific information:\n");
    std::printf("    compat: %s\n", d["compat"].get<std::string>().c_str());
    if (d.contains("compression-type")) {
      std::printf("    compression type: %s\n", d["compression-type"].get<std::string>().c_str());
      std::printf("    lazy refcounts: %s\n", d["lazy-refcounts"].get<bool>() ? "true" : "false");
    }
    std::printf("    refcount bits: %d\n", d["refcount-bits"].get<int>());
    if (d.contains("corrupt")) {
      std::printf("    corrupt: %s\n", d["corrupt"].get<bool>() ? "true" : "false");
      std::printf("    extended l2: %s\n", d["extended-l2"].get<bool>() ? "true" : "false");
    }
  }
}

int info_main(int argc, char** argv) {
  CLI::App app("Describe a disk image: size, format, backing chain, snapshots.", "img info");
  std::string format, output = "human", file;
  bool chain = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("--output", output, "human or json")->check(CLI::IsMember({"human", "json"}));
  app.add_flag("--backing-chain", chain, "describe every image of the backing chain");
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto img = open_image(file, format, true);
  if (!img) {
    return fail("info", img.error());
  }
  std::vector<ordered_json> layers;
  std::string name = file;
  for (block::BlockBackend* b = img->get(); b != nullptr; b = chain ? b->backing() : nullptr) {
    ordered_json j = info_json(*b, name);
    layers.push_back(j);
    if (j.contains("full-backing-filename")) {
      name = j["full-backing-filename"].get<std::string>();
    }
    j["backing-chain-depth"] = 0;
  }
  if (output == "json") {
    if (chain) {
      std::printf("%s\n", ordered_json(layers).dump(4).c_str());
    } else {
      std::printf("%s\n", layers.front().dump(4).c_str());
    }
    return 0;
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i > 0) {
      std::printf("\n");
    }
    print_info_human(layers[i]);
  }
  return 0;
}

int check_main(int argc, char** argv) {
  CLI::App app("Check a qcow2 image for consistency; with -r, repair it. Exit status: 0 "
               "clean, 2 corruptions, 3 leaked clusters only, 1 the check failed, 63 the "
               "format has no checks.",
               "img check");
  std::string format, output = "human", repair, file;
  bool quiet = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("--output", output, "human or json")->check(CLI::IsMember({"human", "json"}));
  app.add_option("-r", repair, "repair: leaks or all")->check(CLI::IsMember({"leaks", "all"}));
  app.add_flag("-q", quiet, "quiet");
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  block::OpenOptions o;
  auto fmt = block::parse_image_format(format);
  if (!fmt) {
    return fail("check", fmt.error());
  }
  o.format = *fmt;
  o.read_only = repair.empty();
  o.allow_corrupt = !repair.empty();
  o.io = block::EngineKind::kThreadPool;
  // Never repair on open: check reports what it found, then fixes it if asked.
  auto img = block::open_block_backend(file, o);
  if (!img) {
    return fail("check", img.error());
  }
  auto* q = dynamic_cast<block::Qcow2Image*>(img->get());
  if (q == nullptr) {
    std::fprintf(stderr, "kumo img check: '%s': format '%s' does not support checks\n",
                 file.c_str(), std::string((*img)->format_name()).c_str());
    return 63;
  }
  const block::RepairMode mode = repair == "all"     ? block::RepairMode::kAll
                                 : repair == "leaks" ? block::RepairMode::kLeaks
                                                     : block::RepairMode::kNone;
  auto report = q->check(mode);
  if (!report) {
    return fail("check", report.error());
  }
  const block::CheckReport& r = *report;
  if (output == "json") {
    ordered_json j;
    j["image-end-offset"] = r.image_end_offset;
    j["total-clusters"] = r.total_clusters;
    j["check-errors"] = r.check_errors;
    if (r.leaks > 0) {
      j["leaks"] = r.leaks;
    }
    if (r.corruptions > 0) {
      j["corruptions"] = r.corruptions;
    }
    if (r.leaks_fixed > 0) {
      j["leaks-fixed"] = r.leaks_fixed;
    }
    if (r.corruptions_fixed > 0) {
      j["corruptions-fixed"] = r.corruptions_fixed;
    }
    j["allocated-clusters"] = r.allocated_clusters;
    j["filename"] = file;
    j["format"] = "qcow2";
    j["fragmented-clusters"] = r.fragmented_clusters;
    j["compressed-clusters"] = r.compressed_clusters;
    std::printf("%s\n", j.dump(4).c_str());
  } else if (!quiet) {
    for (const std::string& m : r.messages) {
      std::fprintf(stderr, "%s\n", m.c_str());
    }
    if (r.leaks_fixed > 0 || r.corruptions_fixed > 0) {
      std::printf("The following inconsistencies were found and repaired:\n\n"
                  "    %llu leaked clusters\n    %llu corruptions\n\n",
                  static_cast<unsigned long long>(r.leaks_fixed),
                  static_cast<unsigned long long>(r.corruptions_fixed));
    }
    if (r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0) {
      std::printf("No errors were found on the image.\n");
    }
    if (r.corruptions > 0) {
      std::printf("\n%llu errors were found on the image.\nData may be corrupted, or further "
                  "writes to the image may corrupt it.\n",
                  static_cast<unsigned long long>(r.corruptions));
    }
    if (r.leaks > 0) {
      std::printf("\n%llu leaked clusters were found on the image.\nThis means waste of disk "
                  "space, but no harm to data.\n",
                  static_cast<unsigned long long>(r.leaks));
    }
    if (r.total_clusters > 0) {
      const double total = static_cast<double>(r.total_clusters);
      std::printf("%llu/%llu = %.2f%% allocated, %.2f%% fragmented, %.2f%% compressed clusters\n",
                  static_cast<unsigned long long>(r.allocated_clusters),
                  static_cast<unsigned long long>(r.total_clusters),
                  100.0 * static_cast<double>(r.allocated_clusters) / total,
                  100.0 * static_cast<double>(r.fragmented_clusters) / total,
                  100.0 * static_cast<double>(r.compressed_clusters) / total);
    }
    std::printf("Image end offset: %llu\n", static_cast<unsigned long long>(r.image_end_offset));
  }
  if (auto st = (*img)->close(); !st) {
    return fail("check", st.error());
  }
  if (r.check_errors > 0) {
    return 1;
  }
  if (r.corruptions > 0) {
    return 2;
  }
  return r.leaks > 0 ? 3 : 0;
}

int snapshot_main(int argc, char** argv) {
  CLI::App app("List, create, apply or delete internal snapshots of a qcow2 image.",
               "img snapshot");
  std::string create, apply, del, file, format;
  bool list = false, quiet = false;
  auto* g = app.add_option_group("action", "exactly one of -l, -c, -a, -d");
  g->add_flag("-l", list, "list snapshots");
  g->add_option("-c", create, "create snapshot NAME");
  g->add_option("-a", apply, "revert the disk to snapshot NAME");
  g->add_option("-d", del, "delete snapshot NAME");
  g->require_option(1);
  app.add_option("-f", format, "image format (default: probe)");
  app.add_flag("-q", quiet, "quiet");
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto img = open_image(file, format, list);
  if (!img) {
    return fail("snapshot", img.error());
  }
  auto* q = dynamic_cast<block::Qcow2Image*>(img->get());
  if (q == nullptr) {
    return fail("snapshot", Error{ErrorKind::kInvalidInput, 0,
                                  fmt::format("'{}': only qcow2 images have snapshots", file)});
  }
  Status st;
  if (list) {
    std::printf("Snapshot list:\nID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT\n");
    for (const auto& s : q->snapshots()) {
      const auto t = static_cast<time_t>(s.date_sec);
      char date[32];
      std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
      std::printf("%-9s %-17s %7s %s %s\n", s.id.c_str(), s.name.c_str(), "0 B", date,
                  "00:00:00.000");
    }
    return 0;
  }
  if (!create.empty()) {
    st = q->snapshot_create(create);
  } else if (!apply.empty()) {
    st = q->snapshot_apply(apply);
  } else {
    st = q->snapshot_delete(del);
  }
  if (st) {
    st = q->close();
  }
  return fail_status("snapshot", st);
}

int resize_main(int argc, char** argv) {
  CLI::App app("Change the virtual size of an image: SIZE, +SIZE or -SIZE.", "img resize");
  std::string format, file, size_text;
  bool shrink = false, quiet = false;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_flag("--shrink", shrink, "allow shrinking (data past the new end is lost)");
  app.add_flag("-q", quiet, "quiet");
  app.add_option("filename", file, "image")->required();
  app.add_option("size", size_text, "new size")->required();
  app.allow_extras(false);
  // "-1G" would look like an option: CLI11 takes it as positional after "--" only.
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto img = open_image(file, format, false, true);
  if (!img) {
    return fail("resize", img.error());
  }
  const uint64_t cur = (*img)->size_bytes();
  uint64_t target = 0;
  const char sign = size_text.empty() ? 0 : size_text[0];
  auto amount = parse_size_bytes(sign == '+' || sign == '-' ? size_text.substr(1) : size_text);
  if (!amount) {
    return fail("resize", amount.error());
  }
  if (sign == '+') {
    target = cur + *amount;
  } else if (sign == '-') {
    if (*amount > cur) {
      return fail("resize", Error{ErrorKind::kInvalidInput, 0, "new size would be negative"});
    }
    target = cur - *amount;
  } else {
    target = *amount;
  }
  Status st;
  if (auto* q = dynamic_cast<block::Qcow2Image*>(img->get())) {
    st = q->resize(target, shrink);
  } else if (auto* r = dynamic_cast<block::RawFile*>(img->get())) {
    if (target < cur && !shrink) {
      st = invalid_input("'{}': shrinking needs --shrink", file);
    } else {
      st = r->resize(target);
    }
  }
  if (st) {
    st = (*img)->close();
  }
  if (st && !quiet) {
    std::printf("Image resized.\n");
  }
  return fail_status("resize", st);
}

struct MapEntry {
  uint64_t start = 0, length = 0;
  int depth = 0;
  bool present = false, zero = false, data = false;
  std::optional<uint64_t> offset;
  std::string filename;
};

int map_main(int argc, char** argv) {
  CLI::App app("Show which image of the backing chain holds each range of the disk.", "img map");
  std::string format, output = "human", file;
  app.add_option("-f", format, "image format (default: probe)");
  app.add_option("--output", output, "human or json")->check(CLI::IsMember({"human", "json"}));
  app.add_option("filename", file, "image")->required();
  if (auto rc = parse(app, argc, argv)) {
    return *rc;
  }
  auto img = open_image(file, format, true);
  if (!img) {
    return fail("map", img.error());
  }
  const std::vector<std::string> names = chain_paths(img->get(), file);
  std::vector<MapEntry> entries;
  const uint64_t size = (*img)->size_bytes();
  uint64_t off = 0;
  while (off < size) {
    auto c = chain_status(img->get(), nullptr, off, std::min<uint64_t>(size - off, 1ull << 30));
    if (!c) {
      return fail("map", c.error());
    }
    const uint64_t len = c->len_bytes;
    const block::BlockStatus& st = c->status;
    MapEntry e{off, len, c->depth, false, true, false, std::nullopt, ""};
    if (st.allocated && !c->past_end) {
      e = MapEntry{off, len, c->depth, true, st.zero, st.data, st.host_offset,
                   names[static_cast<size_t>(c->depth)]};
    }
    if (!entries.empty()) {
      MapEntry& p = entries.back();
      const bool contiguous = p.offset.has_value() == e.offset.has_value() &&
                              (!p.offset || *p.offset + p.length == *e.offset);
      if (p.depth == e.depth && p.present == e.present && p.zero == e.zero &&
          p.data == e.data && contiguous && p.start + p.length == e.start) {
        p.length += e.length;
        off += len;
        continue;
      }
    }
    entries.push_back(e);
    off += len;
  }
  if (output == "json") {
    std::printf("[");
    for (size_t i = 0; i < entries.size(); ++i) {
      const MapEntry& e = entries[i];
      ordered_json j;
      j["start"] = e.start;
      j["length"] = e.length;
      j["depth"] = e.depth;
      j["present"] = e.present;
      j["zero"] = e.zero;
      j["data"] = e.data;
      if (e.offset) {
        j["offset"] = *e.offset;
      }
      std::printf("%s%s", i == 0 ? "" : ",\n", j.dump().c_str());
    }
    std::printf("]\n");
    return 0;
  }
  std::printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
  for (const MapEntry& e : entries) {
    if (e.data && e.offset) {
      std::printf("%#-16llx%#-16llx%#-16llx%s\n", static_cast<unsigned long long>(e.start),
                  static_cast<unsigned long long>(e.length),
                  static_cast<unsigned long long>(*e.offset), e.filename.c_str());
    }
  }
  return 0;
}

struct SubVerb {
  const char* name;
  int (*main)(int, char**);
  const char* summary;
};

constexpr SubVerb kSubVerbs[] = {
    {"create", create_main, "create a new image (raw or qcow2, optionally over a backing file)"},
    {"info", info_main, "describe an image and its backing chain"},
    {"check", check_main, "check (and repair) a qcow2 image's metadata"},
    {"snapshot", snapshot_main, "list, create, apply or delete internal snapshots"},
    {"convert", convert_main,
     "copy an image into a new one (raw or qcow2; -c compresses, -B makes an overlay)"},
    {"commit", commit_main, "write an overlay's data into its backing file (or -b BASE)"},
    {"rebase", rebase_main, "change an image's backing file"},
    {"resize", resize_main, "change an image's virtual size"},
    {"map", map_main, "show where each range of the disk comes from"},
    {"compare", compare_main, "compare the contents of two images"},
    {"bench", bench_main, "block-layer benchmark (like qemu-img bench)"},
};

void usage(FILE* out) {
  std::fprintf(out, "usage: kumo img <command> [options]\n\ncommands:\n");
  for (const SubVerb& v : kSubVerbs) {
    std::fprintf(out, "  %-9s %s\n", v.name, v.summary);
  }
  std::fprintf(out, "\n'kumo img <command> --help' describes each command.\n");
}

}  // namespace
}  // namespace img

int img_main(int argc, char** argv) {
  if (argc < 2) {
    img::usage(stderr);
    return 2;
  }
  const std::string_view sub = argv[1];
  if (sub == "--help" || sub == "-h" || sub == "help") {
    img::usage(stdout);
    return 0;
  }
  for (const img::SubVerb& v : img::kSubVerbs) {
    if (sub == v.name) {
      return v.main(argc - 1, argv + 1);
    }
  }
  std::fprintf(stderr, "kumo img: unknown command '%s' (see 'kumo img --help')\n", argv[1]);
  return 2;
}

}  // namespace kumo::cli
