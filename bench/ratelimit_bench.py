#!/usr/bin/env python3
"""virtio-blk rate limiter accuracy: delivered vs configured bandwidth and IOPS under kumo.

kumo runs the test guest's `workload=blk-bench` (as fast as the guest can submit) on a disk
with `bw=10M` (10 MiB/s) and with `iops=1000`. A bucket starts full (one second's worth: the
burst Firecracker's semantics allow), so the sustained rate is measured differentially: a
short and a long run with the same limit, rate = (work_long - work_short) / (t_long -
t_short) from the guest's own counters (blk_requests, blk_us). The plain average of the long
run (burst included) is shown too. Goal: sustained rate within +-5% of the configured one.

Usage: bench/ratelimit_bench.py [--runs 2] [--short 2] [--long 5] [--build build]
                                [--update-docs]
"""
import argparse
import os
import sys

from benchlib import (common_args, kumo_cmd, md_table, median, reproduce_command,
                      require_root, run_guest, text_table, update_docs)

MIB = 1 << 20
# name, disk option, guest args, configured rate, unit, unit size
CASES = [
    ("bandwidth bw=10M, 64K randread QD8", "bw=10M", "rw=randread bs=65536 qd=8",
     10 * MIB, "MiB/s", MIB),
    ("bandwidth bw=10M, 4K randread QD32", "bw=10M", "rw=randread bs=4096 qd=32",
     10 * MIB, "MiB/s", MIB),
    ("ops iops=1000, 4K randread QD32", "iops=1000", "rw=randread bs=4096 qd=32",
     1000, "IOPS", 1),
    ("ops iops=1000, 4K randwrite QD32", "iops=1000", "rw=randwrite bs=4096 qd=32",
     1000, "IOPS", 1),
]


def work(kv, unit):
    reqs = int(kv["blk_requests"])
    return reqs * int(kv["bs"]) if unit != "IOPS" else reqs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--short", type=int, default=2, help="seconds of the short run")
    ap.add_argument("--long", type=int, default=5, help="seconds of the long run")
    ap.add_argument("--size-mib", type=int, default=256)
    args = ap.parse_args()
    require_root("ratelimit_bench")

    path = f"/tmp/kumo-ratelimit-bench-{os.getpid()}.raw"
    rows = []
    verdicts = []
    try:
        with open(path, "wb") as f:
            f.write(os.urandom(MIB) * args.size_mib)
        for name, limit, guest, rate, unit, scale in CASES:
            disk = ["--disk", f"path={path},cache=none,io=io_uring,{limit}"]
            sustained, average = [], []
            for _ in range(args.runs):
                kv = {}
                for secs in (args.short, args.long):
                    cmd = kumo_cmd(args.build, f"workload=blk-bench {guest} seconds={secs}",
                                   disk)
                    kv[secs] = run_guest(cmd, timeout=secs + 60, verbose=args.verbose)
                dw = work(kv[args.long], unit) - work(kv[args.short], unit)
                dt = (int(kv[args.long]["blk_us"]) - int(kv[args.short]["blk_us"])) / 1e6
                sustained.append(dw / dt)
                average.append(work(kv[args.long], unit) / (int(kv[args.long]["blk_us"]) / 1e6))
            s, a = median(sustained), median(average)
            err = (s - rate) / rate * 100
            ok = abs(err) <= 5
            verdicts.append(ok)
            print(f"{name}: sustained {[round(x / scale, 1) for x in sustained]} "
                  f"average {[round(x / scale, 1) for x in average]}", file=sys.stderr)
            rows.append([name, unit, f"{rate / scale:g}", f"{s / scale:.2f}",
                         f"{err:+.1f}%", "met" if ok else "MISSED",
                         f"{a / scale:.1f} ({(a - rate) / rate * 100:+.0f}%)"])
    finally:
        if os.path.exists(path):
            os.unlink(path)

    header = ["case", "unit", "configured", "delivered (sustained)", "error",
              "goal +-5%", f"average of {args.long} s incl. initial burst"]
    print(text_table(header, rows))
    summary = f"goals met: {sum(verdicts)}/{len(verdicts)}"
    print(summary)
    if args.update_docs:
        body = ("kumo only (QEMU's throttling is a different algorithm with other burst "
                "rules). Test guest `workload=blk-bench` on a 256 MiB raw file with "
                "`--disk path=F,cache=none,io=io_uring,bw=10M` or `iops=1000`; "
                f"sustained rate = difference of a {args.long} s and a {args.short} s run "
                f"(cancels the bucket's initial one-second burst), median of {args.runs}. "
                "MiB/s = 2^20 bytes/s (`10M` means 10 MiB).\n\n"
                + md_table(header, rows) + "\n" + summary + "\n")
        update_docs("ratelimit", "virtio-blk rate limiter accuracy (bench/ratelimit_bench.py)",
                    reproduce_command("ratelimit_bench.py", sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
