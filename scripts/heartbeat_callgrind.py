#!/usr/bin/env python3
"""Instructions per group per heartbeat interval of benches/heartbeat.rs,
counted with valgrind's callgrind.

Runs the bench binary (release profile, as `cargo bench` builds it) under
callgrind for one mode at two (or more) interval counts and subtracts: the
runs differ only in the length of the measured window (same seed, same
cluster, same settling and quiescing, same checks after it), so

    Ir(I2) - Ir(I1)
    ---------------  = instructions per group per interval
     L * (I2 - I1)

for the whole idle round trip on every node (tick, mux, encode, decode,
demux, step, answer) plus the bench's own loop and clock reads. With three
or more interval counts it prints the figure for each consecutive gap too:
they agree when the window is all that differs. For quiesced it also prints
instructions per directed node pair per interval (the fixed cost of the
empty batch and its answer), from the bench's count of the pairs that share
a group.

    scripts/heartbeat_callgrind.py --mode batched --groups 1000
    scripts/heartbeat_callgrind.py --mode quiesced --groups 100000 --intervals 10 50
    scripts/heartbeat_callgrind.py --mode quiesced --groups 100000 --profile

--profile adds a third run that collects only the measured window
(`--toggle-collect` on the bench's `measured_window`; its total is printed
as a cross-check) and prints callgrind_annotate's top functions of it,
inclusive. Callgrind output files are kept in --out (default
target/callgrind), with the copy of the bench binary they ran. Runs one
valgrind at a time.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bench_binary(name="heartbeat"):
    """Build bench `name` as `cargo bench` does; return its path."""
    out = subprocess.run(
        [
            "cargo",
            "bench",
            "--bench",
            name,
            "--no-run",
            "--message-format=json-render-diagnostics",
        ],
        cwd=ROOT,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    ).stdout
    exe = None
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        t = msg.get("target", {})
        if (
            msg.get("reason") == "compiler-artifact"
            and t.get("name") == name
            and "bench" in t.get("kind", [])
            and msg.get("executable")
        ):
            exe = msg["executable"]
    if not exe:
        sys.exit(f"callgrind: cargo built no {name} bench executable")
    return exe


def total_ir(path):
    """The instruction count a callgrind output file records."""
    with open(path) as f:
        for line in f:
            m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    sys.exit(f"callgrind: no totals in {path}")


def callgrind(exe, bench_args, out, extra=(), name="heartbeat"):
    """Run bench `exe` with `bench_args` (and --json) under callgrind into
    `out`; returns (Ir, the bench's JSON). Lines the bench warns with
    (starting with WARNING or "<name> bench") are passed on."""
    cmd = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        *extra,
        exe,
        *bench_args,
        "--json",
    ]
    print("+ " + " ".join(cmd), file=sys.stderr, flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr)
        sys.exit(f"{name}_callgrind: the bench failed (exit {p.returncode})")
    for line in p.stderr.splitlines():
        if line.startswith("WARNING") or line.startswith(f"{name} bench"):
            print(line, file=sys.stderr)
    return total_ir(out), json.loads(p.stdout.strip().splitlines()[-1])


def run(exe, a, intervals, out, extra=()):
    """One heartbeat bench run under callgrind; returns (Ir, its JSON)."""
    args = ["--only", a.mode, "--nodes", str(a.nodes), "--groups", str(a.groups)]
    args += ["--replicas", str(a.replicas), "--placement", a.placement]
    args += ["--intervals", str(intervals)]
    return callgrind(exe, args, out, extra)


def main():
    ap = argparse.ArgumentParser(
        description="callgrind instructions per group per interval of the heartbeat bench"
    )
    ap.add_argument("--mode", choices=["naive", "batched", "quiesced"], required=True)
    ap.add_argument("--nodes", type=int, default=5)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--placement", default="spread", choices=["spread", "contiguous"])
    ap.add_argument(
        "--intervals",
        type=int,
        nargs="+",
        default=[10, 30],
        metavar="I",
        help="two or more interval counts, ascending (default 10 30)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="also collect only the window of the last count and annotate it",
    )
    ap.add_argument("--top", type=int, default=25, help="functions --profile shows")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "callgrind"))
    ap.add_argument("--bin", help="the bench binary (default: build it with cargo)")
    a = ap.parse_args()
    iv = a.intervals
    if len(iv) < 2 or any(x >= y for x, y in zip(iv, iv[1:])):
        sys.exit("heartbeat_callgrind: --intervals wants two or more ascending counts")
    os.makedirs(a.out, exist_ok=True)
    # Run a copy: a rebuild of the bench between the runs (someone else's
    # `cargo bench`) must not change what is measured.
    exe = os.path.join(a.out, "heartbeat-bench")
    shutil.copy2(a.bin or bench_binary(), exe)
    tag = f"{a.mode}.n{a.nodes}.l{a.groups}.k{a.replicas}.{a.placement}"

    irs, js = [], None
    for i in iv:
        ir, js = run(exe, a, i, os.path.join(a.out, f"callgrind.{tag}.i{i}.out"))
        irs.append(ir)
    pairs = js.get("directed_pairs_sharing_groups")

    print(
        f"heartbeat callgrind: {a.mode}, {a.nodes} nodes, {a.groups} groups, "
        f"{a.replicas} replicas, placement {a.placement}"
    )
    for i, ir in zip(iv, irs):
        print(f"  Ir with {i:>4} intervals: {ir:>16,}")

    def figures(i1, ir1, i2, ir2):
        per_interval = (ir2 - ir1) / (i2 - i1)
        s = (
            f"{per_interval / a.groups:,.2f} Ir / group / interval "
            f"({per_interval:,.0f} Ir / interval"
        )
        if a.mode == "quiesced" and pairs:
            s += f", {per_interval / pairs:,.0f} Ir / directed pair / interval over {pairs} pairs"
        return s + ")"

    if len(iv) > 2:
        for k in range(len(iv) - 1):
            print(
                f"  intervals {iv[k]} -> {iv[k + 1]}: "
                + figures(iv[k], irs[k], iv[k + 1], irs[k + 1])
            )
    print(f"  intervals {iv[0]} -> {iv[-1]}: " + figures(iv[0], irs[0], iv[-1], irs[-1]))
    setup = irs[0] - (irs[-1] - irs[0]) / (iv[-1] - iv[0]) * iv[0]
    print(f"  setup and checks (the rest, same in every run): {setup:,.0f} Ir")

    if a.profile:
        out = os.path.join(a.out, f"callgrind.{tag}.i{iv[-1]}.window.out")
        ir, _ = run(
            exe,
            a,
            iv[-1],
            out,
            ["--collect-atstart=no", "--toggle-collect=*measured_window*"],
        )
        print(
            f"  window alone (--toggle-collect, {iv[-1]} intervals): {ir:,} Ir = "
            f"{ir / iv[-1] / a.groups:,.2f} Ir / group / interval "
            f"({ir / iv[-1]:,.0f} Ir / interval)"
        )
        for inclusive in ("yes", "no"):
            print(
                f"  callgrind_annotate --inclusive={inclusive} {out} "
                f"(top {a.top}{', below the window' if inclusive == 'yes' else ''}):"
            )
            for l in annotate(out, inclusive, ir, a.top):
                print("    " + l[:220])


def annotate(path, inclusive, total, top):
    """callgrind_annotate's function lines, best first; inclusive ones
    without the callers of the window (which all count the whole of it)."""
    ann = subprocess.run(
        ["callgrind_annotate", f"--inclusive={inclusive}", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=True,
    ).stdout
    rows = []
    seen = False
    for l in ann.splitlines():
        if re.search(r"file:function", l):
            seen = True
            continue
        m = re.match(r"^\s*([\d,]+)\s+\(", l)
        if not (seen and m):
            continue
        if inclusive == "yes" and int(m.group(1).replace(",", "")) >= total:
            continue
        rows.append(l.strip())
        if len(rows) == top:
            break
    return rows

if __name__ == "__main__":
    main()
