"""System-simulator speed: wall time of whole inference runs at each fidelity.

Rows: Llama-2-7B FP16 and Llama-2-70B W8A16 (INT8 weights: the FP16 model does not fit 80 GB), each a
512-token prompt + 128 generated tokens, on an H100-like HBM3 system with ``hbm-baseline``, at analytical,
event and cycle fidelity. Each is run once to warm up (JIT kernels,
memoised device runs of the process) and then timed from scratch in a fresh memo (the cycle-fidelity
stream memo is cleared), so the figure is what a new point of a sweep costs in a warm worker.
Columns: wall seconds, simulated ops per wall second, wall time per simulated token.
"""
from __future__ import annotations

import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _clear_memo() -> None:
    from memsim.system import service

    service._kernel_stream.cache_clear()
    service.unloaded_read_latency_ps.cache_clear()


def run(quick: bool) -> None:
    from memsim.system.api import run_point

    hw = str(REPO / "hw_configs" / "h100_sxm.yaml")
    cases = [("llama2_7b_decode", 512, 128), ("llama2_70b_w8a16_decode", 512, 128)]
    if quick:
        cases = cases[:1]
    t0 = time.perf_counter()
    run_point(hw, "llama2-7b", fidelity="cycle", overrides={"workload.prompt_tokens": 16,
                                                            "workload.generated_tokens": 2})
    print(f"warm-up (kernels + one small run): {time.perf_counter() - t0:.2f} s\n")
    hdr = f"{'workload':24s} {'prompt+gen':>11s} {'fidelity':10s} {'ops':>9s} {'wall s':>8s} {'k ops/s':>8s} {'ms/token':>9s} {'TPOT sim':>10s}"
    print(hdr)
    print("-" * len(hdr))
    for model, p, g in cases:
        for fid in ("analytical", "event", "cycle"):
            _clear_memo()
            t1 = time.perf_counter()
            res = run_point(hw, str(REPO / "workloads" / f"{model}.yaml"), fidelity=fid)
            wall = time.perf_counter() - t1
            n = len(res.ops)
            m = res.metrics()
            print(f"{model:24s} {f'{p}+{g}':>11s} {fid:10s} {n:9,d} {wall:8.2f} {n / wall / 1e3:8.1f} "
                  f"{wall / g * 1e3:9.1f} {m['tpot_s'] * 1e3:8.3f}ms", flush=True)
