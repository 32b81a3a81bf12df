#!/usr/bin/env python3
"""Instructions per committed proposal of benches/commit_path.rs, counted
with valgrind's callgrind.

Runs the bench binary (release profile, as `cargo bench` builds it) under
callgrind at two (or more) round counts and subtracts: the runs differ
only in the number of measured rounds (same seed, same cluster, same
warm-up, same checks after it), so

    Ir(R2) - Ir(R1)
    ------------------------  = instructions per commit
    C * (R2 - R1)

where C is the commits per round (--active x --per-group), for the whole
path on every node: proposal, ready, WAL batch and write (on the
in-memory file system), encode, decode, step, the followers' answers,
commit, apply, advance, plus the bench's own loop. --per-group 1 is the
shape of a cluster at mid load (about one proposal per group per pass),
larger values the shape near saturation.

    scripts/commit_callgrind.py --per-group 1
    scripts/commit_callgrind.py --per-group 8 --active 250 --profile

--profile adds a run that collects only the measured rounds
(`--toggle-collect` on the bench's `measured_window`) and prints
callgrind_annotate's top functions of it. Output files are kept in --out
(default target/callgrind).
"""

import argparse
import os
import shutil
import sys

from heartbeat_callgrind import ROOT, annotate, bench_binary, callgrind


def run(exe, a, rounds, out, extra=()):
    """One commit_path bench run under callgrind; returns (Ir, its JSON)."""
    args = ["--nodes", str(a.nodes), "--groups", str(a.groups), "--replicas", str(a.replicas)]
    args += ["--per-group", str(a.per_group), "--rounds", str(rounds)]
    if a.active:
        args += ["--active", str(a.active)]
    if a.no_wal:
        args.append("--no-wal")
    return callgrind(exe, args, out, extra, name="commit_path")


def main():
    ap = argparse.ArgumentParser(
        description="callgrind instructions per commit of the commit_path bench"
    )
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--active", type=int, help="groups proposed to per round (default all)")
    ap.add_argument("--per-group", type=int, default=1)
    ap.add_argument("--no-wal", action="store_true")
    ap.add_argument(
        "--rounds",
        type=int,
        nargs="+",
        default=[10, 30],
        metavar="R",
        help="two or more round counts, ascending (default 10 30)",
    )
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "callgrind"))
    ap.add_argument("--bin", help="the bench binary (default: build it with cargo)")
    a = ap.parse_args()
    rs = a.rounds
    if len(rs) < 2 or any(x >= y for x, y in zip(rs, rs[1:])):
        sys.exit("commit_callgrind: --rounds wants two or more ascending counts")
    os.makedirs(a.out, exist_ok=True)
    exe = os.path.join(a.out, "commit-path-bench")
    shutil.copy2(a.bin or bench_binary("commit_path"), exe)
    tag = (
        f"commit.n{a.nodes}.l{a.groups}.k{a.replicas}.a{a.active or a.groups}"
        f".p{a.per_group}{'.nowal' if a.no_wal else ''}"
    )
    irs, js = [], None
    for r in rs:
        ir, js = run(exe, a, r, os.path.join(a.out, f"callgrind.{tag}.r{r}.out"))
        irs.append(ir)
    per_round = js["active"] * js["per_group"]
    print(
        f"commit callgrind: {a.nodes} nodes, {a.groups} groups x {a.replicas} replicas, "
        f"{js['active']} groups x {a.per_group} proposal(s) per round, "
        f"{'no WAL' if a.no_wal else 'WAL on the in-memory file system'}"
    )
    for r, ir in zip(rs, irs):
        print(f"  Ir with {r:>4} rounds: {ir:>16,}")

    def figures(r1, ir1, r2, ir2):
        per = (ir2 - ir1) / (r2 - r1) / per_round
        return f"{per:,.0f} Ir / commit ({per / a.nodes:,.0f} per node)"

    if len(rs) > 2:
        for k in range(len(rs) - 1):
            print(f"  rounds {rs[k]} -> {rs[k + 1]}: " + figures(rs[k], irs[k], rs[k + 1], irs[k + 1]))
    print(f"  rounds {rs[0]} -> {rs[-1]}: " + figures(rs[0], irs[0], rs[-1], irs[-1]))
    print(f"  messages / commit {js['messages_per_commit']}, bytes / commit {js['bytes_per_commit']}")

    if a.profile:
        out = os.path.join(a.out, f"callgrind.{tag}.r{rs[-1]}.window.out")
        ir, _ = run(
            exe, a, rs[-1], out, ["--collect-atstart=no", "--toggle-collect=*measured_window*"]
        )
        print(
            f"  window alone (--toggle-collect, {rs[-1]} rounds): {ir:,} Ir = "
            f"{ir / rs[-1] / per_round:,.0f} Ir / commit"
        )
        for inclusive in ("yes", "no"):
            print(f"  callgrind_annotate --inclusive={inclusive} {out} (top {a.top}):")
            for l in annotate(out, inclusive, ir, a.top):
                print("    " + l[:220])


if __name__ == "__main__":
    main()
