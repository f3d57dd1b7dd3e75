"""Find the data behind a figure: a sweep table, one run's op rows or Chrome trace, and roofline peaks.

Accepted inputs: a sweep output folder (``table.parquet`` + ``sweep.json`` + ``points/<hash>/``), a table
file (``.parquet`` / ``.csv``), a run folder (``ops.parquet``, ``timeline.json``, ``resolved.json``), an
``ops.parquet`` file or a Chrome-trace ``.json``.

Peaks for the roofline are read, where the run's ``resolved.json`` has them, from the system hardware
config: the unit's ``matrix_flops`` (the weights' datatype when it is recorded, else fp16, else the
largest) and its memory tier's peak bandwidth (channels x pseudo-channels x bus width x data rate x
count). Anything that does not fit this shape yields no peaks (the roofline then estimates them).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from memsim.plots.figures import PlotError, ops_from_chrome_trace

__all__ = ["load_table", "load_ops", "run_folders", "peaks_from_resolved"]


def load_table(path: str | Path) -> pd.DataFrame:
    """A sweep table with ``attrs['memsim_axes']`` (the axis columns) and ``attrs['memsim_sweep']``."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    if p.is_dir():
        p = p / "table.parquet"
    if not p.exists():
        raise PlotError(f"{p}: no results table (give a sweep output folder or a table.parquet / .csv)")
    t = pd.read_parquet(p) if p.suffix == ".parquet" else pd.read_csv(p)
    sj = folder / "sweep.json"
    if sj.exists():
        doc = json.loads(sj.read_text())
        t.attrs["memsim_axes"] = list(doc.get("axes", []))
        t.attrs["memsim_sweep"] = doc.get("name", folder.name)
    t.attrs["memsim_folder"] = str(folder)
    return t


def load_ops(path: str | Path) -> pd.DataFrame:
    """Op rows of one run: from a run folder, an ops.parquet, or a Chrome-trace JSON."""
    p = Path(path)
    if p.is_dir():
        if (p / "ops.parquet").exists():
            return pd.read_parquet(p / "ops.parquet")
        if (p / "timeline.json").exists():
            return ops_from_chrome_trace((p / "timeline.json").read_text())
        raise PlotError(f"{p}: no ops.parquet or timeline.json in this run folder")
    if not p.exists():
        raise PlotError(f"{p}: no such file")
    if p.suffix == ".parquet":
        return pd.read_parquet(p)
    if p.suffix == ".json":
        try:
            return ops_from_chrome_trace(p.read_text())
        except (ValueError, AttributeError) as exc:
            raise PlotError(f"{p}: not a Chrome-trace JSON ({exc})") from None
    raise PlotError(f"{p}: expected a run folder, an ops.parquet or a Chrome-trace .json")


def run_folders(sweep_folder: str | Path, table: pd.DataFrame | None = None) -> dict[str, Path]:
    """Label -> run folder for every successful point of a sweep that has op rows (ops.parquet)."""
    from memsim.plots.figures import axis_columns

    folder = Path(sweep_folder)
    t = table if table is not None else load_table(folder)
    t = t[t["status"] == "ok"] if "status" in t.columns else t
    axes = [a for a in axis_columns(t) if t[a].nunique(dropna=False) > 1]
    out: dict[str, Path] = {}
    for _, r in t.iterrows():
        run = folder / "points" / str(r["hash"])
        if not (run / "ops.parquet").exists():
            continue
        label = ", ".join(f"{a.rsplit('.', 1)[-1]}={r[a]}" for a in axes) or f"point {r['point']}"
        out[label] = run
    return out


def _bw_of_tier(tier: dict) -> float | None:
    d = tier.get("dram") if isinstance(tier, dict) else None
    if not isinstance(d, dict):
        return None
    o = d.get("organization", {})
    try:
        per = o["channels"] * o.get("pseudo_channels", 1) * o["bus_width_bits"] * o["data_rate_bps"] / 8
    except (KeyError, TypeError):
        return None
    return float(per) * float(tier.get("count", 1) or 1)


def peaks_from_resolved(resolved: Any, unit: str | None = None) -> tuple[float, float, str] | None:
    """(peak FLOP/s, peak bytes/s, description) from a system run's resolved inputs, or None."""
    try:
        system = resolved["hardware"]["sections"]["system"]
        units = system["units"]
    except (KeyError, TypeError):
        return None
    if not isinstance(units, dict) or not units:
        return None
    name = unit if unit in units else next(iter(units))
    u = units[name]
    mf = u.get("matrix_flops") or {}
    if not isinstance(mf, dict) or not mf:
        return None
    dtype = None
    wl = resolved.get("workload") if isinstance(resolved, dict) else None
    if isinstance(wl, dict):
        dt = wl.get("dtype")
        dtype = dt.get("weights") if isinstance(dt, dict) else None
    dtype = dtype if dtype in mf else ("fp16" if "fp16" in mf else max(mf, key=lambda k: mf[k]))
    tiers = system.get("tiers", {})
    tier = tiers.get(u.get("memory")) if isinstance(tiers, dict) else None
    bw = _bw_of_tier(tier) if tier else None
    if bw is None:
        return None
    return float(mf[dtype]), bw, f"{name} {dtype} matrix peak, {u.get('memory')} peak bandwidth"


def read_resolved(run_folder: str | Path) -> Any:
    p = Path(run_folder) / "resolved.json"
    if not p.exists():
        return None
    try:
        return json.loads(p.read_text())
    except ValueError:
        return None


def read_parquet_bytes(data: bytes) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data))
