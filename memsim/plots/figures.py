"""The standard figures, as matplotlib ``Figure`` objects built without pyplot (no global state, any backend).

Every function takes tidy data (a sweep table, a run's ``ops.parquet`` rows or a Chrome trace) and returns
the Figure (or draws on ``ax=`` when given one). Labels carry units derived from the column names
(``_GBps`` GB/s, ``_ns`` ns, ``_s`` s, ``_j`` J, ``_uj`` µJ, ``_pj_per_bit`` pJ/bit; times and energies
are rescaled to a readable prefix, e.g. TPOT in ms); layouts use ``constrained_layout`` so text does not
overlap.

What is shown / simplified:

* ``metric_vs_axis``: one line per hue value; axes that vary but are neither ``x`` nor ``hue`` are folded
  into the hue label, so no two points are silently averaged. A numeric x whose values are powers of two
  gets a log2 scale; text values are categorical.
* ``latency_breakdown``: the sum of op durations (not the critical path: overlapped ops both count),
  stacked by op kind, unit, layer, or tier (an op is charged to the tier it moves the most bytes on;
  ops that move none are "no tier traffic"), one bar per run.
* ``energy_breakdown``: stacked energy components per point: for DRAM points activate / read / write /
  refresh / background, for system points compute / memory (whatever ``energy_*`` / ``*_energy_j``
  component columns the table has, the total columns excluded).
* ``roofline``: each op at (FLOP per byte, achieved FLOP/s) under the roofs min(peak FLOP/s, intensity x
  peak bandwidth). Peaks come from the caller; without them they are estimated as the upper envelope of
  the ops themselves, and the legend says so.
* ``timeline``: a Gantt chart per unit (and link) from op rows (``name, unit, start_ps, end_ps``, optional
  ``kind``) or a Chrome-trace JSON; at most ``max_ops`` bars (the earliest), the rest summarised in the
  title.
* ``policy_comparison``: one panel per metric, bars per policy, grouped by another axis when given.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from memsim.errors import MemsimError

__all__ = ["PlotError", "metric_label", "resolve_column", "metric_vs_axis", "latency_breakdown",
           "energy_breakdown", "roofline", "timeline", "policy_comparison", "ops_from_chrome_trace",
           "FIGSIZE"]

FIGSIZE = (7.0, 4.4)
_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C",
           "#CCB974", "#64B5CD"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
_LINESTYLES = ["-", "--", ":", "-."]
_RESERVED = ("point", "hash", "status", "error")


class PlotError(MemsimError):
    """Bad input to a plot: an unknown column, an empty table, missing op columns."""


# ----------------------------------------------------------------------------------------------------
# Names, units, scaling
# ----------------------------------------------------------------------------------------------------

_SPECIAL = {
    "ttft_s": ("TTFT", "s"), "tpot_s": ("TPOT", "s"), "tpot_p99_s": ("TPOT p99", "s"),
    "tokens_per_s": ("decode throughput", "tokens/s"), "e2e_tokens_per_s": ("end-to-end throughput", "tokens/s"),
    "bandwidth_GBps": ("bandwidth", "GB/s"), "peak_GBps": ("peak bandwidth", "GB/s"),
    "row_hit_rate": ("row-buffer hit rate", "fraction"), "fraction_of_peak": ("fraction of peak bandwidth", "fraction"),
    "energy_pj_per_bit": ("energy per bit", "pJ/bit"), "flops": ("FLOPs", "FLOP"),
    "sim_time_us": ("simulated time", "µs"),
}
_SUFFIX_UNITS = [("_pj_per_bit", "pJ/bit"), ("_GBps", "GB/s"), ("_ns", "ns"), ("_us", "µs"), ("_ms", "ms"),
                 ("_s", "s"), ("_uj", "µJ"), ("_mj", "mJ"), ("_pj", "pJ"), ("_j", "J"), ("_bytes", "B"),
                 ("_rate", "fraction")]
_TIME_STEPS = [("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("ps", 1e-12)]
_ENERGY_STEPS = [("J", 1.0), ("mJ", 1e-3), ("µJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)]
_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12}
_ENERGY_UNITS = {"J": 1.0, "mJ": 1e-3, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12}


def _split_unit(name: str) -> tuple[str, str | None]:
    if name in _SPECIAL:
        return _SPECIAL[name]
    short = name.rsplit(".", 1)[-1] if "." in name and not name.startswith("bytes.") else name
    if short.startswith("bytes_") or short.startswith("bytes."):
        return f"bytes {short[6:].replace('_', ' ')}", "B"
    if short.startswith(("n_", "cmd_")):
        return short.split("_", 1)[1].replace("_", " ") + (" commands" if short.startswith("cmd_") else ""), "count"
    for suf, unit in _SUFFIX_UNITS:
        if short.endswith(suf) and len(short) > len(suf):
            return short[: -len(suf)].replace("_", " ").replace("avg ", "mean "), unit
    return short.replace("_", " "), None


def metric_label(name: str, unit: str | None = None) -> str:
    """'p99_read_latency_ns' -> 'p99 read latency (ns)'; a dotted axis path -> its last part."""
    text, u = _split_unit(name)
    u = unit or u
    return f"{text} ({u})" if u else text


def _rescale(values: np.ndarray, unit: str | None) -> tuple[float, str | None]:
    """A factor and unit that bring time / energy values to a readable prefix."""
    table = _TIME_UNITS if unit in _TIME_UNITS else (_ENERGY_UNITS if unit in _ENERGY_UNITS else None)
    if table is None:
        return 1.0, unit
    v = np.abs(np.asarray(values, dtype=float))
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        return 1.0, unit
    base = table[unit]
    mag = float(np.median(v)) * base
    steps = _TIME_STEPS if table is _TIME_UNITS else _ENERGY_STEPS
    for u, f in steps:
        if mag >= f:
            return base / f, u
    return base / steps[-1][1], steps[-1][0]


def resolve_column(table: pd.DataFrame, name: str, what: str = "column", *, prefer_axes: bool = False) -> str:
    """An exact column, else the unique column whose dotted path ends with ``.name``.

    With ``prefer_axes`` (for x / hue / group), an axis of the sweep wins over a metric of the same short
    name (``channels`` is the axis ``memory.organization.channels``, not the metric column).
    """
    if prefer_axes:
        axes = axis_columns(table)
        if name in axes:
            return name
        ahits = [a for a in axes if a.endswith("." + name)]
        if len(ahits) == 1:
            return ahits[0]
    if name in table.columns:
        return name
    hits = [c for c in table.columns if c.endswith("." + name)]
    if len(hits) == 1:
        return hits[0]
    cols = ", ".join(c for c in table.columns if c not in _RESERVED)
    if hits:
        raise PlotError(f"{what} {name!r} is ambiguous: {', '.join(hits)}")
    raise PlotError(f"no {what} {name!r} in the table; it has: {cols}")


def axis_columns(table: pd.DataFrame) -> list[str]:
    """The axis columns of a sweep table (between 'status' and the first metric), from its attrs or shape."""
    axes = table.attrs.get("memsim_axes")
    if axes:
        return [a for a in axes if a in table.columns]
    cols = list(table.columns)
    if "status" in cols:
        start = cols.index("status") + 1
        known = set(_SPECIAL) | {"standard", "config_name", "channels", "n_requests"}
        out = []
        for c in cols[start:]:
            if c in known or c == "error":
                break
            out.append(c)
        return out
    return []


def _new_ax(ax, figsize=FIGSIZE):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, constrained_layout=True)
    return fig, fig.add_subplot()


def _style(ax) -> None:
    ax.grid(True, alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _is_pow2_series(v: pd.Series) -> bool:
    try:
        a = np.asarray(v.dropna(), dtype=float)
    except (TypeError, ValueError):
        return False
    if len(np.unique(a)) < 2 or (a <= 0).any():
        return False
    lg = np.log2(a)
    return bool(np.allclose(lg, np.round(lg)))


def _fmt_value(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _ok_rows(table: pd.DataFrame) -> pd.DataFrame:
    if table is None or len(table) == 0:
        raise PlotError("the results table is empty")
    t = table[table["status"] == "ok"] if "status" in table.columns else table
    if len(t) == 0:
        raise PlotError("no successful points in the results table (every point failed)")
    return t


# ----------------------------------------------------------------------------------------------------
# metric vs axis
# ----------------------------------------------------------------------------------------------------


def metric_vs_axis(table: pd.DataFrame, x: str, y: str, hue: str | None = None, *, ax=None,
                   title: str | None = None, logy: bool = False) -> Figure:
    """A metric against one axis of a sweep, one line per ``hue`` value (and per other varying axis)."""
    t = _ok_rows(table)
    x = resolve_column(t, x, "x axis", prefer_axes=True)
    y = resolve_column(t, y, "metric")
    hue = resolve_column(t, hue, "hue axis", prefer_axes=True) if hue else None
    others = [a for a in axis_columns(t) if a not in (x, hue) and t[a].nunique(dropna=False) > 1]
    keys = ([hue] if hue else []) + others
    own = ax is None
    fig, ax = _new_ax(ax)
    _, unit = _split_unit(y)
    factor, unit = _rescale(t[y].to_numpy(dtype=float), unit)
    categorical = not pd.api.types.is_numeric_dtype(t[x])
    cats = list(dict.fromkeys(t[x].tolist())) if categorical else None
    groups = t.groupby(keys, sort=False, dropna=False) if keys else [((), t)]
    # colour follows the first key (the hue), line style and marker the rest, so related lines read alike
    first_vals = list(dict.fromkeys(t[keys[0]].tolist())) if keys else []
    rest_vals: list = []
    n = -1
    for n, (gkey, g) in enumerate(groups):
        gkey = gkey if isinstance(gkey, tuple) else (gkey,)
        if len(keys) == 1:
            label = _fmt_value(gkey[0])
        else:
            label = ", ".join(f"{_split_unit(k)[0]}={_fmt_value(v)}" for k, v in zip(keys, gkey)) or None
        ci = first_vals.index(gkey[0]) if keys else 0
        rest = tuple(gkey[1:])
        if rest not in rest_vals:
            rest_vals.append(rest)
        si = rest_vals.index(rest)
        g = g.sort_values(x) if not categorical else g
        xs = [cats.index(v) for v in g[x]] if categorical else g[x].to_numpy(dtype=float)
        ax.plot(xs, g[y].to_numpy(dtype=float) * factor, marker=_MARKERS[si % len(_MARKERS)],
                linestyle=_LINESTYLES[si % len(_LINESTYLES)], color=_COLORS[ci % len(_COLORS)], label=label,
                linewidth=1.6, markersize=6)
    if categorical:
        ax.set_xticks(range(len(cats)), [_fmt_value(c) for c in cats],
                      rotation=30 if max(len(str(c)) for c in cats) > 8 else 0,
                      ha="right" if max(len(str(c)) for c in cats) > 8 else "center")
    else:
        vals = sorted(set(t[x].dropna().tolist()))
        if _is_pow2_series(t[x]):
            ax.set_xscale("log", base=2)
        if len(vals) <= 12:  # tick exactly the swept values
            ax.set_xticks(vals, [_fmt_value(v) for v in vals])
            ax.minorticks_off()
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(metric_label(x))
    ax.set_ylabel(metric_label(y, unit))
    if keys and n >= 0:
        outside = n + 1 > 5 or len(keys) > 1
        if outside and own:  # widen the figure by the legend rather than squeezing the plot
            longest = max(len(h.get_label()) for h in ax.get_lines())
            fig.set_size_inches(FIGSIZE[0] + 0.075 * longest + 0.6, FIGSIZE[1])
        ax.legend(title=_split_unit(keys[0])[0] if len(keys) == 1 else None, fontsize=8, title_fontsize=9,
                  frameon=False, **({"loc": "center left", "bbox_to_anchor": (1.01, 0.5)} if outside
                                    else {"loc": "best"}))
    ax.set_title(title or f"{_split_unit(y)[0]} vs {_split_unit(x)[0]}")
    _style(ax)
    return fig


# ----------------------------------------------------------------------------------------------------
# breakdowns
# ----------------------------------------------------------------------------------------------------


def _need(ops: pd.DataFrame, cols: Iterable[str], what: str) -> None:
    miss = [c for c in cols if c not in ops.columns]
    if miss:
        raise PlotError(f"{what} needs op columns {', '.join(miss)}; the ops table has: {', '.join(ops.columns)}")


def _group_key(ops: pd.DataFrame, by: str) -> pd.Series:
    if by == "tier":
        tiers = [c for c in ops.columns if c.startswith("bytes_")]
        if not tiers:
            raise PlotError("a breakdown by tier needs bytes_<tier> op columns")
        b = ops[tiers].to_numpy(dtype=float)
        names = np.array([c[len("bytes_"):] for c in tiers], dtype=object)
        key = names[np.argmax(b, axis=1)]
        key[b.max(axis=1) <= 0] = "no tier traffic"
        return pd.Series(key, index=ops.index)
    if by not in ops.columns:
        raise PlotError(f"no op column {by!r} to break down by; expected kind, unit, layer, tier or one of "
                        f"{', '.join(ops.columns)}")
    return ops[by].astype(str)


def latency_breakdown(runs: Mapping[str, pd.DataFrame] | pd.DataFrame, *, by: str = "kind",
                      phase: str | None = "decode", ax=None, title: str | None = None, top: int = 9) -> Figure:
    """Stacked bars of summed op time per group (``by``: kind, unit, layer, tier), one bar per run."""
    if isinstance(runs, pd.DataFrame):
        runs = {"run": runs}
    if not runs:
        raise PlotError("no runs to break down")
    shares = {}
    for label, ops in runs.items():
        _need(ops, ("start_ps", "end_ps"), "a latency breakdown")
        o = ops
        if phase is not None and "phase" in o.columns:
            o = o[o["phase"] == phase]
            if o.empty:
                o = ops  # this run has no such phase: show all of it
        dur = (o["end_ps"] - o["start_ps"]).astype(float)
        shares[label] = dur.groupby(_group_key(o, by)).sum()
    df = pd.DataFrame(shares).fillna(0.0).T  # runs x groups, in ps
    order = df.sum().sort_values(ascending=False).index.tolist()
    if len(order) > top:
        keep = order[: top - 1]
        df["other"] = df[[c for c in order if c not in keep]].sum(axis=1)
        order = keep + ["other"]
    df = df[order]
    factor, unit = _rescale(df.sum(axis=1).to_numpy(), "ps")
    horizontal = len(df) > 6 or max(len(str(i)) for i in df.index) > 14
    longest = max(len(str(i)) for i in df.index)
    fig, ax = _new_ax(ax, figsize=(FIGSIZE[0] + 0.07 * max(0, longest - 12), max(FIGSIZE[1], 0.38 * len(df) + 1.6))
                      if horizontal else FIGSIZE)
    pos = np.arange(len(df))
    acc = np.zeros(len(df))
    for i, col in enumerate(df.columns):
        vals = df[col].to_numpy() * factor
        if horizontal:
            ax.barh(pos, vals, left=acc, color=_COLORS[i % len(_COLORS)], label=col, height=0.7)
        else:
            ax.bar(pos, vals, bottom=acc, color=_COLORS[i % len(_COLORS)], label=col, width=0.7)
        acc += vals
    labels = [str(i) for i in df.index]
    what = f"summed op time ({unit})" + (f", {phase}" if phase else "")
    if horizontal:
        ax.set_yticks(pos, labels)
        ax.invert_yaxis()
        ax.set_xlabel(what)
    else:
        rot = 30 if max(len(s) for s in labels) > 8 else 0
        ax.set_xticks(pos, labels, rotation=rot, ha="right" if rot else "center")
        ax.set_ylabel(what)
    ax.legend(title=f"by {by}", fontsize=8, title_fontsize=9, frameon=False,
              loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or f"latency breakdown by {by}")
    _style(ax)
    return fig


def _energy_components(table: pd.DataFrame) -> list[str]:
    cols = [c for c in table.columns if c not in _RESERVED]
    dram = [c for c in cols if c.startswith("energy_") and c.endswith("_uj") and c != "energy_total_uj"]
    system = [c for c in cols if c.endswith("_energy_j") and c not in ("total_energy_j", "prefill_energy_j")]
    comps = dram or system
    if not comps:
        raise PlotError("no energy component columns (energy_<part>_uj or <part>_energy_j) in the table")
    return comps


def energy_breakdown(table: pd.DataFrame, x: str | None = None, *, components: Sequence[str] | None = None,
                     ax=None, title: str | None = None) -> Figure:
    """Stacked energy components per point (x: an axis for the bar labels; default: every varying axis)."""
    t = _ok_rows(table)
    comps = list(components) if components else _energy_components(t)
    comps = [resolve_column(t, c, "energy column") for c in comps]
    units = {_split_unit(c)[1] for c in comps}
    if len(units) != 1:
        raise PlotError(f"energy components must share a unit, got {', '.join(map(str, units))}")
    unit = units.pop()
    if x:
        xcols = [resolve_column(t, x, "x axis", prefer_axes=True)]
    else:
        xcols = [a for a in axis_columns(t) if t[a].nunique(dropna=False) > 1] or ["point"]
    labels = [", ".join(_fmt_value(r[c]) for c in xcols) for _, r in t.iterrows()]
    data = t[comps].to_numpy(dtype=float)
    factor, unit = _rescale(data.sum(axis=1), unit)
    fig, ax = _new_ax(ax)
    pos = np.arange(len(t))
    acc = np.zeros(len(t))
    for i, c in enumerate(comps):
        name = _split_unit(c)[0].replace("energy ", "").replace(" energy", "")
        ax.bar(pos, data[:, i] * factor, bottom=acc, color=_COLORS[i % len(_COLORS)], label=name, width=0.7)
        acc += data[:, i] * factor
    rot = 30 if max(len(s) for s in labels) > 8 or len(labels) > 8 else 0
    ax.set_xticks(pos, labels, rotation=rot, ha="right" if rot else "center")
    ax.set_xlabel(", ".join(_split_unit(c)[0] for c in xcols))
    ax.set_ylabel(f"energy ({unit})")
    ax.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "energy breakdown")
    _style(ax)
    return fig


# ----------------------------------------------------------------------------------------------------
# roofline
# ----------------------------------------------------------------------------------------------------


def roofline(ops: pd.DataFrame, *, peak_flops: float | None = None, peak_bw: float | None = None,
             color_by: str = "kind", ax=None, title: str | None = None) -> Figure:
    """Ops on a roofline: x = FLOP/byte, y = achieved FLOP/s; peaks in FLOP/s and bytes/s."""
    if "time_ps" not in ops.columns:
        _need(ops, ("flops", "bytes", "start_ps", "end_ps"), "a roofline")
        time_s = (ops["end_ps"] - ops["start_ps"]).to_numpy(dtype=float) * 1e-12
    else:
        _need(ops, ("flops", "bytes"), "a roofline")
        time_s = ops["time_ps"].to_numpy(dtype=float) * 1e-12
    flops = ops["flops"].to_numpy(dtype=float)
    byts = ops["bytes"].to_numpy(dtype=float)
    sel = (flops > 0) & (byts > 0) & (time_s > 0)
    if not sel.any():
        raise PlotError("no op has FLOPs, bytes and a duration to place on a roofline")
    ai = flops[sel] / byts[sel]
    perf = flops[sel] / time_s[sel]
    estimated = []
    if peak_flops is None:
        peak_flops = float(perf.max())
        estimated.append("compute")
    if peak_bw is None:
        peak_bw = float((byts[sel] / time_s[sel]).max())
        estimated.append("bandwidth")
    fig, ax = _new_ax(ax)
    lo = min(ai.min(), peak_flops / peak_bw) / 4
    hi = max(ai.max(), peak_flops / peak_bw) * 4
    xs = np.geomspace(lo, hi, 200)
    roof = np.minimum(peak_flops, xs * peak_bw)
    tag = f" (estimated from the ops: {', '.join(estimated)})" if estimated else ""
    ax.plot(xs, roof / 1e12, color="black", linewidth=1.8,
            label=f"roof: {peak_flops / 1e12:.4g} TFLOP/s, {peak_bw / 1e9:.4g} GB/s{tag}")
    ax.axvline(peak_flops / peak_bw, color="gray", linestyle=":", linewidth=1)
    groups = ops.loc[sel, color_by].astype(str) if color_by in ops.columns else pd.Series(["op"] * int(sel.sum()))
    for i, g in enumerate(dict.fromkeys(groups.tolist())):
        m = (groups == g).to_numpy()
        ax.scatter(ai[m], perf[m] / 1e12, s=18, alpha=0.75, color=_COLORS[i % len(_COLORS)],
                   marker=_MARKERS[i % len(_MARKERS)], label=g, edgecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP/byte)")
    ax.set_ylabel("achieved performance (TFLOP/s)")
    ax.legend(fontsize=7.5, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title(title or "roofline")
    _style(ax)
    return fig


# ----------------------------------------------------------------------------------------------------
# timeline
# ----------------------------------------------------------------------------------------------------


def ops_from_chrome_trace(trace: Mapping | str | bytes) -> pd.DataFrame:
    """Op rows (name, unit, kind, start_ps, end_ps) from a Chrome-trace JSON (complete 'X' events)."""
    if isinstance(trace, (str, bytes)):
        trace = json.loads(trace)
    events = trace.get("traceEvents", trace) if isinstance(trace, Mapping) else trace
    names = {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            names[e.get("pid")] = str(e.get("args", {}).get("name", e.get("pid")))
    rows = []
    for e in events:
        if e.get("ph") != "X":
            continue
        start = float(e.get("ts", 0.0)) * 1e6  # µs -> ps
        rows.append({"name": e.get("name", ""), "unit": names.get(e.get("pid"), str(e.get("pid"))),
                     "kind": e.get("cat", ""), "start_ps": int(round(start)),
                     "end_ps": int(round(start + float(e.get("dur", 0.0)) * 1e6))})
    if not rows:
        raise PlotError("the Chrome trace has no complete ('X') events")
    return pd.DataFrame(rows)


def timeline(ops: pd.DataFrame, *, max_ops: int = 400, start_ps: int | None = None, end_ps: int | None = None,
             color_by: str = "kind", ax=None, title: str | None = None) -> Figure:
    """A Gantt chart: one row per unit, one bar per op (the first ``max_ops`` in the time window)."""
    _need(ops, ("unit", "start_ps", "end_ps"), "a timeline")
    o = ops
    if start_ps is not None:
        o = o[o["end_ps"] > start_ps]
    if end_ps is not None:
        o = o[o["start_ps"] < end_ps]
    if o.empty:
        raise PlotError("no op in the chosen time window")
    o = o.sort_values(["start_ps", "end_ps"], kind="stable")
    total = len(o)
    o = o.iloc[:max_ops]
    units = list(dict.fromkeys(sorted(o["unit"].astype(str))))
    factor, unit = _rescale(np.array([float(o["end_ps"].max() - o["start_ps"].min())]), "ps")
    fig, ax = _new_ax(ax, figsize=(FIGSIZE[0] + 1.5, max(2.6, 0.55 * len(units) + 1.8)))
    colours_key = o[color_by].astype(str) if color_by in o.columns else pd.Series(["op"] * len(o), index=o.index)
    cats = list(dict.fromkeys(colours_key.tolist()))
    for i, c in enumerate(cats):
        m = (colours_key == c).to_numpy()
        g = o[m]
        y = np.array([units.index(str(u)) for u in g["unit"]])
        ax.barh(y, (g["end_ps"] - g["start_ps"]).to_numpy(dtype=float) * factor,
                left=g["start_ps"].to_numpy(dtype=float) * factor, height=0.6,
                color=_COLORS[i % len(_COLORS)], label=c, edgecolor="none", linewidth=0)
    ax.set_yticks(range(len(units)), units)
    ax.invert_yaxis()
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("unit")
    if len(cats) > 1 or color_by in o.columns:
        ax.legend(title=color_by, fontsize=7.5, title_fontsize=8.5, frameon=False, loc="center left",
                  bbox_to_anchor=(1.01, 0.5))
    more = f" (first {len(o)} of {total} ops)" if total > len(o) else ""
    ax.set_title((title or "timeline") + more)
    ax.grid(True, axis="x", alpha=0.3, linewidth=0.6)
    ax.set_axisbelow(True)
    return fig


# ----------------------------------------------------------------------------------------------------
# policy comparison
# ----------------------------------------------------------------------------------------------------


def policy_comparison(table: pd.DataFrame, *, policy: str = "policy", metrics: Sequence[str] | None = None,
                      group: str | None = None, title: str | None = None) -> Figure:
    """One panel per metric, one bar per policy (grouped by ``group``, another axis, when given)."""
    t = _ok_rows(table)
    policy = resolve_column(t, policy, "policy axis", prefer_axes=True)
    if metrics is None:
        metrics = [m for m in ("tpot_s", "tokens_per_s", "energy_per_token_j", "ttft_s") if m in t.columns]
        if not metrics:
            metrics = [m for m in ("bandwidth_GBps", "avg_read_latency_ns", "energy_pj_per_bit") if m in t.columns]
    if not metrics:
        raise PlotError("no metrics to compare; give them with --y")
    metrics = [resolve_column(t, m, "metric") for m in metrics]
    group = resolve_column(t, group, "group axis", prefer_axes=True) if group else None
    group_label = metric_label(group) if group else None
    if group is None:  # other varying axes become the groups: nothing is averaged silently
        others = [a for a in axis_columns(t) if a != policy and t[a].nunique(dropna=False) > 1]
        if others:
            t = t.assign(_group=[", ".join(f"{_split_unit(a)[0]}={_fmt_value(r[a])}" for a in others)
                                 for _, r in t.iterrows()])
            group, group_label = "_group", ", ".join(_split_unit(a)[0] for a in others)
    pols = list(dict.fromkeys(t[policy].tolist()))
    groups = list(dict.fromkeys(t[group].tolist())) if group else [None]
    n = len(metrics)
    fig = Figure(figsize=(max(4.0, 3.3 * n), 4.0), constrained_layout=True)
    axes = fig.subplots(1, n, squeeze=False)[0]
    width = 0.8 / len(pols)
    for ax, m in zip(axes, metrics):
        _, unit = _split_unit(m)
        factor, unit = _rescale(t[m].to_numpy(dtype=float), unit)
        for i, p in enumerate(pols):
            vals = []
            for g in groups:
                sel = (t[policy] == p) & ((t[group] == g) if group else True)
                v = t.loc[sel, m].to_numpy(dtype=float)
                vals.append(float(v.mean()) * factor if len(v) else np.nan)
            ax.bar(np.arange(len(groups)) + (i - (len(pols) - 1) / 2) * width, vals, width=width * 0.95,
                   color=_COLORS[i % len(_COLORS)], label=str(p))
        if group:
            names = [_fmt_value(g) for g in groups]
            rot = 30 if len(groups) > 3 or max(len(n) for n in names) > 8 else 0
            ax.set_xticks(range(len(groups)), names, rotation=rot, ha="right" if rot else "center")
            ax.set_xlabel(group_label)
        else:
            ax.set_xticks([])
        ax.set_ylabel(metric_label(m, unit))
        ax.set_title(_split_unit(m)[0], fontsize=10)
        _style(ax)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, title=_split_unit(policy)[0], loc="outside lower center", ncols=min(len(pols), 5),
               fontsize=8, title_fontsize=9, frameon=False)
    fig.suptitle(title or "policy comparison")
    return fig
