#pragma once
// Qcow2Image: the qcow2 BlockBackend, versions 2 and 3 (QEMU docs/interop/qcow2.rst).
//
// What it implements: L1/L2 mapping with zero clusters and the COPIED bit; refcounts of any
// width with cluster allocation and table growth; copy-on-write from backing files (raw or
// qcow2, chains of any depth up to kMaxChainDepth, loops refused); compressed clusters (read
// deflate/zstd; write through write_compressed()); internal snapshots; lazy refcounts with
// dirty-bit repair on open; extended L2 entries (32 subclusters per cluster: allocation,
// copy-on-write, zeroing and discard per subcluster); the corrupt bit (the image opens
// read-only only); unknown incompatible features refused; autoclear bits cleared on the first
// read-write open.
//
// Crash safety (writeback metadata caches, QEMU's ordering): new data and refcount blocks
// reach the disk, then fdatasync, then the L2 tables pointing at them, then fdatasync, then
// L1 entries. Clusters freed by an overwrite, discard or COW are released only after the L2
// update that unlinks them is durable. A crash can leak clusters, never corrupt.
//
// Threading: like every BlockBackend, used by one thread at a time. The asynchronous path
// (qcow2_async.cc) sends reads of data clusters, and writes of data clusters owned by the
// active L2 table alone (COPIED), straight to the I/O engine (io_uring); a request inside one
// cluster is one L2 lookup and one engine request on the caller's iovecs. Anything that
// touches metadata (allocation, COW, discard, flush), backing files or compressed clusters
// first drains in-flight requests and then runs synchronously on the caller's thread.
//
// All on-disk data is untrusted: offsets are checked against the file, and a malformed table
// yields a kInvalidInput error naming the file, never a crash.

#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "block/aligned_buffer.h"
#include "block/block_backend.h"
#include "block/host_file.h"
#include "block/io_engine.h"
#include "block/open_backend.h"
#include "block/qcow2/header.h"
#include "block/qcow2/metadata_cache.h"
#include "block/qcow2/refcount.h"
#include "block/qcow2/snapshot.h"

namespace kumo::block {

inline constexpr int kMaxChainDepth = 64;

// Images already open below the current one, for loop and depth detection.
struct ChainState {
  std::vector<std::string> real_paths;
};

struct Qcow2CreateOptions {
  uint64_t size_bytes = 0;
  uint32_t cluster_size = 65536;
  uint32_t version = 3;  // 2 = compat 0.10, 3 = compat 1.1
  uint32_t refcount_bits = 16;
  bool lazy_refcounts = false;
  std::string backing_file{};  // stored as given (relative names resolve against the image)
  std::string backing_format{};  // "raw", "qcow2" or empty
  uint8_t compression_type = 0;  // 0 deflate, 1 zstd
  bool extended_l2 = false;  // 128-bit L2 entries with subclusters (needs version 3, >= 16 KiB)
};

// Creates a new, empty image (overwrites `path`).
[[nodiscard]] Status create_qcow2(const std::string& path, const Qcow2CreateOptions& options);

struct CheckReport {
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  uint64_t check_errors = 0;
  uint64_t corruptions_fixed = 0;
  uint64_t leaks_fixed = 0;
  uint64_t image_end_offset = 0;
  uint64_t total_clusters = 0;
  uint64_t allocated_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t compressed_clusters = 0;
  std::vector<std::string> messages;  // one line per problem, qemu-img's wording
};
enum class RepairMode { kNone, kLeaks, kAll };

class Qcow2Image final : public BlockBackend {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Qcow2Image>> open(const std::string& path,
                                                                const OpenOptions& options,
                                                                ChainState* chain = nullptr);
  ~Qcow2Image() override;
  Qcow2Image(const Qcow2Image&) = delete;
  Qcow2Image& operator=(const Qcow2Image&) = delete;

