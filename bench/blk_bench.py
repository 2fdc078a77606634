#!/usr/bin/env python3
"""virtio-blk throughput: kumo vs QEMU on the same test guest, with host fio as the limit.

The test guest's `workload=blk-bench` (guests/wl_blk.c: polls the used ring, no interrupts)
runs under kumo (--disk path=FILE,cache=none,io=io_uring) and QEMU 7.2 microvm,pcie=on
(-drive ...,cache=none,aio=io_uring + virtio-blk-pci), both on the same pre-filled raw file;
fio runs on that file on the host (--ioengine=io_uring --direct=1) with the same pattern,
block size and queue depth: the physical limit a VMM can at best reach.
Runs are interleaved, and each round starts with the next runner (kumo QEMU fio, QEMU fio
kumo, fio kumo QEMU, ...), so host noise and the disk state a run leaves behind hit all
alike; medians.

Usage: bench/blk_bench.py [--runs 3] [--seconds 2] [--size-mib 512] [--file PATH]
                          [--build build] [--update-docs]
"""
import argparse
import contextlib
import json
import os
import subprocess
import sys

from benchlib import (GuestFailed, code_block, common_args, kumo_cmd, md_table, median,
                      qemu_cmd, ratio, reproduce_command, require_root, rotated, run_guest,
                      text_table, update_docs)

# name, guest rw, fio rw, block size, queue depth, unit ("iops" or "MB/s")
CASES = [
    ("4K randread QD1", "randread", "randread", 4096, 1, "iops"),
    ("4K randread QD32", "randread", "randread", 4096, 32, "iops"),
    ("1M seq read QD8", "read", "read", 1 << 20, 8, "MB/s"),
    ("1M seq write QD8", "write", "write", 1 << 20, 8, "MB/s"),
]


def prefill(path, size_mib):
    """Writes random data over the whole file so reads hit real, allocated blocks."""
    with open("/dev/urandom", "rb") as src, open(path, "wb") as dst:
        chunk = src.read(1 << 20)
        for i in range(size_mib):
            dst.write(chunk[i % 7:] + chunk[:i % 7])  # cheap variation, all blocks written
        dst.flush()
        os.fsync(dst.fileno())


def guest_value(kv, unit):
    if unit == "iops":
        return float(kv["blk_iops"])
    # blk_mb_s is rounded to whole MB/s; recompute from requests and elapsed time.
    return int(kv["blk_requests"]) * int(kv["bs"]) / int(kv["blk_us"])


NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
FIO_HUGEPAGES = 16  # 2 MiB pages: the largest case needs QD8 x 1 MiB of buffers


@contextlib.contextmanager
def huge_pages_for_fio():
    """Reserves 2 MiB pages for fio's buffers while the benchmark runs, restoring the old
    count after. The VMMs' guest RAM is backed by transparent huge pages, so a guest's 1 MiB
    buffer reaches the host disk in a few large segments; fio's default malloc buffers are
    4 KiB pages (256 segments per 1 MiB), which halves its 1 MiB throughput on this host
    (1.4 vs 2.9 GB/s measured) and would make it no limit at all."""
    with open(NR_HUGEPAGES) as f:
        old = int(f.read())
    with open(NR_HUGEPAGES, "w") as f:
        f.write(str(old + FIO_HUGEPAGES))
    try:
        yield
    finally:
        with open(NR_HUGEPAGES, "w") as f:
            f.write(str(old))


