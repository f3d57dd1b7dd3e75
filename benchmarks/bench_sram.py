"""SRAM benchmark: simulated bank accesses per wall second (``python benchmarks/run.py --only sram``).

The JIT warm-up is timed separately; each row times one API call (address mapping, kernel, statistics).
"""
from __future__ import annotations

import sys
import time

import numpy as np


def run(quick: bool) -> None:
    from memsim.config import yamltree as yt
    from memsim.sram import api
    from memsim.sram.config import parse_section

    cfg = yt.load_block({"preset": "CACTI7_128KiB_22nm", "organization": {"capacity": "2MiB", "banks": 16}},
                        parse_section, key="sram", file="<bench>")
    t0 = time.perf_counter()
    api.access(cfg, np.arange(64) * 64)
    print(f"JIT warm-up (compile or load cached kernel): {time.perf_counter() - t0:.2f} s\n")
    n = 1_000_000 if quick else 8_000_000
    w = cfg.width_bytes
    words = cfg.capacity_bytes // w
    rng = np.random.default_rng(0)
    work = [
        ("sequential (conflict-free)", np.arange(n) % words * w),
        ("stride = banks (one bank)", np.arange(n) * cfg.banks % words * w),
        ("uniform random", rng.integers(0, words, n) * w),
    ]
    hdr = f"{'config':22s} {'pattern':28s} {'accesses':>10s} {'wall s':>7s} {'M acc/s':>8s} {'of peak':>8s}"
    print(hdr)
    print("-" * len(hdr))
    for label, addr in work:
        t1 = time.perf_counter()
        res = api.access(cfg, addr)
        wall = time.perf_counter() - t1
        print(f"{'16 x 128KiB 22nm':22s} {label:28s} {n:10,d} {wall:7.2f} {n / wall / 1e6:8.2f} "
              f"{100 * res.fraction_of_peak:7.1f}%")
        sys.stdout.flush()


if __name__ == "__main__":
    run("--quick" in sys.argv)