  [[nodiscard]] uint64_t size_bytes() const override { return header_.size_bytes; }
  [[nodiscard]] bool read_only() const override { return read_only_; }
  [[nodiscard]] Status read(uint64_t offset_bytes, std::span<uint8_t> out) override;
  [[nodiscard]] Status write(uint64_t offset_bytes, std::span<const uint8_t> in) override;
  [[nodiscard]] Status flush() override;
  [[nodiscard]] Status discard(uint64_t offset_bytes, uint64_t len_bytes) override;
  [[nodiscard]] Status write_zeroes(uint64_t offset_bytes, uint64_t len_bytes) override;
  [[nodiscard]] Status submit(const IoRequest& request) override;
  [[nodiscard]] int completion_fd() const override;
  [[nodiscard]] size_t reap(std::span<IoCompletion> out) override;
  void plug() override;
  void unplug() override;
  [[nodiscard]] std::string_view format_name() const override { return "qcow2"; }
  [[nodiscard]] Result<BlockStatus> block_status(uint64_t offset_bytes,
                                                 uint64_t max_len_bytes) override;
  [[nodiscard]] BlockBackend* backing() override { return backing_.get(); }
  [[nodiscard]] Status close() override;

  [[nodiscard]] const qcow2::Header& header() const { return header_; }
  [[nodiscard]] const std::string& path() const { return file_.path(); }
  [[nodiscard]] const std::string& backing_full_path() const { return backing_full_path_; }
  [[nodiscard]] const std::vector<qcow2::Snapshot>& snapshots() const { return snapshots_; }
  [[nodiscard]] uint64_t cluster_size() const { return header_.cluster_size(); }
  // Tests only: the image file, for fault injection (HostFile::set_write_budget).
  [[nodiscard]] HostFile& host_file_for_testing() { return file_; }
  [[nodiscard]] bool dirty_bit() const {
    return (header_.incompatible_features & 1) != 0;
  }

  // Writes one whole cluster compressed (kumo img convert -c). `offset_bytes` is cluster
  // aligned; `data` is one cluster (shorter only for the last cluster of the disk). The
  // guest cluster must be unallocated. Falls back to a plain write when it does not compress.
  [[nodiscard]] Status write_compressed(uint64_t offset_bytes, std::span<const uint8_t> data);
  // Changes the virtual size; shrinking needs allow_shrink and drops data past the new end.
  [[nodiscard]] Status resize(uint64_t new_size_bytes, bool allow_shrink);
  // Rewrites the backing file name/format in the header (kumo img rebase -u).
  [[nodiscard]] Status set_backing(const std::string& file, const std::string& format);
  // Unmaps every cluster of the active layer so reads fall through to the backing file.
  [[nodiscard]] Status make_empty();

  // Internal snapshots (qcow2.rst "Snapshots"); `name` matches a name or an ID.
  [[nodiscard]] Status snapshot_create(const std::string& name);
  [[nodiscard]] Status snapshot_apply(const std::string& name);
  [[nodiscard]] Status snapshot_delete(const std::string& name);

  // Consistency check in the manner of `qemu-img check`; with repair, fixes what it may
  // (kLeaks: refcounts above the reference count; kAll: rebuilds every refcount and COPIED
  // flag, and clears the dirty and corrupt bits).
  [[nodiscard]] Result<CheckReport> check(RepairMode repair);

 private:
  enum class Kind { kUnallocated, kZero, kNormal, kCompressed };
  // One L2 entry (qcow2.rst "Cluster mapping", "Extended L2 Entries").
  struct L2Entry {
    uint64_t word = 0;
    uint64_t bitmap = 0;  // extended L2 only: bits 0-31 allocated, 32-63 reads as zeros
    bool operator==(const L2Entry&) const = default;
  };
  struct Extent {
    Kind kind = Kind::kUnallocated;
    uint64_t len = 0;
    uint64_t host = 0;     // kNormal: host byte of the extent start; kCompressed: L2 word
    bool writable = false;  // kNormal with COPIED set: writes may go in place
  };
  // One asynchronous request in flight; its index in parents_ is the engine cookie.
  struct Parent {
    uint64_t user_cookie = 0;
    uint32_t remaining = 0;   // engine requests not yet completed, +1 while being submitted
    int64_t error = 0;        // the first failure
    int64_t done_bytes = 0;   // bytes transferred so far (pieces read as zeros included)
    std::vector<iovec> iov;   // a split request's pieces (a COW: head, caller's iovecs, tail)
    // A copy-on-write in flight (submit_cow): the new cluster whose L2 entry is set once its
    // write has landed.
    uint64_t cow_guest = kNoCow;  // guest offset of the request
    uint64_t cow_host = 0;        // the newly allocated cluster
    AlignedBuffer cow_bytes;      // the old bytes around the new ones: head, then tail
  };
  // A Parent keeps its copy-on-write buffer for the next one up to this size.
  static constexpr size_t kKeptCowBytes = size_t{1} << 20;
  static constexpr uint64_t kNoCow = ~uint64_t{0};
  enum class Split { kSubmitted, kQueueFull, kSlow };

