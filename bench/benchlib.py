"""Shared helpers for kumo's benchmarks (bench/*.py).

- update_docs(): rewrites one marked section (<!-- KEY:begin --> ... <!-- KEY:end -->) of
  docs/benchmarks.md, stamped with the reproduce command, date and host;
- run_guest() / kumo_cmd() / qemu_cmd(): run the test guest under kumo or QEMU (microvm,
  pcie=on, the peer of guests/README.md) and parse its key=value serial output;
- Tap: a tap device with a unique name and a kumo-tap-echo responder, always deleted;
- small formatting helpers (markdown tables, ratios).
"""
import contextlib
import os
import platform
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs", "benchmarks.md")
DOCS_HEADER = ("# kumo benchmarks\n\nEach section is written by its script in bench/ (see "
               "bench/README.md). Every figure is kumo measured side by side with its peer in "
               "the same run; ratios, not absolutes, are what carry over between machines.\n")
QEMU_ECAM = "pci_ecam=0xe0000000"  # microvm,pcie=on has no MCFG table (guests/README.md)


# --- docs/benchmarks.md -------------------------------------------------------------------

def host_summary():
    qemu = "?"
    try:
        out = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                             text=True, timeout=10).stdout
        qemu = out.splitlines()[0].replace("QEMU emulator version ", "")
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    where = (" on the L1 KVM test host (QEMU TCG emulating SVM: only the ratios mean anything)"
             if on_test_host() else "")
    return f"{os.cpu_count()} CPUs, kernel {platform.release()}, QEMU {qemu}{where}"


def code_block(lines):
    return "```\n" + "\n".join(lines) + "\n```\n"


def update_docs(key, title, command, body, path=DOCS):
    """Replaces (or appends) the section between <!-- KEY:begin ...--> and <!-- KEY:end -->.

    `body` is markdown (use code_block() for plain lines)."""
    text = open(path).read() if os.path.exists(path) else DOCS_HEADER
    script = next(word for word in command.split() if word.startswith("bench/"))
    begin = f"<!-- {key}:begin (written by {script}; do not edit by hand) -->"
    end = f"<!-- {key}:end -->"
    section = (f"{begin}\n## {title}\n\nReproduce: `{command}` (measured "
               f"{time.strftime('%Y-%m-%d')}, {host_summary()}; noisy shared host)\n\n"
               + body.rstrip("\n") + f"\n{end}")
    pattern = re.compile(r"<!-- " + re.escape(key) + r":begin[^>]*-->.*?" + re.escape(end),
                         re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    with open(path, "w") as f:
        f.write(text)
    print(f"updated {os.path.relpath(path, ROOT)} section '{key}'")


# --- running the test guest ---------------------------------------------------------------

def guest_elf(build):
    return os.path.join(build, "guests", "testguest.elf")


def kumo_cmd(build, cmdline, devices=(), memory_mib=128):
    return ([os.path.join(build, "kumo"), "run", "--kernel", guest_elf(build), "--memory",
             f"{memory_mib}M", "--console", "stdio", "--no-boot-time"] + list(devices)
            + ["--cmdline", cmdline])


def qemu_cmd(build, cmdline, devices=(), memory_mib=128):
    """QEMU microvm with PCIe (the fastest-booting peer); the guest finds ECAM by pci_ecam=."""
    return (["qemu-system-x86_64", "-M", "microvm,pcie=on", "-cpu", "qemu64", "-accel", "kvm",
             "-m", f"{memory_mib}M", "-nodefaults", "-no-user-config", "-nographic",
             "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]
            + list(devices) + ["-kernel", guest_elf(build), "-append", f"{cmdline} {QEMU_ECAM}"])


class GuestFailed(RuntimeError):
    pass


def parse_kv(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.strip().partition("=")
        if sep and k and " " not in k:
            out[k] = v
    return out


def run_guest(cmd, timeout=60, verbose=False):
    """Runs one VM to completion; returns the guest's key=value output (dict of str).

    Raises GuestFailed unless the guest printed status=ok."""
    if verbose:
        print("  $ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise GuestFailed(f"{cmd[0]} timed out after {timeout} s: "
                          f"{(e.stdout or b'')[-300:]!r}") from e
    out = p.stdout.decode(errors="replace")
    kv = parse_kv(out)
    if kv.get("status") != "ok":
        raise GuestFailed(f"{os.path.basename(cmd[0])} exit {p.returncode}: {out[-400:]!r} "
                          f"stderr {p.stderr.decode(errors='replace')[-300:]!r}")
    return kv


def median(values):
    v = sorted(values)
    n = len(v)
    if n == 0:
        return float("nan")
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def ratio(a, b):
    return a / b if b else float("nan")


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def text_table(header, rows):
    cols = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cols) for i in range(len(header))]
    return "\n".join("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in
                               enumerate(zip(r, widths))) for r in cols)


# --- network ------------------------------------------------------------------------------

def require_root(what):
    if os.geteuid() != 0:
        sys.exit(f"{what} needs root (tap devices, O_DIRECT files, AF_PACKET)")


class Tap:
    """A tap device (unique name) with kumo-tap-echo answering 0x88b5 frames on it.

    Use as a context manager: the responder is stopped and the device deleted on exit, also
    on errors."""

    def __init__(self, build, tag, seconds):
        self.name = f"kb{tag}{os.getpid() % 100000}"[:15]
        self.build = build
        self.seconds = int(seconds)
        self.echo = None

    def __enter__(self):
        subprocess.run(["ip", "tuntap", "add", "dev", self.name, "mode", "tap"], check=True)
        try:
            subprocess.run(["ip", "link", "set", self.name, "up"], check=True)
            self.echo = subprocess.Popen(
                [os.path.join(self.build, "kumo-tap-echo"), self.name, str(self.seconds)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            line = self.echo.stdout.readline()
            if b"ready" not in line:
                raise RuntimeError(f"kumo-tap-echo on {self.name} did not start")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.echo is not None:
            with contextlib.suppress(ProcessLookupError):
                self.echo.kill()
            self.echo.wait()
            self.echo = None
        subprocess.run(["ip", "link", "del", self.name], stderr=subprocess.DEVNULL)
        return False


def common_args(ap):
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--update-docs", action="store_true",
                    help="rewrite this benchmark's section of docs/benchmarks.md")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every command")


def reproduce_command(script, argv):
    """The command line to put in the docs: the script with the options it was run with."""
    argv = [a for a in argv if a not in ("-v", "--verbose")]
    prefix = ["scripts/kvm-test-host"] if on_test_host() else []
    return " ".join(prefix + [f"bench/{script}"] + [shlex.quote(a) for a in argv])


def on_test_host():
    """True inside the L1 KVM test host (scripts/kvm-test-host): TCG figures, ratios only."""
    return os.environ.get("KUMO_TEST_HOST_L1") == "1"


def rotated(items, n):
    """`items` rotated left by n (round n of an interleaved benchmark starts with item n)."""
    items = list(items)
    n %= len(items)
    return items[n:] + items[:n]
