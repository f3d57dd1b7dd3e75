"""memsim sweep: expansion, validation before work, determinism, failures, resume after SIGKILL, Dask."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from memsim.cli import main
from memsim.results import is_complete, read_run
from memsim.sweep import SweepError, load_sweep, run_sweep
from memsim.sweep.execute import execute_point

ROOT = Path(__file__).resolve().parents[1]
HBM3 = str(ROOT / "hw_configs" / "hbm3.yaml")


def write_sweep(tmp_path: Path, doc: dict, name: str = "sweep.yaml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def small(axes=None, **extra) -> dict:
    doc = {"kind": "dram", "base": {"hw": HBM3, "trace": "rand", "requests": 4000},
           "axes": axes if axes is not None else {"memory.organization.channels": [8, 16],
                                                  "memory.controller.row_policy": ["open", "closed"]}}
    doc.update(extra)
    return doc


# ---------------------------------------------------------------------------------------------------- spec


def test_expansion_product_zip_points_order(tmp_path):
    doc = small(axes={"memory.organization.channels": [8, 16]},
                zip=[{"memory.controller.row_policy": ["open", "closed"], "queue_depth": [0, 4]}],
                points=[{"trace": "seq"}, {"trace": "rand", "requests": 2000}])
    spec = load_sweep(write_sweep(tmp_path, doc))
    assert len(spec.points) == 2 * 2 * 2
    assert spec.axis_keys == ("memory.organization.channels", "memory.controller.row_policy", "queue_depth",
                              "trace", "requests")
    p = spec.points[5]  # channels 16 (slowest), zip entry 0, points entry 1
    assert p.values == {"memory.organization.channels": 16, "memory.controller.row_policy": "open",
                        "queue_depth": 0, "trace": "rand", "requests": 2000}
    assert p.origin["queue_depth"] == "zip[0].queue_depth[0]" and p.origin["requests"] == "points[1].requests"
    assert "requests" not in spec.points[4].values  # a points entry without a key keeps the base value


@pytest.mark.parametrize("doc, where, what", [
    ({"kind": "dram", "base": {"hw": HBM3, "trace": "rand"}, "axis": {}}, "axis", "did you mean 'axes'"),
    ({"kind": "nope"}, "kind", "unknown kind"),
    ({"kind": "dram", "base": {"hw": HBM3, "trace": "rand", "reqests": 5}}, "base.reqests", "did you mean 'requests'"),
    ({"kind": "dram", "base": {"hw": HBM3, "trace": "rand"}, "axes": {"queue_depth": []}}, "axes.queue_depth",
     "non-empty list"),
    ({"kind": "dram", "base": {"hw": HBM3, "trace": "rand"}, "zip": [{"queue_depth": [1, 2], "requests": [5]}]},
     "zip[0]", "equal lengths"),
    ({"kind": "dram", "base": {"hw": HBM3, "trace": "rand"}, "axes": {"queue_depth": [1]},
      "points": [{"queue_depth": 2}]}, "points", "given twice"),
])
def test_malformed_sweep_files(tmp_path, doc, where, what):
    path = write_sweep(tmp_path, doc)
    with pytest.raises(SweepError) as ei:
        load_sweep(path)
    assert str(ei.value).startswith(f"{path}: {where}: ") and what in str(ei.value)


def test_every_point_validated_before_anything_runs(tmp_path, monkeypatch):
    doc = small(axes={"memory.organization.channels": [8, 16, 12], "memory.controller.row_policy": ["open", "shut"]})
    path = write_sweep(tmp_path, doc)
    ran = []
    monkeypatch.setattr("memsim.sweep.execute.execute_point", lambda *a: ran.append(a))
    out = tmp_path / "out"
    with pytest.raises(SweepError) as ei:
        run_sweep(path, out, jobs=1, progress=False, log=lambda m: None)
    msg = str(ei.value)
    # 12 channels (not a power of two) in 2 points, 'shut' in 3 points: 4 invalid of 6 (one has both)
    assert "4 of 6 sweep points are invalid; nothing was run" in msg
    assert f"{path}: axes.memory.organization.channels[2]: 12: " in msg
    assert f"{path}: axes.memory.controller.row_policy[1]: 'shut': " in msg
    assert not ran and not out.exists()


def test_base_setting_errors_name_the_base(tmp_path):
    path = write_sweep(tmp_path, {"kind": "dram", "base": {"hw": HBM3, "trace": "no-such-trace"},
                                  "axes": {"queue_depth": [0, -1]}})
    with pytest.raises(SweepError) as ei:
        run_sweep(path, tmp_path / "out", jobs=1, progress=False, log=lambda m: None)
    msg = str(ei.value)
    assert f"{path}: base.trace: trace file not found: no-such-trace" in msg and "reference traces: seq" in msg
    assert main(["sweep", str(path), "--out", str(tmp_path / "o2"), "-q"]) == 2


# ---------------------------------------------------------------------------------------------------- runs


def test_determinism_pool_vs_serial_and_skip(tmp_path):
    doc = small()
    doc["base"]["trace"] = "seq"
    path = write_sweep(tmp_path, doc)
    a = run_sweep(path, tmp_path / "a", jobs=1, progress=False, log=lambda m: None)
    b = run_sweep(path, tmp_path / "b", jobs=2, progress=False, log=lambda m: None)
    assert (a.backend, b.backend) == ("serial", "pool") and a.ok and b.ok
    for f in ("table.parquet", "table.csv", "errors.csv", "sweep.json"):
        if f != "sweep.json":
            assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    for h in a.table["hash"]:
        for f in ("dram.json", "metrics.json", "resolved.json", "done"):
            assert (tmp_path / "a" / "points" / h / f).read_bytes() == (tmp_path / "b" / "points" / h / f).read_bytes()
    t = a.table
    assert list(t.columns[:5]) == ["point", "hash", "status", "memory.organization.channels",
                                   "memory.controller.row_policy"]
    assert list(t["point"]) == [0, 1, 2, 3] and set(t["status"]) == {"ok"}
    assert {"bandwidth_GBps", "avg_read_latency_ns", "p99_read_latency_ns", "row_hit_rate", "energy_pj_per_bit",
            "sim_time_us"} <= set(t.columns)
    assert (t["n_requests"] == 4000).all() and t["hash"].is_unique
    # closed pages cost row hits on a sequential stream; more channels give more bandwidth
    assert (t[t["memory.controller.row_policy"] == "closed"]["row_hit_rate"] <
            t[t["memory.controller.row_policy"] == "open"]["row_hit_rate"].values).all()
    assert t["bandwidth_GBps"].iloc[2] > t["bandwidth_GBps"].iloc[0]
    before = (tmp_path / "a" / "table.parquet").read_bytes()
    again = run_sweep(path, tmp_path / "a", jobs=1, progress=False, log=lambda m: None)
    assert (again.n_run, again.n_skipped) == (0, 4)
    assert (tmp_path / "a" / "table.parquet").read_bytes() == before


def test_failing_point_recorded_others_finish(tmp_path):
    # 4 channels halve the HBM3 stack to 2 GiB: the rand trace's 4 GiB window does not fit
    path = write_sweep(tmp_path, small(axes={"memory.organization.channels": [4, 8]}))
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--jobs", "1", "-q"]) == 1
    t = pd.read_parquet(out / "table.parquet")
    assert list(t["status"]) == ["failed", "ok"]
    assert "beyond the device capacity" in t["error"][0] and t["error"][1] == ""
    assert pd.isna(t["bandwidth_GBps"][0]) and t["bandwidth_GBps"][1] > 0
    errs = pd.read_csv(out / "errors.csv")
    assert list(errs["point"]) == [0] and errs["error_type"][0] == "TraceError"
    run = read_run(out / "points" / t["hash"][0])
    assert run["status"] == "failed" and "Traceback" in run["json"]["error.json"]["traceback"]
    # failed points are retried on the next run (and fail again); --keep-failed keeps them
    rep = run_sweep(path, out, jobs=1, progress=False, log=lambda m: None)
    assert (rep.n_run, rep.n_skipped, rep.n_failed) == (1, 1, 1)
    rep = run_sweep(path, out, jobs=1, progress=False, retry_failed=False, log=lambda m: None)
    assert (rep.n_run, rep.n_skipped) == (0, 2)


def test_execute_point_catches_library_errors():
    class Boom:
        def run(self, task):
            raise ZeroDivisionError("bug")

    out = execute_point(Boom(), {})
    assert out["status"] == "failed" and out["error"]["type"] == "ZeroDivisionError"
    assert out["error"]["input_error"] is False


def test_resume_after_sigkill(tmp_path):
    doc = small(axes={"memory.controller.read_queue": [8, 16, 24, 32, 48, 64]})
    doc["base"]["requests"] = 20_000
    path = write_sweep(tmp_path, doc)
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "memsim", "sweep", str(path), "--out", str(out), "--jobs", "1",
                             "-q"], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    done = []
    while time.monotonic() < deadline and proc.poll() is None:
        done = [f for f in (out / "points").glob("*") if is_complete(f)] if (out / "points").exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read()!r}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "table.parquet").exists()
    finished = {f.name for f in (out / "points").iterdir() if is_complete(f)}
    assert 2 <= len(finished) < 6
    for h in finished:
        read_run(out / "points" / h)  # complete folders verify against their checksums
    rep = run_sweep(path, out, jobs=1, progress=False, log=lambda m: None)
    assert rep.ok and rep.n_skipped == len(finished) and rep.n_run == 6 - len(finished)
    assert sorted(p.name for p in (out / "points").iterdir()) == sorted(rep.table["hash"])  # no leftovers
    run_sweep(path, tmp_path / "clean", jobs=1, progress=False, log=lambda m: None)
    assert (out / "table.parquet").read_bytes() == (tmp_path / "clean" / "table.parquet").read_bytes()


def test_dask_local_cluster_matches_serial(tmp_path):
    pytest.importorskip("distributed")
    path = write_sweep(tmp_path, small())
    run_sweep(path, tmp_path / "s", jobs=1, progress=False, log=lambda m: None)
    rep = run_sweep(path, tmp_path / "d", jobs=2, local_cluster=True, dask_processes=False, progress=False,
                    log=lambda m: None)
    assert rep.backend == "dask" and rep.n_run == 4 and rep.ok
    assert (tmp_path / "d" / "table.parquet").read_bytes() == (tmp_path / "s" / "table.parquet").read_bytes()
    # --scheduler: a running scheduler (here an in-process cluster's) is used through its address
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rep = run_sweep(path, tmp_path / "remote", scheduler=cluster.scheduler_address, progress=False,
                        log=lambda m: None)
    assert rep.backend == "dask" and rep.n_run == 4
    assert (tmp_path / "remote" / "table.parquet").read_bytes() == (tmp_path / "s" / "table.parquet").read_bytes()
    with pytest.raises(Exception, match="give either"):
        run_sweep(path, tmp_path / "x", scheduler="tcp://127.0.0.1:1", local_cluster=True, progress=False)


def test_dask_unreachable_scheduler_is_an_input_error(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from memsim.errors import MemsimError

    monkeypatch.setattr("memsim.sweep.execute.DASK_CONNECT_TIMEOUT_S", 1)
    path = write_sweep(tmp_path, small(axes={"memory.organization.channels": [8]}))
    with pytest.raises(MemsimError, match="cannot connect to the Dask scheduler"):
        run_sweep(path, tmp_path / "o", scheduler="tcp://127.0.0.1:9", progress=False, log=lambda m: None)


def test_duplicate_points_share_one_folder(tmp_path):
    path = write_sweep(tmp_path, small(axes={"memory.controller.read_queue": [32, 32, 16]}))
    rep = run_sweep(path, tmp_path / "out", jobs=1, progress=False, log=lambda m: None)
    assert (rep.n_points, rep.n_unique, rep.n_run) == (3, 2, 2)
    t = rep.table
    assert t["hash"][0] == t["hash"][1] != t["hash"][2]
    assert t["bandwidth_GBps"][0] == t["bandwidth_GBps"][1]


@pytest.mark.parametrize("name", ["hbm_channels.yaml", "decode_policies.yaml"])
def test_example_sweeps_validate(name):
    from memsim.sweep import validate_sweep

    path = ROOT / "notebooks" / "sweeps" / name
    spec = load_sweep(path)
    if spec.kind == "system":
        pytest.importorskip("memsim.system.api")
        if not (ROOT / "hw_configs" / "h100_sxm.yaml").exists():
            pytest.skip("no system configs in this checkout")
    resolved = validate_sweep(spec)
    assert len(resolved) == {"hbm_channels.yaml": 48, "decode_policies.yaml": 6}[name]
