"""Flash benchmark: simulated page operations per wall second (``python benchmarks/run.py --only flash``).

The JIT warm-up (compiling or loading the cached kernel) is timed separately; each row then times one
API call (request splitting, kernel, statistics) on a preset and workload.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def run(quick: bool) -> None:
    from memsim.flash import api
    from memsim.flash.config import get_preset

    t0 = time.perf_counter()
    api.random_read(get_preset("MQSim_default_MLC"), 64, 4096, 8)
    print(f"JIT warm-up (compile or load cached kernel): {time.perf_counter() - t0:.2f} s\n")
    scale = 1 if quick else 8
    seq_bytes = (128 << 20) * scale
    n_rand = 25_000 * scale
    hdr = f"{'preset':24s} {'workload':28s} {'page ops':>9s} {'wall s':>7s} {'M ops/s':>8s} {'sim GB/s':>9s}"
    print(hdr)
    print("-" * len(hdr))
    total_ops = total_wall = 0.0
    for name in ("Samsung_990PRO_2TB", "Apple_M2_laptop_flash", "MQSim_default_MLC"):
        cfg = get_preset(name)
        rng = np.random.default_rng(0)
        mixed_off = api.random_offsets(cfg, n_rand, 16384, seed=1)
        mixed_kind = (rng.random(n_rand) < 0.3).astype(np.int64)
        work = [
            ("seq read 128KiB QD32", lambda: api.sequential_read(cfg, seq_bytes, 128 << 10, 32)),
            ("rand read 4KiB QD32", lambda: api.random_read(cfg, n_rand, 4096, 32)),
            ("rand read 4KiB QD512", lambda: api.random_read(cfg, n_rand, 4096, 512)),
            ("rand 16KiB 70/30 r/w QD64", lambda: api.run(cfg, mixed_off, 16384, mixed_kind, 64)),
        ]
        for label, fn in work:
            t1 = time.perf_counter()
            res = fn()
            wall = time.perf_counter() - t1
            ops = res.page_reads + res.page_programs + res.block_erases
            print(f"{name:24s} {label:28s} {ops:9,d} {wall:7.2f} {ops / wall / 1e6:8.2f} {res.bandwidth_gbps:9.2f}")
            total_ops += ops
            total_wall += wall
            sys.stdout.flush()
    print(f"\nall: {total_ops:,.0f} page operations in {total_wall:.2f} s = {total_ops / total_wall / 1e6:.2f} M ops/s")


if __name__ == "__main__":
    run("--quick" in sys.argv)
