"""Policy comparison: every mapping policy on its own shipped default config, one model, one table.

:func:`compare` runs each policy of :data:`DEFAULTS` (policy -> hardware config, workload overrides) on
the same model or scenario and returns one row per policy: TTFT, TPOT, decode tokens/s, decode energy per
token and the bytes each tier moves per decode step (one column per tier name found in any config:
``bytes_per_step_<tier>``, NaN where a config has no such tier). A policy whose config cannot run the
model (it does not fit a tier, the policy's check rejects the system, the model's shape does not suit
the device) is kept as a row with ``status`` ``skipped`` and the reason. :func:`write` stores the table
as CSV and Parquet and draws the figures (PNG): ``compare.png`` (TTFT, TPOT, tokens/s, energy/token, one bar
per policy; log axes where the bars span over 30x) and ``compare_bytes.png`` (GB per decode step on each
tier a policy uses). ``configs`` replaces a policy's default config (``hbm-baseline`` on
``attacc_baseline.yaml`` for the 175B comparison); an override key ``POLICY:path`` applies to that
policy's run only (``flash-windowing:policy.sparsity``), a plain key to every run.

What is simplified: each policy runs on a different system (its paper's setting), so the table compares
policy + system pairs, not policies on one machine; rows are as good as the individual policies' models
(see their module docstrings). Deterministic: the same inputs give the same table.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from memsim.errors import MemsimError
from memsim.shipped import shipped_path

#: policy -> (hardware config in hw_configs/, workload overrides that config needs). The config's own
#: ``policy:`` block supplies the policy's parameters; the policy is passed by name for configs whose
#: block names another policy (flash-naive on the flash-windowing GPU, kv-offload-pcie on the CSD system).
DEFAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "hbm-baseline": ("a100_80gb.yaml", {}),
    "flash-attention": ("a100_80gb_flash_attention.yaml", {}),
    "kv-paging": ("h100_host_ddr.yaml", {}),
    "three-tier": ("sn40l_like.yaml", {}),
    "pim-gpt": ("pim_gpt_aim.yaml", {}),
    "attention-on-pim": ("attacc_like.yaml", {}),
    "flash-naive": ("gpu_flash.yaml", {}),
    "flash-windowing": ("gpu_flash.yaml", {}),
    "kv-offload-pcie": ("csd_13b.yaml", {}),
    "attention-in-storage": ("csd_13b.yaml", {}),
}

METRICS = ("ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j")
BASE_COLUMNS = ("policy", "hw_config", "system", "model", "batch", "prompt_tokens", "generated_tokens", "fidelity",
                "status", "reason", *METRICS, "wall_s")


def hw_path(name: str) -> str:
    return str(shipped_path("hw_configs", name))


def compare(workload: str, *, policies: Sequence[str] | None = None, fidelity: str = "analytical",
            overrides: Mapping[str, Any] | None = None, configs: Mapping[str, str] | None = None,
            progress: Callable[[str, str], None] | None = None) -> pd.DataFrame:
    """One row per policy (see the module docstring). ``overrides`` (``workload.batch`` ...) apply to every run
    after the table's own; ``configs`` replaces the default config of some policies (policy -> a hardware YAML
