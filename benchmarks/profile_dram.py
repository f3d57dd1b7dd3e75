"""Profiling helpers for the DRAM kernel: exact result fingerprints and A/B timing (interleaved or side by side).

Usage::

    python benchmarks/profile_dram.py fingerprint OUT.json [--n N]   # every result figure + completion cycles
    python benchmarks/profile_dram.py compare A.json B.json          # exit 1 on any difference
    python benchmarks/profile_dram.py time [--n N] [--reps R] [--kernels mod1 mod2 ...]
    python benchmarks/profile_dram.py pair A B [--rounds R] [--reps R] [--n N]   # A and B side by side

``fingerprint`` replays a prefix of each reference trace on several presets (all controller structures:
DRAMSim3 bank queues, Ramulator 2 active buffer, plain FR-FCFS through the DDR4 presets) and stores the
whole :class:`DramResult` plus a hash of every completion cycle, so that a kernel change can be checked
for identical results. ``time`` runs the benchmark rows of one or more kernel modules interleaved
(A B A B ...) and reports the best of ``reps`` per row, which is what a shared, noisy machine allows.
A kernel module is a dotted name (default ``memsim.dram.kernel``) or a path to a copy of ``kernel.py``.
The copy must take the engine's calling convention (the arena of ``KernelState``, since 2026-12-04); to
compare with an older kernel, time a checkout of that commit instead (``PYTHONPATH=<checkout>``).

``pair`` times two kernels at the same time, one child process per core, and reports B's speed over A's
per row (geometric mean and range over rounds; each child pinned to one core, the cores swapped every
round, so use an even number of rounds). On the 2-core virtual machine this was written on, the speed of
the machine drifts by up to 30 % within minutes, which both children see alike: one kernel against a
copy of itself measured 1.008-1.029 (rounds 0.993-1.070) this way, where interleaved runs of one kernel
differed by up to 1.3x. Run ``pair`` with a copy of A as B first to see the floor on the machine at hand.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from memsim.config import get_preset
from memsim.dram import engine as E
from memsim.traces import synthetic

PRESETS = ("DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch", "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch",
           "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch_RoBaRaCoCh", "DRAMSim3_DDR4_8Gb_x8_2400",
           "Ramulator2_DDR4_8Gb_x8_2400U", "HBM3_6400", "DDR5_4800", "LPDDR5_6400")
TRACES = ("seq", "rand", "mix2:1", "gemv", "rand-unloaded(QD1,20k)")


def _trace(name, n):
    addr, w = synthetic.REFERENCE_TRACES[name]()
    return addr[:n], w[:n]


def _load_kernel(spec: str):
    if spec.endswith(".py") and os.path.realpath(spec) == os.path.realpath(E.K.__file__):
        # the package's own kernel: import it as itself. Loaded under another module name, its Numba cache
        # entries (beside the source) would name that module, and every later normal import would fail.
        spec = E.K.__name__
    if spec.endswith(".py"):
        name = "kvariant_" + hashlib.md5(spec.encode()).hexdigest()[:8]
        s = importlib.util.spec_from_file_location(name, spec)
        m = importlib.util.module_from_spec(s)
        m.__package__ = "memsim.dram"  # a copy of memsim/dram/kernel.py: its relative imports resolve there
        sys.modules[name] = m
        s.loader.exec_module(m)
        return m
    return importlib.import_module(spec)


def fingerprint(out: str, n: int) -> None:
    res = {}
    for p in PRESETS:
        eng = E.DramEngine(get_preset(p))
        for tr in TRACES:
            a, w = _trace(tr, n)
            qd = 1 if tr.startswith("rand-unloaded") else 0
            r = eng.run(E.Requests(a, w), queue_depth=qd, record_requests=len(a))
            d = r.to_dict()
            d["completion_sha1"] = hashlib.sha1(np.ascontiguousarray(r.completion_cycles).tobytes()).hexdigest()
            res[f"{p}/{tr}"] = d
            print(f"{p:48s} {tr:24s} {d['sim_time_ps']:>14d} {d['completion_sha1'][:12]}", flush=True)
    with open(out, "w") as f:
        json.dump(res, f, indent=0, sort_keys=True, default=float)


def compare(a: str, b: str) -> int:
    A, B = json.load(open(a)), json.load(open(b))
    for d in (*A.values(), *B.values()):
        d.pop("controller_decisions", None)  # a cost figure of the replay, expected to change
    bad = 0
    for k in sorted(set(A) | set(B)):
        if A.get(k) != B.get(k):
            bad += 1
            da, db = A.get(k) or {}, B.get(k) or {}
            diff = [f for f in sorted(set(da) | set(db)) if da.get(f) != db.get(f)]
            print(f"DIFF {k}: {diff}")
    print(f"{len(A)} cases, {bad} differ")
    return 1 if bad else 0


def time_variants(specs, n, reps, presets, traces, json_out=None, barrier=None) -> None:
    mods = [_load_kernel(s) for s in specs]
    orig = E.K
    cases = [(p, tr, *_trace(tr, n)) for p in presets for tr in traces]
    engines = {p: E.DramEngine(get_preset(p)) for p in presets}

    def use(m, eng):  # the module's kernel build for this engine's configuration
        E.K = m
        eng.kernel = m.kernel_for(eng.timing.par) if hasattr(m, "kernel_for") else m.run_chunk

    for m in mods:  # warm-up (compile or load from cache) of every build the presets need
        t0 = time.perf_counter()
        for eng in engines.values():
            use(m, eng)
            eng.run(E.Requests(*synthetic.seq(1024)))
        print(f"warm-up {m.__name__}: {time.perf_counter() - t0:.2f} s", flush=True)
    if barrier:  # ``pair``: start timing only when the other child has finished its warm-up too
        me, other = barrier
        open(me, "w").close()
        while not os.path.exists(other):
            time.sleep(0.05)
    best = {}
    for _ in range(reps):
        for p, tr, a, w in cases:
            eng = engines[p]
            qd = 1 if tr.startswith("rand-unloaded") else 0
            for j, m in enumerate(mods):
                use(m, eng)
                t1 = time.perf_counter()
                eng.run(E.Requests(a, w), queue_depth=qd)
                dt = time.perf_counter() - t1
                key = (p, tr, j)
                best[key] = min(best.get(key, 1e9), dt)
    E.K = orig
    if json_out:
        with open(json_out, "w") as f:
            json.dump({f"{p}/{tr}": [len(a) / best[(p, tr, j)] for j in range(len(mods))]
                       for p, tr, a, w in cases}, f)
        return
    print(f"{'preset':48s} {'trace':24s} " + " ".join(f"{'M req/s ' + str(j):>11s}" for j in range(len(mods))))
    for p, tr, a, w in cases:
        print(f"{p:48s} {tr:24s} " + " ".join(f"{len(a) / best[(p, tr, j)] / 1e6:11.3f}" for j in range(len(mods))))


def pair(a, b, rounds, reps, n, presets, traces) -> None:
    """Time kernels ``a`` and ``b`` concurrently (one child each) ``rounds`` times; print B/A per row."""
    ratios, rate_a = {}, {}
    cpus = sorted(os.sched_getaffinity(0))
    ncpu = len(cpus)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            procs, outs = [], []
            for j, spec in enumerate((a, b)):
                out = os.path.join(tmp, f"r{r}_{j}.json")
                outs.append(out)
                cmd = [sys.executable, __file__, "time", "--kernels", spec, "--n", str(n), "--reps", str(reps),
                       "--presets", *presets, "--traces", *traces, "--json", out,
                       "--barrier", os.path.join(tmp, f"r{r}_{j}.ready"), os.path.join(tmp, f"r{r}_{1 - j}.ready")]
                # pinned, one core each, swapped every round: a core that runs slower than the other
                # for a while (seen here) then weighs on A and B alike over an even number of rounds
                core = (j + r) % 2 if ncpu >= 2 else None
                procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, preexec_fn=(
                    None if core is None else lambda core=core: os.sched_setaffinity(0, {cpus[core]}))))
            for pr in procs:
                if pr.wait() != 0:
                    raise SystemExit(f"pair: a timing child failed (exit {pr.returncode})")
            ra, rb = (json.load(open(o)) for o in outs)
            for k in ra:
                ratios.setdefault(k, []).append(rb[k][0] / ra[k][0])
                rate_a.setdefault(k, []).append(ra[k][0])
            print(f"round {r + 1}/{rounds}: " + " ".join(f"{v[-1]:.3f}" for v in ratios.values()), flush=True)
    # Each pair of rounds runs A and B once on each core, so the geometric mean over pairs cancels a
    # constant speed difference between the cores (seen here: up to 1.3x, which an odd number of rounds
    # would have put into the result); the range is that of the pairs, and the skew the cores' ratio.
    print(f"\n{'preset/trace':64s} {'A M req/s':>9s} {'B/A mean':>9s} {'min':>6s} {'max':>6s} {'core skew':>9s}")
    for k, v in ratios.items():
        swapped = list(zip(v[0::2], v[1::2]))  # (B/A with B on one core, then on the other)
        pairs = [(x * y) ** 0.5 for x, y in swapped]
        skew = statistics.geometric_mean([(x / y) ** 0.5 for x, y in swapped])
        print(f"{k:64s} {statistics.median(rate_a[k]) / 1e6:9.3f} {statistics.geometric_mean(pairs):9.3f} "
              f"{min(pairs):6.3f} {max(pairs):6.3f} {skew:9.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fingerprint")
    f.add_argument("out")
    f.add_argument("--n", type=int, default=1 << 17)
    c = sub.add_parser("compare")
    c.add_argument("a")
    c.add_argument("b")
    t = sub.add_parser("time")
    pp = sub.add_parser("pair")
    pp.add_argument("a")
    pp.add_argument("b")
    pp.add_argument("--rounds", type=int, default=4, help="an even number: each pair of rounds swaps the cores")
    for q in (t, pp):  # the timing options, shared by both
        q.add_argument("--n", type=int, default=1 << 18)
        q.add_argument("--reps", type=int, default=3)
        q.add_argument("--presets", nargs="+", default=["DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                                                         "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch"])
        q.add_argument("--traces", nargs="+", default=["seq", "rand"], choices=list(synthetic.REFERENCE_TRACES))
    t.add_argument("--kernels", nargs="+", default=["memsim.dram.kernel"])
    t.add_argument("--json", help=argparse.SUPPRESS)  # ``pair``'s children: rates to this file
    t.add_argument("--barrier", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.cmd == "fingerprint":
        fingerprint(args.out, args.n)
    elif args.cmd == "compare":
        return compare(args.a, args.b)
    elif args.cmd == "pair":
        if args.rounds < 2 or args.rounds % 2:
            ap.error(f"pair: --rounds must be a positive even number (each pair swaps the cores), got {args.rounds}")
        pair(args.a, args.b, args.rounds, args.reps, args.n, args.presets, args.traces)
    else:
        time_variants(args.kernels, args.n, args.reps, args.presets, args.traces, args.json, args.barrier)
    return 0


if __name__ == "__main__":
    sys.exit(main())