  Qcow2Image(HostFile file, qcow2::Header header, OpenOptions options);
  [[nodiscard]] Status load(ChainState* chain);
  [[nodiscard]] Status open_backing_file(ChainState* chain);
  [[nodiscard]] Status load_snapshots();

  // Mapping.
  [[nodiscard]] Result<Extent> map_one(uint64_t offset, uint64_t max_len);
  [[nodiscard]] Result<Extent> map_extent(uint64_t offset, uint64_t max_len);
  [[nodiscard]] Status read_extent(const Extent& e, uint64_t offset, std::span<uint8_t> out);
  [[nodiscard]] Status read_backing(uint64_t offset, std::span<uint8_t> out);
  [[nodiscard]] Status read_compressed(uint64_t l2_word, uint64_t in_cluster,
                                       std::span<uint8_t> out);
  [[nodiscard]] Status check_host_range(uint64_t host, uint64_t len, const char* what,
                                        uint64_t guest);
  // Extended L2: what subcluster `sc` of a standard cluster holds, and the check that an
  // allocated one has a data cluster.
  [[nodiscard]] static Kind subcluster_kind(uint64_t bitmap, uint64_t sc);
  [[nodiscard]] Status check_subcluster_host(uint64_t host, uint64_t guest);

  // Writing.
  [[nodiscard]] Status ensure_writable() const;
  [[nodiscard]] Status mark_dirty_for_lazy_refcounts();
  [[nodiscard]] Result<uint64_t> l2_for_write(uint64_t l1_index);
  [[nodiscard]] Status write_in_cluster(uint64_t offset, std::span<const uint8_t> in);
  // Extended L2: a write inside one cluster that allocates subclusters (or copies the
  // cluster); only the subclusters it touches, and in a new cluster those the old one had,
  // reach the disk.
  [[nodiscard]] Status write_subclusters(uint64_t offset, std::span<const uint8_t> in);
  // Extended L2: the subclusters in `mask` read as zeros (zero bits with a backing file,
  // unallocated without); the host cluster is released when no subcluster uses it any more.
  [[nodiscard]] Status zero_subclusters(uint64_t guest_cluster, uint32_t mask);
  // Bytes [in_cluster, +out.size()) of a guest cluster as `old` maps them.
  [[nodiscard]] Status read_old_cluster(uint64_t guest_cluster, const L2Entry& old,
                                        uint64_t in_cluster, std::span<uint8_t> out);
  // Replaces an L2 entry; releases the old host cluster when the new entry does not keep it.
  [[nodiscard]] Status set_l2_entry(uint64_t guest_cluster, const L2Entry& entry,
                                    bool allocate_l2);
  void store_l2_entry(uint8_t* table, uint64_t index, const L2Entry& entry) const;
  void free_later(uint64_t word);
  [[nodiscard]] Status barrier();
  [[nodiscard]] Status flush_metadata();
  [[nodiscard]] Status datasync();
  [[nodiscard]] Status write_header_field(uint64_t offset, std::span<const uint8_t> bytes);
  [[nodiscard]] Status write_whole_header();
  [[nodiscard]] Status write_l1_table_to(uint64_t offset, const std::vector<uint64_t>& l1);
  [[nodiscard]] Result<L2Entry> l2_entry(uint64_t guest_cluster);

