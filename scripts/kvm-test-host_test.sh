#!/usr/bin/env bash
# Tests of scripts/kvm-test-host in its L1 mode (CTest: kvm_test_host.CASE, label e2e).
# Usage: scripts/kvm-test-host_test.sh CASE    (CASE: one of the functions named case_*)
# Each case starts at most one L1 and checks what a user sees: status, output, the one line
# that says why, and that nothing is left behind (no QEMU, no work directory).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
host=$here/kvm-test-host
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
export TMPDIR=$scratch/tmp   # the host's work directories go here, so leftovers are visible
mkdir -p "$TMPDIR"
failures=0

check() {  # check DESCRIPTION COMMAND...: one assertion
  local what=$1; shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
run() {  # run ARGS...: kvm-test-host in L1 mode; sets status, out, err
  "$host" --mode l1 --memory 2048 --hugepages 8 --scratch-size 1G "$@" >"$scratch/out" 2>"$scratch/err"
  status=$?
  out=$(cat "$scratch/out") err=$(cat "$scratch/err")
}
nothing_left() {
  [[ -z $(ls -A "$TMPDIR") ]] && ! pgrep -f "qemu-system-x86_64 -name kvm-test-host.*$TMPDIR" >/dev/null
}
has() { grep -qF -- "$2" <<<"$1"; }

case_status_and_output_pass_through() {
  cd "$scratch" && export KVM_TEST_HOST_PROBE=carried
  run --share "$scratch" -- bash -c 'echo "out $PWD $KVM_TEST_HOST_PROBE $KUMO_TEST_HOST_L1"; echo err >&2
                  test -w /dev/kvm && grep -qw svm /proc/cpuinfo && echo kvm-with-svm
                  touch written-in-l1; exit 7'
  check "exit status 7 passes through" test "$status" -eq 7
  check "stdout passes through, in the caller's directory and environment" \
    has "$out" "out $scratch carried 1"
  check "stderr passes through" test "$err" = err
  check "the L1 has /dev/kvm with SVM" has "$out" kvm-with-svm
  check "the caller's directory is shared read-write" test -f "$scratch/written-in-l1"
  check "nothing is left behind" nothing_left
}

case_kernel_panic_is_reported() {
  run -- bash -c 'echo c >/proc/sysrq-trigger; sleep 600'
  check "status 125" test "$status" -eq 125
  check "one line says the host died" has "$err" "kvm-test-host: the L1 test host died"
  check "the console's tail shows the panic" has "$err" "Kernel panic"
  check "nothing is left behind" nothing_left
}

case_time_limit_stops_the_command() {
  local start=$SECONDS
  run --timeout 30 -- sleep 600
  check "status 124" test "$status" -eq 124
  check "one line names the limit" has "$err" "time limit of 30s reached"
  check "it ended within the limit (plus the stop)" test $((SECONDS - start)) -lt 60
  check "nothing is left behind" nothing_left
}

case_silent_command_hits_idle_timeout() {
  run --idle-timeout 10 -- bash -c 'echo started; sleep 600'
  check "status 124" test "$status" -eq 124
  check "what it printed came through" has "$out" started
  check "one line says it was silent" has "$err" "printed nothing for 10s"
  check "nothing is left behind" nothing_left
}

case_stalled_host_is_detected() {
  # Freeze QEMU once the command runs: the L1's heartbeat stops as in a real stall.
  ( for _ in $(seq 120); do
      grep -q running "$scratch/out" 2>/dev/null && break; sleep 1
    done
    pkill -STOP -f "qemu-system-x86_64 -name kvm-test-host.*$TMPDIR" ) &
  run --stall-timeout 15 -- bash -c 'echo running; sleep 600'
  wait
  check "status 125" test "$status" -eq 125
  check "one line says it stalled" has "$err" "the L1 test host stalled: no heartbeat for over 15s"
  check "nothing is left behind (a stopped QEMU too)" nothing_left
}

case_misuse_and_missing_parts_are_one_line() {
  "$host" --cpus x true >/dev/null 2>"$scratch/err"
  check "a bad option value is status 2" test $? -eq 2
  check "... with one line" test "$(wc -l <"$scratch/err")" -eq 1
  "$host" --mode l1 >/dev/null 2>"$scratch/err"
  check "no command is status 2" test $? -eq 2
  "$host" --mode l1 --kernel /nonexistent true >/dev/null 2>"$scratch/err"
  check "a missing kernel is status 125" test $? -eq 125
  check "... with one line naming it" has "$(cat "$scratch/err")" "no kernel /nonexistent"
  PATH=/nonexistent /bin/bash "$host" --mode l1 true >/dev/null 2>"$scratch/err"
  check "a missing QEMU is status 125" test $? -eq 125
  check "... with one line naming the package" has "$(cat "$scratch/err")" "qemu-system-x86"
  check "nothing is left behind" nothing_left
}

case_kvm_tests_retries_failures_and_names_flaky_ones() {
  # A CTest project with one test that passes, one that fails once, one that always fails.
  mkdir -p "$scratch/project"
  cat >"$scratch/project/CMakeLists.txt" <<EOF
cmake_minimum_required(VERSION 3.20)
project(t NONE)
enable_testing()
add_test(NAME steady COMMAND true)
add_test(NAME flaky COMMAND sh -c "test -f $scratch/ran || { touch $scratch/ran; exit 1; }")
add_test(NAME broken COMMAND false)
add_test(NAME not_kvm COMMAND false)
set_tests_properties(steady flaky broken PROPERTIES LABELS kvm)
EOF
  cmake -S "$scratch/project" -B "$scratch/build" >/dev/null
  out=$("$here/kvm-tests" --build "$scratch/build" -- --mode l1 --memory 2048 --hugepages 8 \
        --scratch-size 1G --share "$scratch" 2>&1)
  status=$?
  check "a test that always fails fails the run" test "$status" -eq 1
  check "the flaky test is named" has "$out" "kvm-tests: FLAKY flaky: Failed, then passed on a fresh host"
  check "the broken test is named" has "$out" "kvm-tests: broken: Failed"
  check "only the kvm label ran" test "$(grep -c not_kvm <<<"$out")" -eq 0
  check "the count" has "$out" "kvm tests: 2 passed, 1 failed"
  check "nothing is left behind" nothing_left
}

[[ $(type -t "case_${1:-}") == function ]] || { echo "usage: $0 CASE"; exit 2; }
"case_$1"
echo "$1: $((failures == 0 ? 1 : 0)) passed, $((failures > 0 ? 1 : 0)) failed"
exit $((failures > 0))
