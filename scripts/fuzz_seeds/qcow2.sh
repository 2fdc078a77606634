#!/usr/bin/env bash
# Seed images for the qcow2 fuzzers (qcow2_image_fuzz, qcow2_header_fuzz): small valid images
# made by qemu-img/qemu-io, one per feature, so that mutations start from images that open
# (an empty corpus rarely gets past the header checks). Usage: scripts/fuzz_seeds/qcow2.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
command -v qemu-img >/dev/null || exit 0  # no seeds: the fuzzers start from nothing
cd "$dir"
seed() {  # seed NAME CREATE_OPTIONS QEMU_IO_COMMANDS...
  local name=$1 opts=$2; shift 2
  qemu-img create -q -f qcow2 -o "$opts" "$name.qcow2" 256K
  local cmd
  for cmd in "$@"; do
    qemu-io -f qcow2 -c "$cmd" "$name.qcow2" >/dev/null
  done
}
seed v3 cluster_size=4096 "write -P 1 0 8k" "write -z 64k 4k" "write -P 2 100k 3k"
seed v2 cluster_size=4096,compat=0.10 "write -P 3 0 12k" "write -P 4 200k 4k"
seed subclusters cluster_size=16384,extended_l2=on "write -P 5 0 2k" "write -z 40k 1k" \
  "write -P 6 100k 5k"
seed lazy cluster_size=4096,lazy_refcounts=on "write -P 7 4k 8k"
seed refcount1 cluster_size=4096,refcount_bits=1 "write -P 8 0 4k"
seed snapshot cluster_size=4096 "write -P 9 0 8k"
qemu-img snapshot -c s1 snapshot.qcow2
qemu-io -f qcow2 -c "write -P 10 0 4k" snapshot.qcow2 >/dev/null
# A compressed cluster: convert -c of a small image with compressible data.
qemu-img create -q -f qcow2 -o cluster_size=4096 plain.qcow2 256K
qemu-io -f qcow2 -c "write -P 11 0 16k" plain.qcow2 >/dev/null
qemu-img convert -c -O qcow2 -o cluster_size=4096 plain.qcow2 compressed.qcow2
rm plain.qcow2
