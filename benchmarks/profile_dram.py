"""Profiling helpers for the DRAM kernel: exact result fingerprints and interleaved A/B timing.

Usage::

    python benchmarks/profile_dram.py fingerprint OUT.json [--n N]   # every result figure + completion cycles
    python benchmarks/profile_dram.py compare A.json B.json          # exit 1 on any difference
    python benchmarks/profile_dram.py time [--n N] [--reps R] [--kernels mod1 mod2 ...]

``fingerprint`` replays a prefix of each reference trace on several presets (all controller structures:
DRAMSim3 bank queues, Ramulator 2 active buffer, plain FR-FCFS through the DDR4 presets) and stores the
whole :class:`DramResult` plus a hash of every completion cycle, so that a kernel change can be checked
for identical results. ``time`` runs the benchmark rows of one or more kernel modules interleaved
(A B A B ...) and reports the best of ``reps`` per row, which is what a shared, noisy machine allows.
A kernel module is a dotted name (default ``memsim.dram.kernel``) or a path to a copy of ``kernel.py``.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import json
import sys
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
    if spec.endswith(".py"):
        name = "kvariant_" + hashlib.md5(spec.encode()).hexdigest()[:8]
        s = importlib.util.spec_from_file_location(name, spec)
        m = importlib.util.module_from_spec(s)
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


def time_variants(specs, n, reps, presets, traces) -> None:
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
    print(f"{'preset':48s} {'trace':24s} " + " ".join(f"{'M req/s ' + str(j):>11s}" for j in range(len(mods))))
    for p, tr, a, w in cases:
        print(f"{p:48s} {tr:24s} " + " ".join(f"{len(a) / best[(p, tr, j)] / 1e6:11.3f}" for j in range(len(mods))))


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
    t.add_argument("--n", type=int, default=1 << 18)
    t.add_argument("--reps", type=int, default=3)
    t.add_argument("--kernels", nargs="+", default=["memsim.dram.kernel"])
    t.add_argument("--presets", nargs="+", default=["DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                                                     "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch"])
    t.add_argument("--traces", nargs="+", default=["seq", "rand"])
    args = ap.parse_args(argv)
    if args.cmd == "fingerprint":
        fingerprint(args.out, args.n)
    elif args.cmd == "compare":
        return compare(args.a, args.b)
    else:
        time_variants(args.kernels, args.n, args.reps, args.presets, args.traces)
    return 0


if __name__ == "__main__":
    sys.exit(main())