def run_fio(path, rw, bs, qd, seconds, unit):
    cmd = ["fio", "--name=peer", f"--filename={path}", "--ioengine=io_uring", "--direct=1",
           "--iomem=shmhuge", f"--rw={rw}", f"--bs={bs}", f"--iodepth={qd}",
           f"--runtime={seconds}", "--time_based", "--output-format=json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    side = job["write"] if rw in ("write", "randwrite") else job["read"]
    return side["iops"] if unit == "iops" else side["bw_bytes"] / 1e6


def fmt(v, unit):
    return f"{v:,.0f}" if unit == "iops" else f"{v:,.0f}"


def run_cases(args, cases, path, results):
    """Runs every case, interleaved; fills results[case name]."""
    for name, rw, fio_rw, bs, qd, unit in cases:
        cmdline = f"workload=blk-bench rw={rw} bs={bs} qd={qd} seconds={args.seconds}"
        kumo = kumo_cmd(args.build, cmdline,
                        ["--disk", f"path={path},cache=none,io=io_uring"])
        qemu = qemu_cmd(args.build, cmdline, [
            "-drive", f"if=none,id=d0,file={path},format=raw,cache=none,aio=io_uring",
            "-device", "virtio-blk-pci,drive=d0,disable-legacy=on"])
        r = results[name] = {"kumo": [], "qemu": [], "fio": [], "kumo_p50": [],
                             "qemu_p50": []}
        runners = ["kumo", "qemu"] + ([] if args.no_fio else ["fio"])
        for run in range(args.runs):
            # Each round starts with the next runner: whoever follows another run (or
            # a VM boot) gets a different host disk state, so no runner keeps one place.
            for who in rotated(runners, run):
                if who == "fio":
                    r["fio"].append(run_fio(path, fio_rw, bs, qd, args.seconds, unit))
                    continue
                kv = run_guest(kumo if who == "kumo" else qemu, timeout=args.seconds + 60,
                               verbose=args.verbose)
                if int(kv.get("blk_errors", "1")) != 0:
                    raise GuestFailed(f"{who}: blk_errors={kv.get('blk_errors')}")
                r[who].append(guest_value(kv, unit))
                r[who + "_p50"].append(int(kv["blk_lat_p50_us"]))
        print(f"{name}: kumo {[round(x) for x in r['kumo']]} "
              f"QEMU {[round(x) for x in r['qemu']]} fio {[round(x) for x in r['fio']]}",
              file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=2, help="per case and VMM")
    ap.add_argument("--size-mib", type=int, default=512)
    ap.add_argument("--file", help="disk file (default: a temporary file in /tmp, deleted)")
    ap.add_argument("--cases", help="comma-separated substrings: run only the matching cases "
                    "(e.g. 'QD32'); not with --update-docs")
    ap.add_argument("--no-fio", action="store_true", help="skip the host fio runs")
    args = ap.parse_args()
    require_root("blk_bench")
    if args.no_fio and args.update_docs:
        sys.exit("--no-fio and --update-docs do not go together")
    cases = CASES
    if args.cases:
        if args.update_docs:
            sys.exit("--cases and --update-docs do not go together")
        cases = [c for c in CASES if any(w in c[0] for w in args.cases.split(","))]

    path = args.file or f"/tmp/kumo-blk-bench-{os.getpid()}.raw"
    own_file = args.file is None
    try:
        if own_file or not os.path.exists(path):
            print(f"pre-filling {path} ({args.size_mib} MiB) ...", file=sys.stderr)
            prefill(path, args.size_mib)
        results = {}  # case -> {"kumo": [...], "qemu": [...], "fio": [...]}
        with contextlib.ExitStack() as stack:
            if not args.no_fio:
                stack.enter_context(huge_pages_for_fio())
            run_cases(args, cases, path, results)
    finally:
        if own_file and os.path.exists(path):
            os.remove(path)

    header = ["case", "unit", "kumo", "QEMU", "fio (host)", "kumo/QEMU", "kumo/fio",
              "QEMU/fio", "p50 lat us kumo/QEMU"]
    rows = []
    for name, _, _, _, qd, unit in cases:
        r = results[name]
        k, q, f = median(r["kumo"]), median(r["qemu"]), median(r["fio"])
        rows.append([name, unit, fmt(k, unit), fmt(q, unit), fmt(f, unit),
                     f"{ratio(k, q):.2f}", f"{ratio(k, f):.2f}", f"{ratio(q, f):.2f}",
                     f"{median(r['kumo_p50']):.0f}/{median(r['qemu_p50']):.0f}"])
    print(text_table(header, rows))
    if "4K randread QD32" not in results:
        return 0
    qd32 = results["4K randread QD32"]
    k32, q32, f32 = median(qd32["kumo"]), median(qd32["qemu"]), median(qd32["fio"])
    goals = (f"goal (4K randread QD32): kumo/QEMU >= 1.2 -> {ratio(k32, q32):.2f} "
             f"({'met' if ratio(k32, q32) >= 1.2 else 'MISSED'}); kumo/fio >= 0.80 -> "
             f"{ratio(k32, f32):.2f} ({'met' if ratio(k32, f32) >= 0.8 else 'MISSED'})")
    print(goals)
    if args.update_docs:
        body = (f"Test guest `workload=blk-bench` (polling, no interrupts), {args.runs} "
                f"interleaved runs of {args.seconds} s per case (each round starts with the next "
                "runner), medians; "
                f"{args.size_mib} MiB pre-filled raw file in /tmp, O_DIRECT + io_uring for "
                "all three. kumo: `--disk path=F,cache=none,io=io_uring`; QEMU 7.2 "
                "`-M microvm,pcie=on` with `-drive ...,cache=none,aio=io_uring -device "
                "virtio-blk-pci,disable-legacy=on`; fio: `--ioengine=io_uring --direct=1 "
                "--iomem=shmhuge` (2 MiB-page buffers, as the guests' RAM has), "
                "same rw/bs/iodepth.\n\n" + md_table(header, rows) + "\n" + goals + "\n")
        update_docs("blk", "virtio-blk: kumo vs QEMU vs host fio (bench/blk_bench.py)",
                    reproduce_command("blk_bench.py", sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
