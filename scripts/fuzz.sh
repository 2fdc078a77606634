#!/usr/bin/env bash
# Runs one libFuzzer target for longer: scripts/fuzz.sh TARGET [SECONDS] [CORPUS_DIR]
# (builds build-fuzz with clang if needed). Targets: find build-fuzz/src -name '*_fuzz'.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 1 ]] || { echo "usage: scripts/fuzz.sh TARGET [SECONDS] [CORPUS_DIR]" >&2; exit 2; }
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKUMO_FUZZ=ON >/dev/null
cmake --build build-fuzz --target "$1"
bin=$(find build-fuzz/src -name "$1" -type f | head -1)
corpus=${3:-fuzz-corpus/$1}
mkdir -p "$corpus"
seeds=scripts/fuzz_seeds/${1%%_*}.sh  # seeds, where the target has them
if [[ -x $seeds ]]; then "$seeds" "$corpus"; fi
exec "$bin" -max_total_time="${2:-300}" "$corpus"
