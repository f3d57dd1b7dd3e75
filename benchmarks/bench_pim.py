"""PIM benchmark: PIM commands simulated per wall second, and wall time of whole operators.

Run with ``python benchmarks/run.py --only pim`` (or ``--quick``). After a warm-up (compiling or loading
the cached kernel, timed separately) it prints, per PIM preset: the wall time of a 4096 x 4096 GEMV
(lowering + kernel), the commands the kernel timed and their rate, and the wall time of the GEMVs of one
GPT-2-XL decode step (48 layers, d = 1600: QKV 1600 -> 4800, O 1600 -> 1600, FFN 1600 -> 6400 -> 1600,
LM head 1600 -> 50257) with the simulated time of that step. Memoisation is cleared before every
measurement, so each figure is a cold simulation. The kernel-only rate (commands / kernel seconds) is
printed beside the end-to-end rate.
"""
from __future__ import annotations

import time


from memsim.pim import api
from memsim.pim.commands import compile_pim
from memsim.pim.config import get_pim_preset
from memsim.pim.kernel import run as run_kernel
from memsim.pim.lowering import lower_gemv

PRESETS = ("HBM_PIM_AquaboltXL", "PIMSimulator_HBM2_64PC", "GDDR6_AiM", "AttAcc_HBM3_PIM")
D = 1600
GPT2_XL = [(3 * D, D), (D, D), (4 * D, D), (D, 4 * D)]  # per layer (rows, cols)
LM_HEAD = (50257, D)


def _decode_step(cfg) -> tuple[float, int, int]:
    """(simulated ns, commands simulated, commands on the device) of one decode step's GEMVs."""
    sim_ns = 0.0
    n_sim = 0
    n_dev = 0
    for rows, cols in GPT2_XL:
        r = api.gemv(cfg, rows, cols)
        sim_ns += 48 * r.time_ns
        n_sim += r.simulated_commands
        n_dev += 48 * sum(v for k, v in r.commands.items() if k != "REF")
    r = api.gemv(cfg, *LM_HEAD)
    return sim_ns + r.time_ns, n_sim + r.simulated_commands, n_dev + sum(v for k, v in r.commands.items() if k != "REF")


def _kernel_rate(cfg, rows, cols, repeat) -> tuple[int, float]:
    dt = cfg.device.dtypes[0]
    prog = lower_gemv(cfg, rows, cols, dtype=dt)
    cp = compile_pim(cfg, dt)
    t0 = time.perf_counter()
    for _ in range(repeat):
        run_kernel(cp, prog.cmd, prog.first, prog.stride, prog.count, prog.row, prog.starts)
    return int(prog.cmd.shape[0]) * repeat, time.perf_counter() - t0


def run(quick: bool) -> None:
    t0 = time.perf_counter()
    api.gemv(get_pim_preset("GDDR6_AiM"), 64, 64)
    print(f"JIT warm-up (compile or load the cached PIM kernel): {time.perf_counter() - t0:.2f} s\n")
    presets = PRESETS[:2] if quick else PRESETS
    hdr = (f"{'preset':24s} {'4096x4096 wall ms':>17s} {'cmds timed':>10s} {'M cmd/s':>8s} {'kernel M cmd/s':>14s} "
           f"{'GPT-2-XL step wall ms':>21s} {'step sim us':>11s} {'device cmds':>11s}")
    print(hdr)
    print("-" * len(hdr))
    for name in presets:
        cfg = get_pim_preset(name)
        api.gemv.cache_clear()
        t1 = time.perf_counter()
        r = api.gemv(cfg, 4096, 4096)
        wall = time.perf_counter() - t1
        n_k, t_k = _kernel_rate(cfg, 4096, 4096, 3 if quick else 10)
        api.gemv.cache_clear()
        t2 = time.perf_counter()
        step_ns, n_sim, n_dev = _decode_step(cfg)
        step_wall = time.perf_counter() - t2
        print(f"{name:24s} {wall * 1e3:17.1f} {r.simulated_commands:10,d} {r.simulated_commands / wall / 1e6:8.2f} "
              f"{n_k / t_k / 1e6:14.2f} {step_wall * 1e3:21.1f} {step_ns / 1e3:11.1f} {n_dev:11,d}")
    print("\ncmds timed: commands the kernel simulated (identical pseudo-channels are simulated once); "
          "device cmds: commands issued over all pseudo-channels.")


if __name__ == "__main__":
    import sys

    run("--quick" in sys.argv)