path, or a file name in hw_configs/); ``progress(policy, message)`` is called after each run."""
    import time

    import pandas as pd  # here, not at the top: the command line imports this module to register itself

    from memsim.policies import known_policies
    from memsim.system.api import run_point

    names = list(policies) if policies else list(DEFAULTS)
    unknown = [p for p in names if p not in DEFAULTS]
    if unknown:
        reg = set(known_policies())
        extra = [p for p in unknown if p in reg]
        hint = f" ({', '.join(extra)} registered but without a default config here)" if extra else ""
        raise MemsimError(f"unknown policy {unknown[0]!r} for compare{hint}; known: {', '.join(DEFAULTS)}")
    bad = [p for p in (configs or {}) if p not in DEFAULTS]
    if bad:
        raise MemsimError(f"--config names unknown policy {bad[0]!r}; known: {', '.join(DEFAULTS)}")
    scoped = [k.split(":", 1)[0] for k in (overrides or {}) if ":" in k]
    bad = [p for p in scoped if p not in DEFAULTS]
    if bad:
        raise MemsimError(f"override for unknown policy {bad[0]!r}; known: {', '.join(DEFAULTS)}")
    rows = []
    for name in names:
        hw, wl_over = DEFAULTS[name]
        given = (configs or {}).get(name)
        if given is not None and not Path(given).exists() and Path(hw_path(given)).exists():
            given = hw_path(given)
        path = given if given is not None else hw_path(hw)
        label = str(given) if given is not None else f"hw_configs/{hw}"
        if given is not None and Path(given).resolve().parent == Path(hw_path(hw)).resolve().parent:
            label = f"hw_configs/{Path(given).name}"
        ov = {**{f"workload.{k}": v for k, v in wl_over.items()},
              **{k: v for k, v in (overrides or {}).items() if ":" not in k},
              **{k.split(":", 1)[1]: v for k, v in (overrides or {}).items() if k.split(":", 1)[0] == name and ":" in k}}
        row: dict[str, Any] = {"policy": name, "hw_config": label, "fidelity": fidelity}
        t0 = time.perf_counter()
        try:
            res = run_point(path, workload, policy=name, fidelity=fidelity, overrides=ov)
        except MemsimError as exc:
            row.update(status="skipped", reason=f"{type(exc).__name__}: {exc}")
            row["wall_s"] = time.perf_counter() - t0
            rows.append(row)
            if progress:
                progress(name, f"skipped: {exc}")
            continue
        m = res.metrics()
        sc = res.scenario
        row.update(system=res.hw.name, model=sc.model.name, batch=sc.batch, prompt_tokens=sc.prompt_tokens,
                   generated_tokens=sc.generated_tokens, status="ok", reason="")
        for k in METRICS:
            row[k] = m.get(k)
        for k, v in m.items():
            if k.startswith("bytes_per_decode_step_"):
                row["bytes_per_step_" + k[len("bytes_per_decode_step_"):]] = v
        row["wall_s"] = time.perf_counter() - t0
        rows.append(row)
        if progress:
            progress(name, "ok")
    table = pd.DataFrame(rows)
    tiers = sorted({c for c in table.columns if c.startswith("bytes_per_step_")})
    for c in BASE_COLUMNS:
        if c not in table.columns:
            table[c] = None
    table = table[[*BASE_COLUMNS, *tiers]]
    for c in (*METRICS, *tiers, "wall_s"):
        table[c] = pd.to_numeric(table[c], errors="coerce").astype(float)
    for c in ("batch", "prompt_tokens", "generated_tokens"):
        table[c] = pd.to_numeric(table[c], errors="coerce").astype("Int64")
    for c in ("policy", "hw_config", "system", "model", "fidelity", "status", "reason"):
        table[c] = table[c].astype(object).where(table[c].notna(), "")
    table.attrs["memsim_axes"] = ["policy"]
    return table


def tier_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c.startswith("bytes_per_step_")]


def _fmt(v: float, kind: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if kind == "s":
        return f"{v:.3f} s" if v >= 1 else (f"{v * 1e3:.2f} ms" if v >= 1e-3 else f"{v * 1e6:.1f} us")
    if kind == "j":
        return f"{v:.3f} J" if v >= 1 else (f"{v * 1e3:.2f} mJ" if v >= 1e-3 else f"{v * 1e6:.1f} uJ")
    if kind == "b":
        return f"{v / 1e9:.3g} GB"
    return f"{v:,.1f}"


def format_table(table: pd.DataFrame) -> str:
    """The table as aligned text: one line per policy; skipped policies listed after it with their reason."""
    tiers = tier_columns(table)
    head = ["policy", "config", "TTFT", "TPOT", "tokens/s", "energy/token",
            *[f"{c[len('bytes_per_step_'):]} /step" for c in tiers]]
    lines = []
    for r in table.itertuples(index=False):
        d = r._asdict()
        if d["status"] != "ok":
            continue
        lines.append([d["policy"], d["hw_config"].removeprefix("hw_configs/"), _fmt(d["ttft_s"], "s"),
                      _fmt(d["tpot_s"], "s"), _fmt(d["tokens_per_s"], "n"), _fmt(d["energy_per_token_j"], "j"),
                      *[_fmt(d[c], "b") for c in tiers]])
    widths = [max(len(h), *(len(x[i]) for x in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(zip(head, widths)))]
    for x in lines:
        out.append("  ".join(v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(x, widths))))
    for r in table.itertuples(index=False):
        if r.status != "ok":
            out.append(f"skipped {r.policy} ({r.hw_config}): {r.reason}")
    return "\n".join(out)


def bytes_figure(table: pd.DataFrame, title: str | None = None):
    """Bytes each tier moves per decode step: per policy one bar per tier it uses (log scale, GB)."""
    import numpy as np
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from memsim.plots.figures import _COLORS, _style

    t = table[table["status"] == "ok"]
    tiers = tier_columns(t)
    if not len(t) or not tiers:
        raise MemsimError("no successful policy with tier traffic to plot")
    color = {c: _COLORS[j % len(_COLORS)] for j, c in enumerate(tiers)}
    bars = []  # (y, value GB, tier column)
    ticks, labels, y = [], [], 0.0
    for r in t.to_dict(orient="records"):
        used = [c for c in tiers if np.isfinite(r[c]) and r[c] > 0]
        ys = [y + k for k in range(max(1, len(used)))]
        bars += [(yy, r[c] / 1e9, c) for yy, c in zip(ys, used)]
        ticks.append(float(np.mean(ys)))
        labels.append(f"{r['policy']}\n({r['system']})")
        y = ys[-1] + 1.6
    fig = Figure(figsize=(8.0, 1.2 + 0.28 * y), constrained_layout=True)
    ax = fig.add_subplot()
    ax.barh([b[0] for b in bars], [b[1] for b in bars], height=0.85, color=[color[b[2]] for b in bars])
    for yy, v, c in bars:
        ax.text(v, yy, f" {c[len('bytes_per_step_'):]} {v:.3g} GB", va="center", fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    lo = min(b[1] for b in bars)
    hi = max(b[1] for b in bars)
    ax.set_xlim(lo / 3, hi * 30)  # room for the value labels
    ax.set_xlabel("bytes moved per decode step (GB, log scale)")
    ax.set_ylabel("policy (system)")
    _style(ax)
    used = sorted({b[2] for b in bars}, key=tiers.index)
    fig.legend([Patch(color=color[c]) for c in used], [c[len("bytes_per_step_"):] for c in used], title="tier",
               loc="outside right upper", fontsize=8, title_fontsize=9, frameon=False)
    fig.suptitle(title or "traffic per tier")
    return fig


def metrics_figure(table: pd.DataFrame, title: str | None = None):
    from memsim.plots.figures import policy_comparison

    t = table[table["status"] == "ok"].copy()
    t.attrs["memsim_axes"] = ["policy"]
    fig = policy_comparison(t, policy="policy", metrics=[m for m in ("ttft_s", "tpot_s", "tokens_per_s",
                                                                     "energy_per_token_j") if t[m].notna().any()],
                            title=title)
    _log_if_spread(fig)
    return fig


def _log_if_spread(fig) -> None:
    """Log y axes on panels whose bars span more than 30x (a flash-bound policy next to HBM ones)."""
    import numpy as np

    for ax in fig.axes:
        h = np.array([p.get_height() for p in ax.patches], dtype=float)
        h = h[np.isfinite(h) & (h > 0)]
        if len(h) and h.max() / h.min() > 30:
            ax.set_yscale("log")
            ax.set_ylabel(ax.get_ylabel() + ", log scale")


def write(table: pd.DataFrame, out: str | Path, *, title: str | None = None) -> dict[str, Path]:
    """compare.csv, compare.parquet, compare.png (latency / throughput / energy) and compare_bytes.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "compare.csv", "parquet": out / "compare.parquet", "png": out / "compare.png",
             "bytes_png": out / "compare_bytes.png"}
    plain = table.copy()
    plain.attrs = {}
    plain.to_csv(paths["csv"], index=False, float_format="%.9g")
    plain.to_parquet(paths["parquet"], index=False, engine="pyarrow")
    if (table["status"] == "ok").any():
        metrics_figure(table, title).savefig(paths["png"], dpi=130)
        bytes_figure(table, title).savefig(paths["bytes_png"], dpi=130)
    else:
        del paths["png"], paths["bytes_png"]
    return paths
