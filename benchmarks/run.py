"""memsim speed benchmark: simulated requests per wall second on the reference traces.

Usage::

    python benchmarks/run.py               # every section: DRAM, then each benchmarks/bench_*.py
    python benchmarks/run.py --quick       # smaller inputs (a smoke run)
    python benchmarks/run.py --only dram   # one section (dram, or the NAME of a bench_NAME.py)
    python benchmarks/run.py --only dram --repeat 3   # best of 3 replays per DRAM row (noisy machines)

Each ``benchmarks/bench_NAME.py`` module (PIM, flash, SRAM, system, sweep) has ``run(quick: bool)``,
which prints its own table after its own warm-up.

Prints one row per (configuration, trace): wall time of the replay (after JIT warm-up), simulated
requests per second, wall time per request, controller decisions per request and wall time per decision
(the kernel's cost is about decisions x time per decision), and the reference simulators' speed on the same
trace (``req_per_wall_s`` of the reference table, whole-process wall time on a 2-core machine) with the
speed-up. The JIT warm-up (compiling or loading the cached kernels) is timed and printed separately.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from memsim.config import get_preset
from memsim.dram import kernel as K
from memsim.dram.engine import DramEngine, Requests
from memsim.traces import synthetic
from memsim.validate.catalogue import dram_cases

BENCH_PRESETS = ("DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                 "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch", "DRAMSim3_DDR4_8Gb_x8_2400",
                 "Ramulator2_DDR4_8Gb_x8_2400U")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (DRAM: 1/8 of each trace)")
    ap.add_argument("--presets", nargs="*", default=list(BENCH_PRESETS), help="DRAM presets to run")
    ap.add_argument("--only", nargs="*", help="sections to run (dram and the NAME of each bench_NAME.py)")
    ap.add_argument("--repeat", type=int, default=1, metavar="N",
                    help="replay each DRAM row N times and report the fastest (default 1)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {args.repeat}")
    here = Path(__file__).resolve().parent
    extra = sorted(p.stem[len("bench_"):] for p in here.glob("bench_*.py"))
    wanted = args.only or ["dram", *extra]
    unknown = [w for w in wanted if w != "dram" and w not in extra]
    if unknown:
        ap.error(f"unknown section(s) {unknown}; known: dram, {', '.join(extra)}")
    if "dram" in wanted:
        bench_dram(args)
    sys.path.insert(0, str(here))
    for name in extra:
        if name in wanted:
            print(f"\n=== {name} ===")
            sys.stdout.flush()
            importlib.import_module(f"bench_{name}").run(args.quick)
    return 0


def bench_dram(args) -> None:
    print("=== dram ===")
    # one kernel variant per controller structure (memsim.dram.kernel.kernel_for): warm each one up
    t0 = time.perf_counter()
    engines = {p: DramEngine(get_preset(p)) for p in args.presets}
    a, w = synthetic.seq(1024)
    for eng in engines.values():
        eng.run(Requests(a, w))
    variants = len({K.structure_key(e.timing.par) for e in engines.values()})
    print(f"JIT warm-up (compile or load cached kernels, {variants} variants): {time.perf_counter() - t0:.2f} s\n")

    ref = {}
    for c in dram_cases():
        ref[(c.preset, c.trace)] = c.reference_req_per_s
    traces = ["seq", "rand", "mix2:1", "gemv", "rand-unloaded(QD1,20k)"]
    hdr = (f"{'configuration':40s} {'trace':24s} {'requests':>9s} {'wall s':>7s} {'M req/s':>8s} "
           f"{'ns/req':>7s} {'dec/req':>7s} {'ns/dec':>6s} {'ref M req/s':>11s} {'speed-up':>8s}")
    print(hdr)
    print("-" * len(hdr))
    total_req = total_wall = 0.0
    for preset in args.presets:
        eng = engines[preset]
        for tr in traces:
            addr, is_write = synthetic.REFERENCE_TRACES[tr]()
            if args.quick:
                addr, is_write = addr[: len(addr) // 8], is_write[: len(addr) // 8]
            qd = 1 if tr.startswith("rand-unloaded") else 0
            wall = float("inf")
            for _ in range(args.repeat):  # the fastest replay: the least disturbed by other load
                t1 = time.perf_counter()
                res = eng.run(Requests(addr, is_write), queue_depth=qd)
                wall = min(wall, time.perf_counter() - t1)
            dec = res.controller_decisions
            rate = len(addr) / wall
            r = ref.get((preset, tr), 0.0)
            sp = f"{rate / r:7.1f}x" if r else "       -"
            print(f"{preset:40s} {tr:24s} {len(addr):9,d} {wall:7.2f} {rate / 1e6:8.2f} "
                  f"{1e9 / rate:7.0f} {dec / len(addr):7.2f} {1e9 * wall / max(1, dec):6.0f} {r / 1e6:11.3f} {sp}")
            total_req += len(addr)
            total_wall += wall
            sys.stdout.flush()
    best = f" (fastest of {args.repeat} replays per row)" if args.repeat > 1 else ""
    print(f"\nall: {total_req:,.0f} requests in {total_wall:.1f} s = {total_req / total_wall / 1e6:.2f} M req/s{best}")


if __name__ == "__main__":
    sys.exit(main())
