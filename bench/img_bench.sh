#!/usr/bin/env bash
# Storage benchmark: `kumo img bench` and `qemu-img bench` side by side on the same images in
# the same run (same request size, depth, count, offsets, cache=writeback), median of REPS
# alternating runs each; prints ratios and rewrites the storage section of docs/benchmarks.md.
#
# Usage: bench/img_bench.sh            (after scripts/setup.sh; env: SIZE=1G REPS=5 KUMO=build/kumo)
#
# qemu-img bench only has a sequential pattern (offset += step), so the side-by-side cases use
# it; "rand" rows are kumo alone (qcow2 vs raw, runs alternating), where the target is a ratio
# to raw.
#
# Host file state: the ratios are to measure kumo, so both images get the same history: they
# are copied into fresh files, evicted from the page cache and read back the same way
# (random-access advice, so in 4 KiB folios), and each run re-reads its image first (pages the
# kernel dropped meanwhile). Folio sizes matter: on kernels whose ext4 caches files in large
# folios, a 4 KiB buffered write costs time in proportion to the folio it lands in
# (ext4_block_write_begin walks its buffer heads). Even so, on the development host the
# kernel's cost of reading one file's cached pages differed from that of another file holding
# the same bytes by up to 50%, reproducibly (two copies of one 1 GiB raw image: 0.30 s and
# 0.46 s of CPU for the same 2000 1 MiB reads). It follows the order the files were read back
# in (on this nested VM, memory the kernel hands out later is faster to copy from: 1 MiB reads
# of the file read second ran 1.3-1.5x faster, whichever it was), so the two images are read
# back interleaved, 1 MiB of each in turn. Every kumo-only case also runs on the qcow2 file
# itself as raw, on its data area: the qcow2 image is created
# with preallocation=metadata, so all its metadata comes first and guest offset X lies at host
# offset DATA+X (one data extent; SIZE is at most what one L2 table maps, 512 MiB with 64 KiB
# clusters). `kumo img bench -f raw -o DATA` then reads and writes the very pages the qcow2 runs
# touch, in the same order, and leaves the metadata alone: qcow2 / "same file as raw" is kumo's
# own cost.
set -euo pipefail
cd "$(dirname "$0")/.."
KUMO=${KUMO:-build/kumo}
SIZE=${SIZE:-512M}
REPS=${REPS:-5}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/kumo-img-bench.XXXXXX")
trap 'rm -rf "$DIR"' EXIT
command -v qemu-img >/dev/null || { echo "img_bench: qemu-img missing (qemu-utils)"; exit 1; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
echo "img_bench: preparing $SIZE images in $DIR (load average $LOAD_START)"
qemu-img create -q -f qcow2 -o preallocation=metadata "$DIR/full.qcow2" "$SIZE"
qemu-io -f qcow2 -c "write -q -P 0x5a 0 $SIZE" "$DIR/full.qcow2"
qemu-img convert -O raw "$DIR/full.qcow2" "$DIR/full.raw"
# Same history for both images (see the top of this file): fresh copies, evicted, re-read
# 1 MiB of each in turn, so that both get page-cache memory from the same places.
same_history() {
  python3 - "$DIR/full.qcow2" "$DIR/full.raw" <<'PY'
import os, shutil, sys
fds = []
for path in sys.argv[1:]:
    shutil.copyfile(path, path + ".tmp")
    os.replace(path + ".tmp", path)
    fd = os.open(path, os.O_RDWR)
    os.fdatasync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    fds.append(fd)
for off in range(0, max(os.fstat(fd).st_size for fd in fds), 1 << 20):
    for fd in fds:
        os.pread(fd, 1 << 20, off)
for fd in fds:
    os.close(fd)
PY
}
same_history

# DATA: host offset of guest offset 0; the data must be one extent ending the file.
read -r DATA DATA_END < <(qemu-img map --output=json "$DIR/full.qcow2" | python3 -c '
import json, sys
m = json.load(sys.stdin)
print(m[0]["offset"], m[0]["offset"] + m[0]["length"]) if len(m) == 1 else print("- -")')
if [[ $DATA == - || $DATA_END != $(stat -c %s "$DIR/full.qcow2") ]]; then
  echo "img_bench: the qcow2 data is not one extent at the end of the file (SIZE too large?)"
  exit 1
fi

# secs TOOL ARGS... : prints the run time in seconds of one bench run.
secs() {
  local tool=$1; shift
  sync  # no write-back of earlier runs' dirty pages during this one
  cat "${@: -1}" >/dev/null  # the image, back in the page cache if pages were dropped
  if [[ $tool == qemu ]]; then
    qemu-img bench "$@" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p'
  else
    "$KUMO" img bench "$@" | sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p'
  fi
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# run_pair NAME COUNT SETUP_FN ARGS... : median seconds for qemu-img and kumo.
rows=()
run_pair() {
  local name=$1 count=$2 setup=$3; shift 3
  local q=() k=()
  for ((i = 0; i < REPS; i++)); do
    $setup; q+=("$(secs qemu -c "$count" "$@")")
    $setup; k+=("$(secs kumo -c "$count" "$@")")
  done
  local qs ks
  qs=$(printf '%s\n' "${q[@]}" | median)
  ks=$(printf '%s\n' "${k[@]}" | median)
  rows+=("$name|$count|$qs|$ks")
  printf '%-34s qemu-img %8.0f IOPS   kumo %8.0f IOPS   kumo/qemu-img %.2f\n' "$name" \
    "$(echo "$count / $qs" | bc -l)" "$(echo "$count / $ks" | bc -l)" "$(echo "$qs / $ks" | bc -l)"
}
# kumo_run ARGS... : one kumo img bench run; prints "WALL_SECONDS CPU_SECONDS" (CPU: every
# thread of kumo, user and system, during the timed loop).
kumo_run() {
  sync
  cat "${@: -1}" >/dev/null
  local out
  out=$("$KUMO" img bench "$@")
  echo "$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' <<<"$out")" \
    "$(sed -n 's/.* cpu_s=\([0-9.]*\).*/\1/p' <<<"$out")"
}
# raw_vs_qcow2 COUNT ARGS... : kumo on the raw and the qcow2 image, runs alternating; prints
# the medians "RAW_WALL RAW_CPU QCOW2_WALL QCOW2_CPU SAME_WALL SAME_CPU" in seconds. SAME is
# the qcow2 file's data area driven as raw (-f raw -o DATA): the very pages the qcow2 runs
# touch, so qcow2/SAME is kumo's own qcow2 cost.
raw_vs_qcow2() {
  local count=$1; shift
  local rw=() rc=() qw=() qc=() vw=() vc=() w c
  for ((i = 0; i < REPS; i++)); do
    read -r w c < <(kumo_run -c "$count" "$@" "$DIR/full.raw"); rw+=("$w"); rc+=("$c")
    read -r w c < <(kumo_run -c "$count" "$@" "$DIR/full.qcow2"); qw+=("$w"); qc+=("$c")
    read -r w c < <(kumo_run -c "$count" "$@" -f raw -o "$DATA" "$DIR/full.qcow2")
    vw+=("$w"); vc+=("$c")
  done
  local m=()
  for a in rw rc qw qc vw vc; do
    local -n arr=$a
    if ((${#arr[@]} > 0)); then m+=("$(printf '%s\n' "${arr[@]}" | median)"); else m+=(-); fi
  done
  echo "${m[*]}"
}
# ratio A B : A / B with two decimals, or "-" when either is "-".
ratio() {
  if [[ $1 == - || $2 == - ]]; then echo -; else printf '%.2f' "$(echo "$1 / $2" | bc -l)"; fi
}
none() { :; }
fresh_overlay() {
  rm -f "$DIR/ovl.qcow2"
  qemu-img create -q -f qcow2 -b full.qcow2 -F qcow2 "$DIR/ovl.qcow2"
}

N=${N:-100000}
run_pair "qcow2 4K seq read QD1" "$N" none -s 4K -d 1 "$DIR/full.qcow2"
run_pair "qcow2 4K seq read QD32" "$N" none -s 4K -d 32 "$DIR/full.qcow2"
run_pair "qcow2 4K seq write QD1" "$N" none -w -s 4K -d 1 "$DIR/full.qcow2"
run_pair "qcow2 4K seq write QD32" "$N" none -w -s 4K -d 32 "$DIR/full.qcow2"
run_pair "qcow2 1M seq read QD4" 2000 none -s 1M -d 4 "$DIR/full.qcow2"
run_pair "qcow2 1M seq write QD4" 2000 none -w -s 1M -d 4 "$DIR/full.qcow2"
run_pair "raw 4K seq read QD32" "$N" none -s 4K -d 32 "$DIR/full.raw"
CLUSTERS=$(( $(qemu-img info --output=json "$DIR/full.qcow2" | sed -n 's/.*"virtual-size": \([0-9]*\).*/\1/p') / 65536 ))
run_pair "COW: 4K first writes, fresh overlay, QD32" "$CLUSTERS" fresh_overlay \
  -w -s 4K -S 64K -d 32 "$DIR/ovl.qcow2"

# The writes above changed the qcow2 file's pages (and not the raw copy's): same history again.
same_history
echo "kumo qcow2 vs kumo raw (same workload, kumo alone):"
vs_raw=()
for spec in "4K rand read QD1|-s 4K -d 1 --pattern rand|$N" \
            "4K rand read QD32|-s 4K -d 32 --pattern rand|$N" \
            "4K rand write QD1|-w -s 4K -d 1 --pattern rand|$N" \
            "4K rand write QD32|-w -s 4K -d 32 --pattern rand|$N" \
            "1M seq read QD4|-s 1M -d 4|2000" \
            "1M seq write QD4|-w -s 1M -d 4|2000"; do
  IFS='|' read -r name args count <<<"$spec"
  # shellcheck disable=SC2086
  read -r rw rc qw qc vw vc < <(raw_vs_qcow2 "$count" $args)
  row="$name|$count|$(echo "$count / $rw" | bc -l)|$(echo "$count / $qw" | bc -l)"
  row+="|$(ratio "$rw" "$qw")|$(ratio "$rc" "$qc")|$(ratio "$vw" "$qw")|$(ratio "$vc" "$qc")"
  vs_raw+=("$row")
  IFS='|' read -r _ _ ri qi a b c d <<<"$row"
  printf '%-20s raw %7.0f IOPS  qcow2 %7.0f IOPS  qcow2/raw %s (CPU %s)  qcow2/same file as raw %s (CPU %s)\n' \
    "$name" "$ri" "$qi" "$a" "$b" "$c" "$d"
done

# docs/benchmarks.md: replace (or add) the storage section, keep the rest.
doc=docs/benchmarks.md
[[ -f $doc ]] || printf '# kumo benchmarks\n\nEach section is written by its script in bench/.\n' >"$doc"
section=$(mktemp)
{
  echo "<!-- storage:begin (written by bench/img_bench.sh; do not edit by hand) -->"
  echo "## Storage: kumo img bench vs qemu-img bench"
  echo
  echo "Run: \`bench/img_bench.sh\` on $(date -u +%Y-%m-%d), $(nproc) CPUs, kernel $(uname -r),"
  echo "$(qemu-img --version | head -1). $SIZE images (fully allocated qcow2, 64 KiB clusters, metadata first,"
  echo "and a raw copy) in the page cache (both copied into fresh files, evicted and re-read in"
  echo "4 KiB folios, 1 MiB of each in turn; see the script), cache=writeback, median of $REPS alternating runs; load"
  echo "average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
  echo "kumo uses io_uring and submits each burst of requests as one batch, as virtio-blk does;"
  echo "qemu-img bench its default thread pool (aio=threads)."
  echo
  echo "| workload (same args for both) | requests | qemu-img IOPS | kumo IOPS | kumo / qemu-img |"
  echo "|---|---|---|---|---|"
  for row in "${rows[@]}"; do
    IFS='|' read -r name count qs ks <<<"$row"
    printf '| %s | %s | %.0f | %.0f | %.2f |\n' "$name" "$count" "$(echo "$count / $qs" | bc -l)" \
      "$(echo "$count / $ks" | bc -l)" "$(echo "$qs / $ks" | bc -l)"
  done
  echo
  echo "qemu-img bench has no random pattern; kumo's own random and sequential runs, qcow2"
  echo "against the raw copy of the same data and against the qcow2 file's own data area driven"
  echo "as raw (\`-f raw -o DATA\`, the image has its metadata first): the same cached pages in the"
  echo "same order (on the development host the kernel served one file's cached pages up to 50%"
  echo "slower than another's holding the same bytes; see bench/img_bench.sh)."
  echo "Ratios of IOPS (wall clock) and, in brackets, of CPU time per request (every kumo thread,"
  echo "user + system), which host load disturbs less."
  echo
  echo "| workload (kumo img bench) | requests | raw IOPS | qcow2 IOPS | qcow2 / raw | qcow2 / same file as raw |"
  echo "|---|---|---|---|---|---|"
  for row in "${vs_raw[@]}"; do
    IFS='|' read -r name count ri qi a b c d <<<"$row"
    printf '| %s | %s | %.0f | %.0f | %s (%s) | %s (%s) |\n' "$name" "$count" "$ri" "$qi" \
      "$a" "$b" "$c" "$d"
  done
  echo "<!-- storage:end -->"
} >"$section"
if grep -q '<!-- storage:begin' "$doc"; then
  awk -v f="$section" '
    /<!-- storage:begin/ { while ((getline l < f) > 0) print l; skip = 1; next }
    /<!-- storage:end -->/ { skip = 0; next }
    !skip { print }' "$doc" >"$doc.new" && mv "$doc.new" "$doc"
else
  { echo; cat "$section"; } >>"$doc"
fi
rm -f "$section"
echo "img_bench: wrote the storage section of $doc"
