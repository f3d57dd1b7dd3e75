"""Run a sweep: validate every point, skip finished ones, execute the rest on a backend, gather a table.

Output folder (``--out``, default ``results/<sweep name>``)::

    sweep.json        the expanded sweep: every point's index, axis values, hash and task (deterministic)
    points/<hash>/    one run folder per distinct point (memsim.results: resolved.json, metrics.json, the
                      runner's files such as dram.json, or error.json for a failed point; ``done`` last)
    table.parquet     one row per point, sorted by point index: point, hash, status, the axis values,
    table.csv         the runner's standard metrics, error (empty when ok); byte-identical across reruns
    errors.csv        point, hash, axis values, error type and message of every failed point (header only
                      when none failed)
    walltimes.csv     per point: wall seconds, worker, whether it was run now or found done (not
                      deterministic, hence not in the table)

Backends (what is modelled / simplified):

* ``serial`` (``jobs=1``): in this process.
* ``pool`` (default): a ``concurrent.futures`` process pool of ``jobs`` workers (default: every core),
  started once and reused for every point, so no worker loads the Numba kernels more than once. On Linux,
  while the driver has a single thread, workers are *forked* after the driver has loaded the kernels
  (the runner's ``warm``), so they start with the kernels in memory; otherwise (another thread running,
  macOS, Windows) they are *spawned* and each loads the kernels from their on-disk cache on its first
  point, and a script calling :func:`run_sweep` needs the usual ``if __name__ == "__main__":`` guard.
  ``MEMSIM_SWEEP_START_METHOD`` forces fork / spawn / forkserver. A worker that dies (out of memory, a
  native crash) stops the sweep with an error; finished points are kept and a rerun resumes.
* ``dask``: a ``distributed`` client on ``scheduler`` (``tcp://host:8786``) or on a ``LocalCluster``
  started here (``local_cluster=True``; ``processes=False`` runs threads in this process). Workers must
  be able to import memsim and read the input files at the same absolute paths (a shared filesystem or the
  same checkout); results travel back to this process, which alone writes the output folder, so the
  workers need no access to it.

Workers only compute; the driver writes each point's folder as soon as the point returns, atomically.
Killing the driver (even with SIGKILL) loses at most the points in flight; a rerun cleans the leftovers,
skips every complete folder and re-runs failed points (``retry_failed=False`` keeps them).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import secrets
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.errors import MemsimError
from memsim.results import (canonical_json, clean_stale, input_hash, is_complete, read_run, run_status,
                            to_jsonable, write_run_folder)
from memsim.sweep.spec import SweepSpec, load_sweep, validate_sweep

__all__ = ["run_sweep", "SweepReport", "execute_point", "gather_table", "TABLE_PARQUET", "TABLE_CSV"]

TABLE_PARQUET, TABLE_CSV, ERRORS_CSV, WALLTIMES_CSV, SWEEP_JSON = (
    "table.parquet", "table.csv", "errors.csv", "walltimes.csv", "sweep.json")
POINTS_DIR = "points"
#: Seconds to wait for a Dask scheduler to answer.
DASK_CONNECT_TIMEOUT_S = 30


@dataclass
class SweepReport:
    out: Path
    table: Any  # pandas.DataFrame
    n_points: int
    n_unique: int
    n_run: int
    n_skipped: int
    n_failed: int
    backend: str
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.n_failed == 0


# ----------------------------------------------------------------------------------------------------
# The worker side
# ----------------------------------------------------------------------------------------------------


def execute_point(runner: Any, task: Mapping) -> dict:
    """Run one point; never raises for a failing point (the error is returned, to be recorded)."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"worker": f"{socket.gethostname()}:{os.getpid()}"}
    try:
        res = runner.run(task)
        from memsim.sweep.runners import flatten_metrics

        out.update(status="ok", metrics=flatten_metrics(res.metrics),
                   files={str(k): (v.encode() if isinstance(v, str) else bytes(v)) for k, v in res.files.items()})
    except Exception as exc:  # noqa: BLE001 -- any failure of one point is recorded, the sweep goes on
        out.update(status="failed", error={"type": type(exc).__name__, "message": str(exc),
                                           "input_error": isinstance(exc, MemsimError),
                                           "traceback": traceback.format_exc()})
    out["wall_s"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------------------------------
# Backends: each yields (key, outcome) as points complete
# ----------------------------------------------------------------------------------------------------

Job = tuple[str, Any, dict]  # key (hash), runner, task


def _serial(jobs: list[Job], n: int) -> Iterator[tuple[str, dict]]:
    for key, runner, task in jobs:
        yield key, execute_point(runner, task)


def _died(exc: BaseException) -> dict:
    return {"status": "failed", "wall_s": math.nan, "worker": "?",
            "error": {"type": type(exc).__name__, "message": f"the worker running this point died: {exc}",
                      "input_error": False, "traceback": ""}}


def _start_method() -> str:
    """fork on Linux while this process has a single thread (workers then inherit the loaded modules and
    kernels, and scripts need no main guard); spawn otherwise. MEMSIM_SWEEP_START_METHOD forces one."""
    import threading

    forced = os.environ.get("MEMSIM_SWEEP_START_METHOD")
    if forced:
        if forced not in ("fork", "spawn", "forkserver"):
            raise MemsimError(f"MEMSIM_SWEEP_START_METHOD must be fork, spawn or forkserver, got {forced!r}")
        return forced
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


def _pool(jobs: list[Job], n: int) -> Iterator[tuple[str, dict]]:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from concurrent.futures.process import BrokenProcessPool

    method = _start_method()
    if method == "fork" and jobs:
        warm = getattr(jobs[0][1], "warm", None)
        if callable(warm):  # load the kernels once here: the forked workers inherit them
            warm(jobs[0][2])
    ex = ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context(method))
    try:
        futs = {ex.submit(execute_point, runner, task): key for key, runner, task in jobs}
        for fut in as_completed(futs):
            try:
                yield futs[fut], fut.result()
            except BrokenProcessPool:
                raise MemsimError(
                    "the local process pool broke: a worker process died (out of memory, a crash in native "
                    "code, or a script that calls run_sweep without the `if __name__ == \"__main__\":` guard "
                    "that spawned workers need). Finished points are kept; run the sweep again to resume "
                    "(--jobs 1 runs in-process).") from None
            except Exception as exc:  # the task or its result did not pickle
                yield futs[fut], _died(exc)
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def _dask(jobs: list[Job], n: int, scheduler: str | None, local_cluster: bool,
          processes: bool) -> Iterator[tuple[str, dict]]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise MemsimError("the Dask backend needs the 'distributed' package (pip install distributed)") from None
    cluster = None
    try:
        if local_cluster:
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes,
                                   dashboard_address=None, silence_logs=40)
            client = Client(cluster)
        else:
            try:
                client = Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise MemsimError(f"--scheduler {scheduler}: cannot connect to the Dask scheduler ({exc})") from None
        try:
            futs = {}
            token = secrets.token_hex(4)
            for key, runner, task in jobs:
                f = client.submit(execute_point, runner, task, key=f"memsim-point-{key}-{token}", pure=False)
                futs[f] = key
            for fut in as_completed(list(futs)):
                try:
                    yield futs[fut], fut.result()
                except Exception as exc:  # KilledWorker, a lost connection ...
                    yield futs[fut], _died(exc)
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


