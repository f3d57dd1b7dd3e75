"""Sweep throughput (points per minute): serial vs the local process pool vs Dask, on 2 workers.

``run(quick)`` prints one row per (kind, backend): points, wall seconds of a whole cold ``memsim sweep``
command in a fresh process (interpreter start, imports, validation, worker start-up, kernel loading,
simulation, writing the folders and the table), points per minute and the speed-up over serial; then,
per worker process, the wall time of its first point against the median of its later points. A spawned
worker (Dask) pays the kernel load (from the on-disk Numba cache) on its first point only; forked pool
workers inherit the kernels the driver loaded, so their first point costs what the later ones do.

Sections: ``dram`` points (random-trace replays through HBM3 with different controller queues), and,
when the system simulator is installed, ``system`` points at analytical and at event fidelity.
Every backend runs into a fresh temporary folder, so no point is skipped.
"""
from __future__ import annotations

import csv
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JOBS = 2


def _sweep(kind: str, quick: bool, fidelity: str = "analytical"):
    from memsim.sweep import parse_sweep

    if kind == "dram":
        n = 8 if quick else 24
        doc = {"name": "bench_dram", "kind": "dram",
               "base": {"hw": "hw_configs/hbm3.yaml", "trace": "rand", "requests": 10_000 if quick else 40_000},
               "axes": {"memory.controller.read_queue": [8 * (i + 1) for i in range(n)]}}
    else:
        batches = [1, 2, 4, 8] if quick else [1, 2, 4, 8, 16, 32]
        doc = {"name": f"bench_system_{fidelity}", "kind": "system",
               "base": {"hw": "hw_configs/h100_sxm.yaml", "workload": "gpt2" if quick else "workloads/llama2_7b_decode.yaml",
                        "fidelity": fidelity,
                        "set": {"workload.prompt_tokens": 32 if quick else 128,
                                "workload.generated_tokens": 4 if quick else 16}},
               "axes": {"workload.batch": batches, "memory.organization.channels": [8, 16]}}
    return parse_sweep(doc, file=f"<bench {doc['name']}>", folder=ROOT)


def _worker_times(out: Path) -> dict[str, list[float]]:
    per: dict[str, list[float]] = defaultdict(list)
    with open(out / "walltimes.csv") as fh:
        for row in csv.DictReader(fh):
            if row["how"] == "run" and row["wall_s"]:
                per[row["worker"]].append(float(row["wall_s"]))
    return per


def _bench(kind: str, quick: bool, fidelity: str = "analytical", backends=("serial", "pool", "dask")) -> None:
    import json
    import subprocess

    spec = _sweep(kind, quick, fidelity)
    label = kind if kind == "dram" else f"system/{fidelity}"
    rows = []
    base = None
    for backend in backends:
        with tempfile.TemporaryDirectory(prefix="memsim-bench-sweep-") as tmp:
            sweep_file = Path(tmp) / "sweep.json"
            sweep_file.write_text(json.dumps(spec.raw))  # JSON is YAML
            cmd = [sys.executable, "-m", "memsim", "sweep", str(sweep_file), "--out", str(Path(tmp) / "out"), "-q",
                   "--jobs", "1" if backend == "serial" else str(JOBS)]
            if backend == "dask":
                cmd.append("--local-cluster")
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if proc.returncode not in (0, 1):
                print(f"{label} {backend}: memsim sweep failed ({proc.returncode}): {proc.stderr[-2000:]}")
                continue
            per = _worker_times(Path(tmp) / "out")
            with open(Path(tmp) / "out" / "table.csv") as fh:
                statuses = [r["status"] for r in csv.DictReader(fh)]
        n = len(statuses)
        ppm = n / wall * 60
        base = base or ppm
        rows.append((backend, n, sum(st != "ok" for st in statuses), wall, ppm, ppm / base, per))
    print(f"{'kind':18s} {'backend':8s} {'workers':>7s} {'points':>6s} {'failed':>6s} {'wall s':>7s} "
          f"{'points/min':>10s} {'speed-up':>8s}")
    for backend, n, nf, wall, ppm, sp, _ in rows:
        print(f"{label:18s} {backend:8s} {1 if backend == 'serial' else JOBS:7d} {n:6d} {nf:6d} {wall:7.2f} "
              f"{ppm:10.1f} {sp:8.2f}")
    print("  per worker: first point vs the median of its later points (seconds inside the worker)")
    for backend, *_, per in rows:
        for w, ts in sorted(per.items()):
            later = statistics.median(ts[1:]) if len(ts) > 1 else float("nan")
            print(f"    {backend:8s} {w:24s} points {len(ts):3d}  first {ts[0]:6.3f}  later median {later:6.3f}")
    sys.stdout.flush()


def run(quick: bool) -> None:
    import os

    print(f"2 workers ({os.cpu_count()} cores on this machine); serial = in-process\n")
    _bench("dram", quick)
    try:
        import memsim.system.api  # noqa: F401
    except ModuleNotFoundError:
        print("\nsystem points: memsim.system.api is not installed; skipped")
        return
    if not (ROOT / "hw_configs" / "h100_sxm.yaml").exists():
        print("\nsystem points: hw_configs/h100_sxm.yaml missing; skipped")
        return
    for fidelity in ("analytical", "event"):
        print()
        _bench("system", quick, fidelity, backends=("serial", "pool"))


if __name__ == "__main__":
    run("--quick" in sys.argv)
