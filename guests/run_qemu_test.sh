#!/usr/bin/env bash
# Boots the test guest under QEMU with one workload and checks its result.
#
# Usage: run_qemu_test.sh GUEST_ELF CMDLINE EXPECT [QEMU_ARGS...]
#   CMDLINE    guest command line, e.g. "workload=smp"
#   EXPECT     space-separated key=value lines that must appear (may be "");
#              a `qemu_rc=N` token instead expects QEMU exit status N and no
#              status=ok (for failure-path tests)
#   QEMU_ARGS  machine arguments; default: the microvm line in guests/README.md
#
# Passes when the guest prints status=ok and every EXPECT line, and QEMU
# exits with 1 (isa-debug-exit maps guest status 0 to (0 << 1) | 1).
# Exits 77 (CTest skip) when qemu-system-x86_64 or a usable /dev/kvm is missing.
set -u

elf=$1 cmdline=$2 expect=$3
shift 3

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 not installed"
  exit 77
fi
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  echo "SKIP: /dev/kvm missing or not accessible"
  exit 77
fi

machine=("$@")
if [[ ${#machine[@]} -eq 0 ]]; then
  machine=(-M microvm -m 128M)
fi

out=$(timeout 20 qemu-system-x86_64 "${machine[@]}" -cpu qemu64 -accel kvm \
  -nodefaults -no-user-config -nographic -serial stdio \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -kernel "$elf" -append "$cmdline" 2>/tmp/guest-qemu-stderr.$$)
rc=$?
echo "$out"
grep -v 'host doesn.t support requested feature' /tmp/guest-qemu-stderr.$$ >&2
rm -f /tmp/guest-qemu-stderr.$$

want_rc=1 lines=(status=ok)
for tok in $expect; do
  case $tok in
    qemu_rc=*) want_rc=${tok#qemu_rc=}; lines=("${lines[@]:1}") ;;
    *) lines+=("$tok") ;;
  esac
done

fail=0
if [[ $rc -ne $want_rc ]]; then
  echo "FAIL: qemu exit status $rc, want $want_rc"
  fail=1
fi
for line in "${lines[@]}"; do
  if ! grep -qxF -- "$line" <<<"$out"; then
    echo "FAIL: missing line '$line'"
    fail=1
  fi
done
exit $fail
