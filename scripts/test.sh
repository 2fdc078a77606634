#!/usr/bin/env bash
# Runs the whole test suite (after scripts/setup.sh):
#  1. every CTest test of the main build that needs no /dev/kvm (unit and e2e);
#  2. the tests that need /dev/kvm (label kvm) with KVM: here where /dev/kvm has VT-x/AMD-V,
#     otherwise on the L1 KVM test host (scripts/kvm-tests, scripts/kvm-test-host); there a
#     test that finds no KVM fails instead of skipping;
#  3. the unit tests again under ASan+UBSan, in a clang build that also has the fuzzers;
#  4. every libFuzzer target for KUMO_FUZZ_SECONDS seconds (default 20) — a bounded smoke
#     run; longer campaigns: scripts/fuzz.sh TARGET SECONDS.
# Every step runs even when an earlier one failed; the last lines sum them up.
# Usage: scripts/test.sh [extra ctest args for steps 1 and 2 on a local /dev/kvm]
set -uo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
failed_steps=()
step() {  # step NAME COMMAND...: runs COMMAND, remembers NAME if it failed, says how long it took
  local name=$1 start=$SECONDS; shift
  "$@" || failed_steps+=("$name")
  echo "test.sh: $name took $((SECONDS - start)) s"
}

kvm_tests_logged() { scripts/kvm-tests --time-limit 1800 | tee build/kvm-tests.log; }

cmake --build build || exit 1

kvm_where=$(scripts/kvm-test-host --print-mode)
if [[ $kvm_where == local ]]; then
  step "ctest" env KUMO_REQUIRE_KVM=1 ctest --test-dir build --output-on-failure --timeout 600 -j"$jobs" "$@"
  kvm_summary="kvm: $(ctest --test-dir build -N -L kvm | sed -n 's/^Total Tests: //p') tests ran with KVM on this machine's /dev/kvm"
else
  step "ctest (no kvm)" ctest --test-dir build -LE kvm --output-on-failure --timeout 600 -j"$jobs" "$@"
  step "kvm tests" kvm_tests_logged
  kvm_summary=$(grep -h 'tests ran with KVM' build/kvm-tests.log || echo "kvm: no test ran with KVM")
fi

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKUMO_FUZZ=ON >/dev/null
if cmake --build build-fuzz; then
  step "unit tests (ASan+UBSan)" ctest --test-dir build-fuzz -L unit --output-on-failure --timeout 600 -j"$jobs"
else
  failed_steps+=("build-fuzz")
fi

seconds=${KUMO_FUZZ_SECONDS:-20}
fuzz_failed=0
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
    echo "fuzz: $name FAILED"; tail -40 "$corpus.log"; fuzz_failed=$((fuzz_failed + 1))
  fi
  ran=$((ran + 1))
  rm -rf "$corpus" "$corpus.log"
done
echo "fuzz: $((ran - fuzz_failed)) passed, $fuzz_failed failed"
((fuzz_failed == 0)) || failed_steps+=("fuzz")

echo "$kvm_summary"
if ((${#failed_steps[@]})); then
  echo "test.sh: FAILED steps: ${failed_steps[*]}"
  exit 1
fi
echo "test.sh: every step passed"
