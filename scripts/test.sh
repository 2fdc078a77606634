#!/usr/bin/env bash
# Runs the whole test suite (after scripts/setup.sh):
#  1. every CTest test of the main build: unit, kvm and e2e (kvm/e2e tests skip with a
#     message where /dev/kvm, root or a tool is missing);
#  2. the unit tests again under ASan+UBSan, in a clang build that also has the fuzzers;
#  3. every libFuzzer target for KUMO_FUZZ_SECONDS seconds (default 20) — a bounded smoke
#     run; longer campaigns: scripts/fuzz.sh TARGET SECONDS.
# Usage: scripts/test.sh [extra ctest args for step 1]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

cmake --build build
ctest --test-dir build --output-on-failure --timeout 600 -j"$jobs" "$@"

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKUMO_FUZZ=ON >/dev/null
cmake --build build-fuzz
ctest --test-dir build-fuzz -L unit --output-on-failure --timeout 600 -j"$jobs"

seconds=${KUMO_FUZZ_SECONDS:-20}
failed=0
ran=0
for fuzzer in $(find build-fuzz/src -name '*_fuzz' -type f -perm -u+x | sort); do
  corpus=$(mktemp -d)
  # Seeds, where a target has them: scripts/fuzz_seeds/PREFIX.sh (PREFIX: the name up to "_").
  name=$(basename "$fuzzer")
  seeds=scripts/fuzz_seeds/${name%%_*}.sh
  if [[ -x $seeds ]]; then "$seeds" "$corpus"; fi
  if "$fuzzer" -max_total_time="$seconds" -print_final_stats=0 "$corpus" >"$corpus.log" 2>&1; then
    echo "fuzz: $name ok ($(grep -o 'DONE.*' "$corpus.log" | head -1))"
  else
    echo "fuzz: $name FAILED"; tail -40 "$corpus.log"; failed=$((failed + 1))
  fi
  ran=$((ran + 1))
  rm -rf "$corpus" "$corpus.log"
done
echo "fuzz: $((ran - failed)) passed, $failed failed"
exit $((failed > 0))