# ----------------------------------------------------------------------------------------------------
# The driver
# ----------------------------------------------------------------------------------------------------


class _Primed:
    """Iterate a backend's stream after pulling its first item now (so the backend starts here)."""

    def __init__(self, it: Iterator):
        self._it = iter(it)
        self._first = []
        try:
            self._first.append(next(self._it))
        except StopIteration:
            pass

    def __iter__(self):
        yield from self._first
        self._first = []
        yield from self._it


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _progress_bar(total: int, initial: int, enabled: bool, desc: str):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="pt", desc=desc, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)


def run_sweep(sweep: str | Path | SweepSpec, out: str | Path | None = None, *, jobs: int | None = None,
              scheduler: str | None = None, local_cluster: bool = False, dask_processes: bool = True,
              progress: bool | None = None, retry_failed: bool = True, runners: Mapping | None = None,
              log: Callable[[str], None] | None = None) -> SweepReport:
    """Validate, run and gather a sweep (see the module docstring); returns a :class:`SweepReport`.

    Parameters
    ----------
    sweep : path or SweepSpec
    out : path, optional
        Output folder; default ``results/<sweep name>`` under the current directory.
    jobs : int, optional
        Worker processes (pool) or LocalCluster workers; default every core; 1 runs serially in-process
        (unless a Dask backend is asked for).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``).
    local_cluster : bool
        Start a Dask LocalCluster with ``jobs`` workers (``dask_processes=False``: threads in this process).
    retry_failed : bool
        Re-run points whose folder records a failure (default); otherwise keep the recorded failure.
    runners : mapping, optional
        Kind -> runner, replacing :data:`memsim.sweep.runners.POINT_RUNNERS` (tests inject fakes here).
    """
    from memsim.sweep.runners import POINT_RUNNERS

    t_start = time.perf_counter()
    log = log or (lambda msg: print(msg, file=sys.stderr))
    registry = runners or POINT_RUNNERS
    spec = sweep if isinstance(sweep, SweepSpec) else load_sweep(sweep, runners=registry)
    if scheduler and local_cluster:
        raise MemsimError("give either --scheduler or --local-cluster, not both")
    runner = registry[spec.kind]
    resolved = validate_sweep(spec, registry)  # raises before anything runs
    hashes = [input_hash(r.inputs) for r in resolved]
    out = Path(out) if out is not None else Path("results") / spec.name
    points_dir = out / POINTS_DIR
    points_dir.mkdir(parents=True, exist_ok=True)
    clean_stale(points_dir)

    sweep_doc = {"name": spec.name, "kind": spec.kind, "source_file": spec.source_file,
                 "axes": list(spec.axis_keys), "base": spec.base,
                 "points": [{"index": p.index, "hash": h, "values": p.values, "task": r.task}
                            for p, h, r in zip(spec.points, hashes, resolved)]}
    _atomic_write(out / SWEEP_JSON, canonical_json(sweep_doc, indent=1))

    unique: dict[str, Any] = {}
    label_of: dict[str, Any] = {}
    for p, h, r in zip(spec.points, hashes, resolved):
        unique.setdefault(h, r)
        label_of.setdefault(h, p)
    todo, skipped = [], []
    for h, r in unique.items():
        st = run_status(points_dir / h)
        if st == "ok" or (st == "failed" and not retry_failed):
            skipped.append(h)
        else:
            todo.append((h, runner, r.task))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not todo:
        backend, n_workers = "none", 0
    elif scheduler or local_cluster:
        backend, n_workers = "dask", max(1, jobs or cores)
    elif jobs == 1 or len(todo) == 1:
        backend, n_workers = "serial", 1
    else:
        backend, n_workers = "pool", max(1, min(jobs or cores, len(todo)))
    where = {"dask": f"Dask ({scheduler or f'LocalCluster, {n_workers} workers'})",
             "pool": f"{n_workers} local processes", "serial": "this process", "none": "-"}[backend]
    log(f"memsim sweep {spec.name}: {len(spec.points)} points ({len(unique)} distinct), {len(skipped)} already "
        f"done, {len(todo)} to run on {where}; results in {out}")

    if backend == "dask":
        stream = _dask(todo, n_workers, scheduler, local_cluster, dask_processes)
    elif backend == "pool":
        stream = _pool(todo, n_workers)
    else:
        stream = _serial(todo, n_workers)
    walls: dict[str, tuple[float, str, str]] = {h: (math.nan, "", "done before") for h in skipped}
    show = progress if progress is not None else sys.stderr.isatty()
    stream = _Primed(stream)  # starts the backend (forks the workers) before the bar starts a thread
    bar = _progress_bar(len(unique), len(skipped), show and bool(todo), spec.name)
    n_failed_now = 0
    try:
        for h, outcome in stream:
            inputs = unique[h].inputs
            if outcome["status"] == "ok":
                files = dict(outcome["files"])
                metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                           for k, v in outcome["metrics"].items()}
                files["metrics.json"] = canonical_json(metrics, indent=1)
                write_run_folder(points_dir, inputs, files, replace=True)
            else:
                n_failed_now += 1
                err = outcome["error"]
                write_run_folder(points_dir, inputs, {"error.json": canonical_json(err, indent=1)},
                                 status="failed", replace=True)
                if bar is None:
                    first = label_of[h]
                    log(f"  point {first.index} ({first.label()}) failed: {err['type']}: "
                        f"{err['message'].splitlines()[0] if err['message'] else ''}")
            walls[h] = (outcome.get("wall_s", math.nan), outcome.get("worker", ""), "run")
            if bar is not None:
                bar.update(1)
                if outcome["status"] != "ok":
                    bar.set_postfix(failed=n_failed_now)
    finally:
        if bar is not None:
            bar.close()

    table, errors = gather_table(spec, hashes, points_dir, runner)
    _write_table(out, table, errors, spec)
    _write_walltimes(out, spec, hashes, walls)
    n_failed = int((table["status"] != "ok").sum()) if len(table) else 0
    wall = time.perf_counter() - t_start
    log(f"memsim sweep {spec.name}: {len(table)} rows in {out / TABLE_PARQUET} (and .csv); "
        + (f"{n_failed} failed, see {out / ERRORS_CSV}" if n_failed else "all points ok") + f"; {wall:.1f} s")
    return SweepReport(out=out, table=table, n_points=len(spec.points), n_unique=len(unique), n_run=len(todo),
                       n_skipped=len(skipped), n_failed=n_failed, backend=backend, wall_s=wall)


