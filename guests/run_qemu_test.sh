#!/usr/bin/env bash
# Boots the test guest under QEMU with one workload and checks its result.
#
# Usage: run_qemu_test.sh [--disk MIB] [--disk-queues N] [--rng] [--net-echo] GUEST_ELF CMDLINE EXPECT [QEMU_ARGS...]
#   --disk MIB   attach a scratch raw virtio-blk disk (modern only) of MIB MiB
#   --disk-queues N  give that disk N request queues (num-queues=N)
#   --rng        attach virtio-rng (modern only)
#   --net-echo   attach virtio-net on a UDP socket with net_echo.py answering
#   CMDLINE    guest command line, e.g. "workload=smp"
#   EXPECT     space-separated key=value lines that must appear (may be "");
#              a `qemu_rc=N` token instead expects QEMU exit status N and no
#              status=ok (for failure-path tests)
#   QEMU_ARGS  machine arguments; default: the microvm line in guests/README.md
#
# Passes when the guest prints status=ok and every EXPECT line, and QEMU
# exits with 1 (isa-debug-exit maps guest status 0 to (0 << 1) | 1).
# Exits 77 (CTest skip) when qemu-system-x86_64 or a usable /dev/kvm is missing, 1 instead
# when KUMO_REQUIRE_KVM=1 (on a host that must run every VM test).
set -u
skip=77
[[ ${KUMO_REQUIRE_KVM:-} == 1 ]] && skip=1

here=$(cd "$(dirname "$0")" && pwd)
disk_mib="" disk_queues=1 rng=0 net=0
while [[ $# -gt 0 && $1 == --* ]]; do
  case $1 in
    --disk) disk_mib=$2; shift 2 ;;
    --disk-queues) disk_queues=$2; shift 2 ;;
    --rng) rng=1; shift ;;
    --net-echo) net=1; shift ;;
    *) echo "unknown option $1"; exit 2 ;;
  esac
done
elf=$1 cmdline=$2 expect=$3
shift 3

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 not installed"
  exit $skip
fi
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
  echo "SKIP: /dev/kvm missing or not accessible"
  exit $skip
fi

machine=("$@")
if [[ ${#machine[@]} -eq 0 ]]; then
  machine=(-M microvm -m 128M)
fi

tmp=$(mktemp -d)
responder=""
cleanup() {
  [[ -n $responder ]] && kill "$responder" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

if [[ -n $disk_mib ]]; then
  truncate -s "${disk_mib}M" "$tmp/disk.raw"
  machine+=(-drive "if=none,id=d0,file=$tmp/disk.raw,format=raw"
            -device "virtio-blk-pci,drive=d0,disable-legacy=on,num-queues=$disk_queues")
fi
if [[ $rng -eq 1 ]]; then
  machine+=(-device virtio-rng-pci,disable-legacy=on)
fi
if [[ $net -eq 1 ]]; then
  if ! command -v python3 >/dev/null; then
    echo "SKIP: python3 (the echo responder) not installed"
    exit $skip
  fi
  # Ports derived from the PID keep concurrent tests apart.
  echo_port=$((20000 + ($$ % 20000) * 2)) guest_port=$((20001 + ($$ % 20000) * 2))
  python3 "$here/net_echo.py" "$echo_port" &
  responder=$!
  for _ in $(seq 50); do   # wait until the responder is bound
    ss -Hlun "sport = :$echo_port" 2>/dev/null | grep -q . && break
    sleep 0.05
  done
  machine+=(-netdev "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port=$guest_port,remote.type=inet,remote.host=127.0.0.1,remote.port=$echo_port"
            -device virtio-net-pci,netdev=n0,disable-legacy=on)
fi

out=$(timeout 20 qemu-system-x86_64 "${machine[@]}" -cpu qemu64 -accel kvm \
  -nodefaults -no-user-config -nographic -serial stdio \
  -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
  -kernel "$elf" -append "$cmdline" 2>"$tmp/stderr")
rc=$?
echo "$out"
grep -v 'host doesn.t support requested feature' "$tmp/stderr" >&2

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