  // Snapshots and check helpers.
  [[nodiscard]] Result<std::vector<uint64_t>> read_l1(uint64_t offset, uint32_t size);
  [[nodiscard]] Status update_tree_refcounts(const std::vector<uint64_t>& l1, int64_t delta);
  [[nodiscard]] Status fix_copied_flags();
  [[nodiscard]] Status write_snapshot_table(std::vector<qcow2::Snapshot> snaps);
  [[nodiscard]] int find_snapshot(const std::string& name) const;
  // Writes a brand-new refcount structure after the last used cluster holding `expected`
  // (references excluding the old refcount structure) and switches the header to it.
  [[nodiscard]] Status rebuild_refcounts(const std::vector<uint64_t>& expected);
  // References per host cluster from the header, L1/L2 (active and snapshots) and the
  // snapshot table; refcount structures are counted separately when include_refcounts.
  [[nodiscard]] Status count_references(std::vector<uint64_t>* refs, bool include_refcounts,
                                        CheckReport* report);

  // Asynchronous path (qcow2_async.cc).
  [[nodiscard]] Status ensure_engine();
  // A Parent slot with one part outstanding (the submitter's, or the one completion posted).
  uint64_t new_parent(uint64_t user_cookie);
  // Accounts one finished part; when it was the last, fills *out and frees the slot.
  [[nodiscard]] bool complete_parent_part(uint64_t index, int64_t result, IoCompletion* out);
  // Drops the submitter's part of a split request; a request already done goes to ready_.
  void finish_submitter_part(uint64_t index);
  // Host offset of the data cluster holding guest `offset` when a request may use it in
  // place (a plain data cluster; for writes also COPIED, i.e. not shared), else 0.
  [[nodiscard]] Result<uint64_t> in_place_cluster(uint64_t offset, bool write);
  // Splits a request over several clusters into engine requests and zero-filled pieces.
  [[nodiscard]] Split submit_pieces(const IoRequest& r, uint64_t len, uint64_t index);
  // A write into part of an unallocated cluster whose other bytes a backing file holds as
  // data: allocates the cluster and hands the three parts (the new bytes, the backing bytes
  // before and after them) to the engine, so several such writes run in parallel; the L2
  // entry is set when all have landed (finish_cow). Other requests for the cluster meanwhile
  // see it unallocated and take the slow path, which settles the engine first.
  [[nodiscard]] Split submit_cow(const IoRequest& r, uint64_t len, uint64_t index);
  // Points the L2 entry at the new cluster, or, if a part failed, redoes the whole cluster
  // through memory. Returns the request's result.
  int64_t finish_cow(Parent& p);
  // Waits for every engine request and processes their completions (COW L2 entries set),
  // leaving the user completions in ready_.
  void settle_engine();
  [[nodiscard]] Status submit_slow(const IoRequest& r, uint64_t index);
  int64_t execute_slow(const IoRequest& r);

  HostFile file_;
  qcow2::Header header_;
  OpenOptions options_;
  bool read_only_ = true;
  bool closed_ = false;
  bool lazy_ = false;
  bool dirty_set_by_us_ = false;
  bool unsynced_ = false;
  uint64_t host_end_ = 0;  // bytes; offsets at or past it are outside the file
  uint32_t l2_bits_ = 0;   // log2 of the entries per L2 table
  std::vector<uint64_t> l1_;
  std::vector<uint64_t> l1_dirty_;  // indices of L1 entries changed since the last flush
  std::unique_ptr<qcow2::MetadataCache> l2_cache_;
  std::unique_ptr<qcow2::Refcounts> refcounts_;
  std::vector<qcow2::Snapshot> snapshots_;
  uint64_t snapshot_table_bytes_ = 0;
  std::vector<uint64_t> pending_free_;  // L2 words whose clusters are released after a flush
  std::unique_ptr<BlockBackend> backing_;
  std::string backing_full_path_;
  uint64_t compressed_cursor_ = 0;  // next free byte in the last compressed cluster run
  uint64_t compressed_end_ = 0;
  uint64_t decompressed_word_ = 0;  // L2 word whose cluster is in decompressed_
  std::vector<uint8_t> decompressed_;

  struct Piece {
    uint64_t host;
    uint64_t len;
    bool zero;
  };
  std::vector<Piece> scratch_pieces_;
  std::vector<std::pair<size_t, size_t>> scratch_ranges_;
  std::unique_ptr<IoEngine> engine_;
  std::vector<Parent> parents_;
  std::vector<uint64_t> free_parents_;
  std::unordered_set<uint64_t> cow_clusters_;  // guest clusters with a COW in flight
  std::deque<IoCompletion> ready_;
};

}  // namespace kumo::block
