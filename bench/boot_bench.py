#!/usr/bin/env python3
"""Boot time and memory overhead: kumo vs QEMU (microvm) on the same test guest, same run.

Boot time: wall time from spawning the VMM process to the guest's ring-3 boot marker
(`boot_marker=1` on the serial console, printed right after the boot-timer port write),
measured identically for both VMMs. Memory overhead: peak over the run of the RSS of every
mapping that is not guest RAM (Firecracker's method), sampled every 5 ms.

Usage: bench/boot_bench.py [--runs N] [--build build] [--update-docs]
Prints ratios; with --update-docs rewrites the boot section of docs/benchmarks.md.
"""
import argparse
import os
import re
import select
import statistics
import subprocess
import sys
import time

from benchlib import ROOT, code_block, reproduce_command, update_docs


def commands(build, memory_mib, workload):
    guest = os.path.join(build, "guests", "testguest.elf")
    kumo = [os.path.join(build, "kumo"), "run", "--kernel", guest, "--memory",
            f"{memory_mib}M", "--cmdline", workload, "--console", "stdio", "--no-boot-time"]
    qemu = ["qemu-system-x86_64", "-M", "microvm", "-cpu", "qemu64", "-accel", "kvm",
            "-m", f"{memory_mib}M", "-nodefaults", "-no-user-config", "-nographic",
            "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-kernel", guest, "-append", workload]
    return kumo, qemu


def time_to_marker(cmd, marker=b"boot_marker=1"):
    start = time.perf_counter()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    buf = b""
    seen = None
    fd = p.stdout.fileno()
    deadline = start + 30
    while time.perf_counter() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if seen is None and marker in buf:
                seen = time.perf_counter() - start
        if p.poll() is not None and not r:
            break
    p.kill()
    p.wait()
    if seen is None:
        raise RuntimeError(f"no boot marker from {cmd[0]}: {buf[-300:]!r}")
    return seen


def non_guest_rss_kib(pid, guest_bytes):
    """Sum of Rss over mappings that are not guest RAM."""
    total = 0
    current_is_guest = False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    lo, hi = line.split()[0].split("-")
                    size = int(hi, 16) - int(lo, 16)
                    # Guest RAM: kumo's memfd regions, QEMU's RAM block (mapping >= guest size).
                    current_is_guest = ("kumo-guest-ram" in line) or size >= guest_bytes
                elif line.startswith("Rss:") and not current_is_guest:
                    total += int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return total


def peak_overhead_kib(cmd, guest_bytes, seconds):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    peak = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and p.poll() is None:
        v = non_guest_rss_kib(p.pid, guest_bytes)
        if v is not None:
            peak = max(peak, v)
        time.sleep(0.005)
    p.kill()
    p.wait()
    return peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--update-docs", action="store_true")
    args = ap.parse_args()

    memory_mib = 128
    kumo, qemu = commands(args.build, memory_mib, "workload=boot")
    kumo_t, qemu_t = [], []
    for _ in range(args.runs):  # interleaved so noise hits both alike
        kumo_t.append(time_to_marker(kumo))
        qemu_t.append(time_to_marker(qemu))
    km, qm = statistics.median(kumo_t), statistics.median(qemu_t)

    # Memory: an idle-ish workload that keeps the VM alive for the sampling window.
    kumo_m, qemu_m = commands(args.build, memory_mib, "workload=irq period_ms=1500")
    kumo_kib = peak_overhead_kib(kumo_m, memory_mib << 20, 1.2)
    qemu_kib = peak_overhead_kib(qemu_m, memory_mib << 20, 1.2)

    lines = [
        f"runs: {args.runs} (interleaved), guest: test guest workload=boot, {memory_mib} MiB, 1 vCPU",
        f"boot (process start -> ring-3 marker), median: kumo {km*1000:.1f} ms, "
        f"QEMU microvm {qm*1000:.1f} ms, ratio kumo/QEMU = {km/qm:.3f} (goal <= 0.333)",
        f"boot min: kumo {min(kumo_t)*1000:.1f} ms, QEMU {min(qemu_t)*1000:.1f} ms",
        f"memory overhead (peak non-guest RSS): kumo {kumo_kib/1024:.2f} MiB, "
        f"QEMU {qemu_kib/1024:.2f} MiB, ratio = {kumo_kib/max(qemu_kib,1):.3f} (goal: kumo <= 5 MiB)",
    ]
    print("\n".join(lines))
    if args.update_docs:
        update_docs("boot", "Boot time and memory overhead (bench/boot_bench.py)",
                    reproduce_command("boot_bench.py", sys.argv[1:]), code_block(lines))



if __name__ == "__main__":
    sys.exit(main())
