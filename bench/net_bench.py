#!/usr/bin/env python3
"""virtio-net packet rate and round-trip latency: kumo vs QEMU on the same test guest.

Each VMM gets its own tap device (unique name, deleted afterwards) with `kumo-tap-echo`
echoing the guest's 0x88b5 probe frames back — the same host-side responder for both.
kumo: `--net tap=NAME`; QEMU 7.2 microvm,pcie=on: `-netdev tap,ifname=NAME,script=no,
downscript=no,vhost=off -device virtio-net-pci,disable-legacy=on`.

- `workload=net-bench` (window=32 probes in flight): echoed packets per second;
- `workload=net-echo` (one probe at a time): round-trip time p50 / p99.
Both for 64-byte (frame=60 + FCS) and 1518-byte (frame=1514, a full 1500-byte MTU) frames.
Runs are interleaved, each round starting with the other VMM (kumo QEMU, QEMU kumo, ...);
medians.

Usage: bench/net_bench.py [--runs 3] [--seconds 2] [--count 2000] [--build build]
                          [--update-docs]
"""
import argparse
import sys

from benchlib import (Tap, code_block, common_args, kumo_cmd, md_table, median, qemu_cmd,
                      ratio, reproduce_command, require_root, rotated, run_guest, text_table,
                      update_docs)

FRAMES = [(60, "64 B"), (1514, "1518 B (MTU 1500)")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common_args(ap)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=2, help="net-bench duration per run")
    ap.add_argument("--count", type=int, default=2000, help="net-echo probes per run")
    ap.add_argument("--window", type=int, default=32, help="net-bench probes in flight")
    ap.add_argument("--frames", help="comma-separated frame sizes to run (60,1514); not with "
                    "--update-docs")
    ap.add_argument("--no-echo", action="store_true", help="skip the RTT (net-echo) runs")
    args = ap.parse_args()
    require_root("net_bench")
    frames = FRAMES
    if args.frames:
        if args.update_docs:
            sys.exit("--frames and --update-docs do not go together")
        frames = [f for f in FRAMES if str(f[0]) in args.frames.split(",")]

    budget = 60 + len(FRAMES) * args.runs * 2 * (args.seconds + 15)
    res = {}
    with Tap(args.build, "k", budget) as ktap, Tap(args.build, "q", budget) as qtap:
        def cmds(cmdline):
            return (("kumo", kumo_cmd(args.build, cmdline, ["--net", f"tap={ktap.name}"])),
                    ("qemu", qemu_cmd(args.build, cmdline, [
                        "-netdev", f"tap,id=n0,ifname={qtap.name},script=no,downscript=no,"
                                   "vhost=off",
                        "-device", "virtio-net-pci,netdev=n0,disable-legacy=on"])))
        for frame, _ in frames:
            bench = cmds(f"workload=net-bench seconds={args.seconds} window={args.window} "
                         f"frame={frame}")
            echo = cmds(f"workload=net-echo count={args.count} frame={frame}")
            r = res[frame] = {k: [] for k in ("kumo_pps", "qemu_pps", "kumo_p50", "qemu_p50",
                                             "kumo_p99", "qemu_p99", "kumo_lost",
                                             "qemu_lost")}
            for run in range(args.runs):
                for who, cmd in rotated(bench, run):
                    kv = run_guest(cmd, timeout=args.seconds + 60, verbose=args.verbose)
                    r[who + "_pps"].append(int(kv["net_pps"]))
                    r[who + "_lost"].append(int(kv["net_lost"]))
                for who, cmd in ([] if args.no_echo else rotated(echo, run)):
                    kv = run_guest(cmd, timeout=60, verbose=args.verbose)
                    r[who + "_p50"].append(int(kv["net_rtt_p50_us"]))
                    r[who + "_p99"].append(int(kv["net_rtt_p99_us"]))
            print(f"frame={frame}: " + " ".join(f"{k}={v}" for k, v in r.items()),
                  file=sys.stderr)

    header = ["frame", "metric", "kumo", "QEMU", "kumo/QEMU", "goal"]
    rows = []
    verdicts = []
    for frame, label in frames:
        r = res[frame]
        kp, qp = median(r["kumo_pps"]), median(r["qemu_pps"])
        rows.append([label, "packets/s (window 32)", f"{kp:,.0f}", f"{qp:,.0f}",
                     f"{ratio(kp, qp):.2f}", ">= 1.2"])
        verdicts.append(ratio(kp, qp) >= 1.2)
        for p in ("p50", "p99") if r["kumo_p50"] else ():
            k, q = median(r["kumo_" + p]), median(r["qemu_" + p])
            rows.append([label, f"RTT {p} us (1 in flight)", f"{k:.0f}", f"{q:.0f}",
                         f"{ratio(k, q):.2f}", "<= 1.0"])
            verdicts.append(ratio(k, q) <= 1.0)
        lost = sum(r["kumo_lost"]), sum(r["qemu_lost"])
        if any(lost):
            rows.append([label, "probes lost (all runs)", lost[0], lost[1], "", ""])
    print(text_table(header, rows))
    summary = f"goals met: {sum(verdicts)}/{len(verdicts)}"
    print(summary)
    if args.update_docs:
        body = (f"Test guest `workload=net-bench window={args.window} seconds={args.seconds}` "
                f"and `workload=net-echo count={args.count}` (polling, no interrupts), one tap "
                "per VMM answered by `kumo-tap-echo` on the host; "
                f"{args.runs} interleaved runs (each round starts with the other VMM), medians. "
                "QEMU: `-M microvm,pcie=on`, "
                "`-netdev tap,...,vhost=off -device virtio-net-pci,disable-legacy=on`. "
                "Packets/s counts echoed probes (each crossed the device twice).\n\n"
                + md_table(header, rows) + "\n" + summary + "\n")
        update_docs("net", "virtio-net: kumo vs QEMU (bench/net_bench.py)",
                    reproduce_command("net_bench.py", sys.argv[1:]), body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
