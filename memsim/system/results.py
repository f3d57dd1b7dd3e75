"""Results of one system run: headline metrics, a stats tree, per-op rows, and the timeline.

Definitions (times in seconds in the metrics, integer ps in the per-op table):

* ``ttft_s``: time to first token = the end of the prefill phase, which includes the LM head of the
  last prompt token (the first generated token's logits).
* ``tpot_s``: time per output token = mean duration of a decode step (the end of step s minus the end of
  step s-1, step 0 being prefill). memsim's traces have ``generated_tokens`` decode steps, each
  producing one token per sequence; TPOT averages over them (``tpot_p99_s``: their 99th percentile).
* ``tokens_per_s``: batch x decode steps / decode time (decode throughput); ``e2e_tokens_per_s`` divides
  by the whole run instead.
* ``energy_per_token_j``: decode energy (compute + memory + transfers, plus every unit's
  ``energy.static_power`` over the decode time) / (batch x decode steps). The shipped compute presets set
  no static power (no sourced idle or board power), so by default energy is dynamic energy only.
* ``bytes_<tier>``: bytes read and written on that tier over the run; ``bytes_per_decode_step_<tier>``
  the mean per decode step.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from memsim.results import canonical_json, to_jsonable


def _nan_to_none(x: float) -> float | None:
    return None if x != x else x


@dataclass
class SystemResult:
    hw: Any
    trace: Any
    scenario: Any
    policy: Any
    plan: Any
    fidelity: str
    ops: pd.DataFrame
    occupancy: dict[str, int]
    transfers: pd.DataFrame
    tier_energy: dict[str, np.ndarray]
    wall_s: dict[str, float] = field(default_factory=dict)
    resolved: dict = field(default_factory=dict)  # the resolved inputs (set by the API; names the run folder)

    # ------------------------------------------------------------------ metrics
    def _phase_end(self, phase: str) -> int:
        sel = self.ops["phase"].to_numpy() == phase
        return int(self.ops["end_ps"].to_numpy()[sel].max()) if sel.any() else 0

    def decode_step_times_ps(self) -> np.ndarray:
        o = self.ops
        dec = o[o["phase"] == "decode"]
        if dec.empty:
            return np.zeros(0, dtype=np.int64)
        ends = dec.groupby("step", sort=True)["end_ps"].max().to_numpy()
        prev = np.concatenate([[self._phase_end("prefill")], ends[:-1]])
        return ends - prev

    def metrics(self) -> dict[str, float]:
        o = self.ops
        batch = int(self.scenario.batch)
        end = int(max(o["end_ps"].max(), self.transfers["end_ps"].max() if len(self.transfers) else 0))
        ttft = self._phase_end("prefill")
        steps = self.decode_step_times_ps()
        decode_time = float(steps.sum())
        n_tok = batch * len(steps)
        dec = (o["phase"] == "decode").to_numpy()
        e_comp = o["compute_energy_pj"].to_numpy()
        e_mem = o["memory_energy_pj"].to_numpy()
        e_link_dec = 0.0
        if len(self.transfers):
            before = self.transfers["before_op"].to_numpy()
            in_dec = dec[before]
            e_link_dec = float(self.transfers["energy_pj"].to_numpy()[in_dec].sum())
        # static power of every unit (``energy.static_power``), drawn for the whole run, busy or not
        p_static_w = sum(getattr(u, "static_power_mw", 0.0) for u in self.hw.section("system").units.values()) * 1e-3
        e_dec = float(e_comp[dec].sum() + e_mem[dec].sum()) + e_link_dec + p_static_w * decode_time
        m: dict[str, float] = {
            "ttft_s": ttft * 1e-12,
            "tpot_s": _nan_to_none(steps.mean() * 1e-12) if len(steps) else None,
            "tpot_p99_s": float(np.percentile(steps, 99)) * 1e-12 if len(steps) else None,
            "tokens_per_s": n_tok / (decode_time * 1e-12) if decode_time else None,
            "e2e_tokens_per_s": n_tok / (end * 1e-12) if end else None,
            "total_time_s": end * 1e-12,
            "energy_per_token_j": e_dec * 1e-12 / n_tok if n_tok else None,
            "prefill_energy_j": (float(e_comp[~dec].sum() + e_mem[~dec].sum()) + p_static_w * ttft) * 1e-12,
            "total_energy_j": (float(e_comp.sum() + e_mem.sum() + (self.transfers["energy_pj"].sum()
                                     if len(self.transfers) else 0.0)) + p_static_w * end) * 1e-12,
            "static_energy_j": p_static_w * end * 1e-12,
            "compute_energy_j": float(e_comp.sum()) * 1e-12,
            "memory_energy_j": float(e_mem.sum()) * 1e-12,
            "transfer_energy_j": float(self.transfers["energy_pj"].sum()) * 1e-12 if len(self.transfers) else 0.0,
            "flops": float(o["flops"].sum()),
            "ops": float(len(o)),
        }
        tiers = sorted({c[len("bytes_"):] for c in o.columns if c.startswith("bytes_")}
                       | (set(self.transfers["src"]) | set(self.transfers["dst"]) if len(self.transfers) else set()))
        sysc = self.hw.section("system")
        for tier in tiers:
            if tier not in sysc.tiers:
                continue  # a transfer endpoint that is a unit, not a tier
            col = f"bytes_{tier}"
            total = float(o[col].sum()) if col in o else 0.0
            per_dec = float(o[col].to_numpy()[dec].sum()) if col in o else 0.0
            if len(self.transfers):
                t = self.transfers
                touch = ((t["src"] == tier) | (t["dst"] == tier)).to_numpy()
                b = t["bytes"].to_numpy()
                total += float(b[touch].sum())
                per_dec += float(b[touch & dec[t["before_op"].to_numpy()]].sum())
            m[f"bytes_{tier}"] = total
            if len(steps):
                m[f"bytes_per_decode_step_{tier}"] = per_dec / len(steps)
        if len(self.transfers):
            for link, g in self.transfers.groupby("link", sort=True):
                m[f"bytes_link_{link}"] = float(g["bytes"].sum())
        for k, v in sorted(self.plan.metrics.items()):
            m[f"policy_{k}"] = float(v)
        return m

    # ------------------------------------------------------------------ breakdowns
    def breakdown(self, by: str = "kind", phase: str | None = "decode") -> pd.DataFrame:
        """Time (sum of op durations), FLOPs, bytes and energy grouped by ``by`` (kind, layer, unit)."""
        o = self.ops if phase is None else self.ops[self.ops["phase"] == phase]
        d = o.assign(time_ps=o["end_ps"] - o["start_ps"],
                     bound=np.where(o["compute_ps"] >= o["memory_ps"], "compute", "memory"))
        g = d.groupby(by, sort=True).agg(ops=("op", "size"), time_ps=("time_ps", "sum"), flops=("flops", "sum"),
                                         bytes=("bytes", "sum"), compute_energy_pj=("compute_energy_pj", "sum"),
                                         memory_energy_pj=("memory_energy_pj", "sum"))
        g["time_share"] = g["time_ps"] / max(1, g["time_ps"].sum())
        return g.reset_index()

    def utilisation(self, bins: int = 50) -> pd.DataFrame:
        """Busy fraction of each unit over ``bins`` equal slices of the run."""
        o = self.ops
        end = max(1, int(o["end_ps"].max()))
        edges = np.linspace(0, end, bins + 1)
        rows = []
        for unit, g in o.groupby("unit", sort=True):
            s = g["start_ps"].to_numpy(dtype=np.float64)
            e = g["end_ps"].to_numpy(dtype=np.float64)
            busy = np.zeros(bins)
            for k in range(bins):
                lo, hi = edges[k], edges[k + 1]
                busy[k] = np.clip(np.minimum(e, hi) - np.maximum(s, lo), 0, None).sum() / (hi - lo)
            rows += [{"unit": unit, "t0_s": edges[k] * 1e-12, "t1_s": edges[k + 1] * 1e-12, "busy": busy[k]}
                     for k in range(bins)]
        return pd.DataFrame(rows)

    # ------------------------------------------------------------------ outputs
    def stats(self) -> dict:
        """The stats tree: system -> units / tiers / links, plus the run's metrics."""
        sysc = self.hw.section("system")
        o = self.ops
        end = max(1, int(o["end_ps"].max()))
        units = {}
        for name, u in sysc.units.items():
            g = o[o["unit"] == name]
            units[name] = {"preset": u.preset, "ops": int(len(g)), "flops": float(g["flops"].sum()),
                           "busy_s": float((g["end_ps"] - g["start_ps"]).sum()) * 1e-12,
                           "utilisation": float((g["end_ps"] - g["start_ps"]).sum()) / end,
                           "compute_energy_j": float(g["compute_energy_pj"].sum()) * 1e-12}
        tiers = {}
        m = self.metrics()
        tr = self.transfers
        for name, t in sysc.tiers.items():
            e = float(self.tier_energy[name].sum()) if name in self.tier_energy else 0.0
            if len(tr):
                e += float(tr.loc[tr["src"] == name, "src_energy_pj"].sum() + tr.loc[tr["dst"] == name, "dst_energy_pj"].sum())
            preset = t.dram.name if t.dram is not None else getattr(t.other, "name", None)
            tiers[name] = {"device": t.device, "count": t.count, "preset": preset,
                           "occupancy_bytes": int(self.occupancy.get(name, 0)),
                           "bytes": m.get(f"bytes_{name}", 0.0), "energy_j": e * 1e-12}
        links = {}
        for name in sysc.links:
            g = self.transfers[self.transfers["link"] == name] if len(self.transfers) else self.transfers
            links[name] = {"transfers": int(len(g)), "bytes": float(g["bytes"].sum()) if len(g) else 0.0,
                           "energy_j": float(g["link_energy_pj"].sum()) * 1e-12 if len(g) else 0.0}
        return to_jsonable({
            "metrics": m, "fidelity": self.fidelity, "policy": self.policy.name,
            "plan_notes": list(self.plan.notes), "model": self.scenario.model.name,
            "scenario": {k: v for k, v in self.scenario.resolved().items() if k != "model"},
            "system": {"units": units, "tiers": tiers, "links": links},
            "breakdown_decode_by_kind": self.breakdown("kind").to_dict(orient="records"),
            "breakdown_decode_by_layer": self.breakdown("layer").to_dict(orient="records"),
            "breakdown_prefill_by_kind": self.breakdown("kind", phase="prefill").to_dict(orient="records"),
        })

    def chrome_trace(self) -> dict:
        """A Chrome / Perfetto trace (``chrome://tracing``, ui.perfetto.dev): one track per unit and link."""
        o = self.ops
        events = []
        pids = {u: i + 1 for i, u in enumerate(sorted(set(o["unit"].tolist())))}
        for u, pid in pids.items():
            events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"unit {u}"}})
        for row in o[["name", "kind", "unit", "start_ps", "end_ps", "phase", "step", "flops", "bytes"]] \
                .itertuples(index=False):
            events.append({"ph": "X", "name": row.name, "cat": row.kind, "pid": pids[row.unit], "tid": 1,
                           "ts": row.start_ps / 1e6, "dur": (row.end_ps - row.start_ps) / 1e6,
                           "args": {"phase": row.phase, "step": int(row.step), "flops": int(row.flops),
                                    "bytes": int(row.bytes)}})
        if len(self.transfers):
            base = len(pids) + 1
            lpid = {l: base + i for i, l in enumerate(sorted(set(self.transfers["link"])))}
            for l, pid in lpid.items():
                events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": f"link {l}"}})
            for r in self.transfers.itertuples(index=False):
                events.append({"ph": "X", "name": r.name, "cat": "transfer", "pid": lpid[r.link], "tid": 1,
                               "ts": r.start_ps / 1e6, "dur": (r.end_ps - r.start_ps) / 1e6,
                               "args": {"bytes": int(r.bytes), "src": r.src, "dst": r.dst}})
        return {"traceEvents": events, "displayTimeUnit": "ns"}

    def files(self) -> dict[str, bytes]:
        """The run folder's files: stats.json, ops.parquet, transfers.parquet, utilisation.parquet, timeline.json."""
        import io

        def parquet(df: pd.DataFrame) -> bytes:
            buf = io.BytesIO()
            df.to_parquet(buf, index=False, engine="pyarrow", compression="zstd")
            return buf.getvalue()

        return {"stats.json": canonical_json(self.stats(), indent=2) + b"\n",
                "ops.parquet": parquet(self.ops),
                "transfers.parquet": parquet(self.transfers),
                "utilisation.parquet": parquet(self.utilisation()),
                "timeline.json": json.dumps(self.chrome_trace(), separators=(",", ":")).encode()}