def _axis_column(values: list) -> list:
    """Axis values as one Parquet-friendly column: a single scalar type, else all as JSON text."""
    present = [v for v in values if v is not None]
    kinds = {type(v) for v in present}
    if kinds <= {int} or kinds <= {float} or kinds <= {str} or kinds <= {bool}:
        return values
    if kinds <= {int, float}:
        return [None if v is None else float(v) for v in values]
    return [None if v is None else (v if isinstance(v, str) else json.dumps(to_jsonable(v), sort_keys=True))
            for v in values]


def gather_table(spec: SweepSpec, hashes: list[str], points_dir: Path, runner: Any):
    """(table, errors) DataFrames for the sweep from its point folders, rows in point order."""
    import pandas as pd

    metrics_by_hash: dict[str, tuple[str, dict, dict | None]] = {}
    for h in dict.fromkeys(hashes):
        folder = points_dir / h
        if not is_complete(folder):
            metrics_by_hash[h] = ("missing", {}, {"type": "Missing", "message": "no complete result folder"})
            continue
        run = read_run(folder, load=False, verify=False)
        if run["status"] == "ok":
            metrics_by_hash[h] = ("ok", run["json"].get("metrics.json", {}), None)
        else:
            metrics_by_hash[h] = ("failed", {}, run["json"].get("error.json", {}))
    std = list(getattr(runner, "METRICS", ()))
    extra = sorted({k for st, m, _ in metrics_by_hash.values() for k in m} - set(std))
    metric_cols = [c for c in std if any(c in m for _, m, _ in metrics_by_hash.values()) or not extra] + extra
    axis_cols = list(spec.axis_keys)
    rename = {c: (f"metric.{c}" if c in axis_cols or c in ("point", "hash", "status", "error") else c)
              for c in metric_cols}
    cols: dict[str, list] = {"point": [], "hash": [], "status": []}
    for a in axis_cols:
        cols[a] = []
    for c in metric_cols:
        cols[rename[c]] = []
    cols["error"] = []
    err_rows = []
    for p, h in zip(spec.points, hashes):
        st, m, err = metrics_by_hash[h]
        cols["point"].append(p.index)
        cols["hash"].append(h)
        cols["status"].append(st)
        for a in axis_cols:
            cols[a].append(p.values.get(a))
        for c in metric_cols:
            v = m.get(c)
            cols[rename[c]].append(math.nan if v is None and st != "ok" else v)
        msg = "" if err is None else f"{err.get('type', 'Error')}: {err.get('message', '')}"
        cols["error"].append(msg)
        if err is not None:
            err_rows.append({"point": p.index, "hash": h, **{a: p.values.get(a) for a in axis_cols},
                             "error_type": err.get("type", ""), "message": err.get("message", "")})
    for a in axis_cols:
        cols[a] = _axis_column(cols[a])
    table = pd.DataFrame(cols)
    for c in metric_cols:
        raw = cols[rename[c]]
        present = [v for v in raw if not (v is None or (isinstance(v, float) and math.isnan(v)))]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in raw]
            table[rename[c]] = pd.array([None if m else v for v, m in zip(raw, missing)],
                                        dtype="Int64")  # counts stay integers beside failed rows
        elif present and all(isinstance(v, str) for v in present):
            table[rename[c]] = pd.array([v if isinstance(v, str) else None for v in raw], dtype=object)
    errors = pd.DataFrame(err_rows, columns=["point", "hash", *axis_cols, "error_type", "message"])
    for a in axis_cols:
        errors[a] = _axis_column(list(errors[a]))
    return table, errors


def _write_table(out: Path, table, errors, spec: SweepSpec) -> None:
    buf = io.BytesIO()
    table.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
    _atomic_write(out / TABLE_PARQUET, buf.getvalue())
    _atomic_write(out / TABLE_CSV, table.to_csv(index=False, lineterminator="\n").encode())
    _atomic_write(out / ERRORS_CSV, errors.to_csv(index=False, lineterminator="\n").encode())


def _write_walltimes(out: Path, spec: SweepSpec, hashes: list[str], walls: Mapping) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["point", "hash", "wall_s", "worker", "how"])
    for p, h in zip(spec.points, hashes):
        wall, worker, how = walls.get(h, (math.nan, "", "duplicate"))
        w.writerow([p.index, h, "" if math.isnan(wall) else f"{wall:.4f}", worker, how])
    _atomic_write(out / WALLTIMES_CSV, buf.getvalue().encode())


def load_table(out: str | Path):
    """The gathered table of a sweep output folder (or a path to its table.parquet / .csv)."""
    import pandas as pd

    p = Path(out)
    if p.is_dir():
        p = p / TABLE_PARQUET
    if not p.exists():
        raise MemsimError(f"{p}: no sweep table here (run `memsim sweep` first)")
    return pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
