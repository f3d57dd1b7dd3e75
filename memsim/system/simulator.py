"""The system simulator: an op trace, a hardware config and a policy in; timings, energy and traffic out.

Pipeline (one direction):

1. The policy proposes a :class:`~memsim.policies.Plan` (tensor -> tier, op -> unit, transfers).
2. Capacities are checked: the weights, the KV cache at its final length and the peak of live
   activations placed on each tier must fit (``CapacityError`` otherwise; never silent).
3. Every op's service time is computed from its FLOPs and its memory streams at the chosen fidelity
   (:mod:`memsim.system.service`): ``kernel overhead + max(compute time, slowest tier's memory time)``,
   i.e. compute and memory overlap inside an op (the roofline), tiers are accessed in parallel, and a
   tier's read and write streams of one op add up.
4. The SimPy orchestrator (:mod:`memsim.system.orchestrator`) runs one process per compute unit and per
   link; a tier is a resource held by the op or transfer using it, so ops on different units overlap
   unless they contend for a tier, and a transfer overlaps compute if the plan schedules it early.
   An event is an op or a transfer, never a DRAM command.

What is simplified: an op holds its tiers for its whole duration (a tier serves one op or transfer at a
time at full bandwidth, which equals fair sharing for bandwidth-bound work but loses overlap of a
compute-bound op with another op's memory traffic on the same tier); the compute time of an op is its
FLOPs at the unit's peak times a constant efficiency (no tile quantisation); no caching of weights
or KV in on-chip SRAM across ops; activations are charged to their tier in full.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from memsim.errors import MemsimError
from memsim.system import service
from memsim.system.config import SystemConfig
from memsim.system.tiers import TierModel, tier_model

#: op kinds that run on the matrix engine; every other kind runs on the vector units.
MATRIX_KINDS = frozenset({"gemm", "lm_head", "attn_score", "attn_av"})


class CapacityError(MemsimError):
    """A placement puts more bytes on a tier than it holds."""


@dataclass
class OpTimes:
    """Per-op service model output, arrays aligned with ``trace.ops``."""

    unit: np.ndarray          # unit name per op (object)
    compute_ps: np.ndarray    # float
    memory_ps: np.ndarray     # float (slowest tier, after the unit's memory efficiency)
    duration_ps: np.ndarray   # int64
    tiers: list[list[str]]    # tiers each op touches
    tier_bytes: dict[str, np.ndarray]      # bytes per op per tier (read + write)
    tier_energy_pj: dict[str, np.ndarray]  # memory energy per op per tier
    compute_energy_pj: np.ndarray
    flops: np.ndarray         # after the plan's overrides


def _compute_dtype(trace) -> str:
    """Matrix engines compute in the activation datatype (int8/int4 weights are dequantised on load)."""
    return trace.meta["dtypes"]["activations"]


def tensor_tiers(trace, plan) -> dict[str, str]:
    """The tier of every tensor: the plan's explicit placement, else the default of its kind."""
    t = trace.tensors
    out = {}
    for tid, kind in zip(t["tensor"].tolist(), t["kind"].tolist()):
        out[tid] = plan.tensor_tier.get(tid) or plan.default_tier[kind]
    return out


def tier_occupancy(trace, placement: dict[str, str]) -> dict[str, int]:
    """Bytes each tier must hold: weights and KV in full, activations at their peak of live bytes."""
    t = trace.tensors
    tiers = np.array([placement[x] for x in t["tensor"].tolist()], dtype=object)
    kind = t["kind"].to_numpy()
    nbytes = t["bytes"].to_numpy(dtype=np.int64)
    occ: dict[str, int] = {}
    for tier in sorted(set(tiers.tolist())):
        sel = tiers == tier
        fixed = int(nbytes[sel & (kind != "activation")].sum())
        act = sel & (kind == "activation")
        peak = 0
        if act.any():
            first = t["first_op"].to_numpy()[act]
            last = t["last_op"].to_numpy()[act]
            b = nbytes[act]
            # live bytes after each op boundary: +b at first_op, -b after last_op
            ev_t = np.concatenate([first * 2, last * 2 + 1])
            ev_b = np.concatenate([b, -b])
            order = np.argsort(ev_t, kind="stable")
            peak = int(np.cumsum(ev_b[order]).max())
        occ[tier] = fixed + peak
    return occ


def tier_capacity(system: SystemConfig, tier: str) -> int:
    t = system.tiers[tier]
    return int(tier_model(t).capacity_bytes) * t.count


def check_capacity(system: SystemConfig, occupancy: dict[str, int]) -> None:
    for tier, need in occupancy.items():
        if tier not in system.tiers:
            raise MemsimError(f"the plan places tensors on unknown tier '{tier}'; tiers: {', '.join(system.tiers)}")
        cap = tier_capacity(system, tier)
        if need > cap:
            raise CapacityError(f"tier '{tier}' holds {cap / 2**30:.2f} GiB but the placement needs "
                                f"{need / 2**30:.2f} GiB (weights + KV cache + peak activations); choose a "
                                f"policy that spills, fewer tokens or a smaller batch")


def _stream_table(fidelity: str, model: TierModel, per_device: np.ndarray, write: bool
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Time (ps) and energy (pJ) of one stream per op on one device; memoised on distinct sizes."""
    t = np.zeros(per_device.shape, dtype=np.float64)
    e = np.zeros(per_device.shape, dtype=np.float64)
    nz = per_device > 0
    if not nz.any():
        return t, e
    if model.linear(fidelity):
        ref = 1 << 20
        one = model.stream(fidelity, float(ref), write)
        t[nz] = per_device[nz] * (one.time_ps / ref)
        e[nz] = per_device[nz] * (one.energy_pj / ref)
        return t, e
    sizes, inverse = np.unique(per_device[nz], return_inverse=True)
    st = [model.stream(fidelity, float(s), write) for s in sizes]
    t[nz] = np.array([x.time_ps for x in st])[inverse]
    e[nz] = np.array([x.energy_pj for x in st])[inverse]
    return t, e


def op_times(trace, system: SystemConfig, plan, fidelity: str) -> OpTimes:
    """Service time of every op (vectorised over the trace; cycle fidelity memoises per stream size)."""
    if fidelity not in service.FIDELITIES:
        raise MemsimError(f"unknown fidelity {fidelity!r}; expected one of {', '.join(service.FIDELITIES)}")
    ops = trace.ops
    n = len(ops)
    placement = tensor_tiers(trace, plan)
    unit_names = np.asarray(plan.op_unit, dtype=object)
    if unit_names.shape != (n,):
        raise MemsimError(f"policy returned {unit_names.shape} unit assignments for {n} ops")
    unknown = set(unit_names.tolist()) - set(system.units)
    if unknown:
        raise MemsimError(f"policy assigns ops to unknown units {sorted(unknown)}; units: {', '.join(system.units)}")

    def tiers_of(col: str, kind: str) -> np.ndarray:
        ids = ops[col].to_numpy(dtype=object)
        default = plan.default_tier[kind]
        return np.array([placement.get(x, default) if x else default for x in ids], dtype=object)

    w_tier = tiers_of("weight", "weight")
    kv_tier = tiers_of("kv", "kv")
    act_tier = tiers_of("out", "activation")

    reads: dict[str, np.ndarray] = {}
    writes: dict[str, np.ndarray] = {}

    def add(store, tier, mask, values):
        arr = store.setdefault(tier, np.zeros(n, dtype=np.float64))
        arr[mask] += values[mask]

    def col(c: str) -> np.ndarray:
        if c in plan.op_overrides:
            v = np.asarray(plan.op_overrides[c], dtype=np.float64)
            if v.shape != (n,):
                raise MemsimError(f"policy override of '{c}' has shape {v.shape}, expected ({n},)")
            return v
        return ops[c].to_numpy(dtype=np.float64)

    pim_units = {name for name, u in system.units.items() if getattr(u, "kind", "") == "pim"}
    on_pim = np.isin(unit_names, list(pim_units)) if pim_units else np.zeros(n, dtype=bool)
    # activations are read from the tier of the op's own output (inputs are placed like outputs);
    # ops on PIM units read their operands inside the banks: the PIM model times them instead
    for tiers, store, values in ((w_tier, reads, col("weight_bytes")), (kv_tier, reads, col("kv_read_bytes")),
                                 (kv_tier, writes, col("kv_write_bytes")), (act_tier, reads, col("act_read_bytes")),
                                 (act_tier, writes, col("act_write_bytes"))):
        values = np.where(on_pim, 0.0, values)
        for tier in sorted(set(tiers.tolist())):
            add(store, tier, tiers == tier, values)

    mem_eff = np.array([system.units[u].memory_efficiency for u in unit_names], dtype=np.float64) \
        if len(system.units) > 1 else np.full(n, next(iter(system.units.values())).memory_efficiency)
    tier_time: dict[str, np.ndarray] = {}
    tier_energy: dict[str, np.ndarray] = {}
    tier_bytes: dict[str, np.ndarray] = {}
    models: dict[str, TierModel] = {}
    for tier in sorted(set(reads) | set(writes)):
        if tier not in system.tiers:
            raise MemsimError(f"the plan places tensors on unknown tier '{tier}'; tiers: {', '.join(system.tiers)}")
        tc = system.tiers[tier]
        models[tier] = model = tier_model(tc)
        r = reads.get(tier, np.zeros(n))
        w = writes.get(tier, np.zeros(n))
        tr, er = _stream_table(fidelity, model, r / tc.count, False)
        tw, ew = _stream_table(fidelity, model, w / tc.count, True)
        tier_time[tier] = (tr + tw) / mem_eff
        tier_energy[tier] = (er + ew) * tc.count
        tier_bytes[tier] = r + w
    mem_ps = np.zeros(n)
    for arr in tier_time.values():
        np.maximum(mem_ps, arr, out=mem_ps)
    if fidelity == "event":
        # The first access of each op waits for the device latency before the stream is in flight.
        for tier, arr in tier_bytes.items():
            lat = models[tier].first_access_ps()
            mem_ps = np.where(arr > 0, np.maximum(mem_ps, tier_time[tier] + lat), mem_ps)

    dtype = _compute_dtype(trace)
    kinds = ops["kind"].to_numpy(dtype=object)
    is_matrix = np.isin(kinds, list(MATRIX_KINDS))
    flops = col("flops")
    compute_ps = np.zeros(n)
    overhead = np.zeros(n)
    energy_c = np.zeros(n)
    for name in sorted(set(unit_names.tolist())):
        u = system.units[name]
        sel = unit_names == name
        if name in pim_units:
            from memsim.system.pim_ops import pim_op_times

            tier = system.tiers[u.tier]
            t_pim, e_pim, _ = pim_op_times(ops, sel, u, tier, trace.meta["dtypes"]["weights"])
            mem_ps[sel] = t_pim
            pe = tier_energy.setdefault(u.tier, np.zeros(n))
            pe[sel] += e_pim
            # traffic is reported as the op's own operand bytes (what it reads and writes in the banks),
            # comparable across policies; the PIM model's time and energy include its padding and I/O
            pb = tier_bytes.setdefault(u.tier, np.zeros(n))
            pb[sel] += sum(col(c) for c in ("weight_bytes", "kv_read_bytes", "kv_write_bytes",
                                            "act_read_bytes", "act_write_bytes"))[sel]
            continue
        rate = np.where(is_matrix, u.matrix_rate(dtype) * u.compute_efficiency, u.vector_rate(dtype))
        compute_ps[sel] = (flops / rate * 1e12)[sel]
        overhead[sel] = u.kernel_overhead_ps
        energy_c[sel] = flops[sel] * u.energy_pj_per_flop.get(dtype, 0.0)
    if "overhead_ps" in plan.op_overrides:
        overhead = np.asarray(plan.op_overrides["overhead_ps"], dtype=np.float64)
    duration = np.ceil(overhead + np.maximum(compute_ps, mem_ps)).astype(np.int64)
    touched: list[list[str]] = [[] for _ in range(n)]
    for tier in sorted(tier_bytes):
        for i in np.flatnonzero(tier_bytes[tier] > 0).tolist():
            touched[i].append(tier)
    return OpTimes(unit_names, compute_ps, mem_ps, duration, touched, tier_bytes, tier_energy, energy_c, flops)


def simulate(hw, trace, scenario, policy, *, fidelity: str = "analytical", progress=None):
    """Run one trace through one system. Returns a :class:`memsim.system.results.SystemResult`."""
    from memsim.system.orchestrator import orchestrate
    from memsim.system.results import SystemResult

    system: SystemConfig = hw.section("system")
    t0 = time.perf_counter()
    plan = policy.plan(trace, system)
    placement = tensor_tiers(trace, plan)
    occupancy = tier_occupancy(trace, placement)
    for tier, extra in plan.capacity_extra.items():
        occupancy[tier] = occupancy.get(tier, 0) + int(extra)
    check_capacity(system, occupancy)
    times = op_times(trace, system, plan, fidelity)
    t1 = time.perf_counter()
    sched = orchestrate(trace, system, plan, times, progress=progress)
    t2 = time.perf_counter()
    ops = trace.ops
    table = pd.DataFrame({
        "op": ops["op"].to_numpy(), "name": ops["name"].to_numpy(), "kind": ops["kind"].to_numpy(),
        "phase": ops["phase"].to_numpy(), "step": ops["step"].to_numpy(), "layer": ops["layer"].to_numpy(),
        "unit": times.unit, "start_ps": sched.start, "end_ps": sched.end,
        "compute_ps": times.compute_ps, "memory_ps": times.memory_ps,
        "flops": times.flops.astype(np.int64),
        "bytes": sum(times.tier_bytes.values()).astype(np.int64) if times.tier_bytes else np.zeros(len(ops), np.int64),
        "compute_energy_pj": times.compute_energy_pj,
        "memory_energy_pj": sum(times.tier_energy_pj.values()) if times.tier_energy_pj else np.zeros(len(ops)),
    })
    for tier, b in sorted(times.tier_bytes.items()):
        table[f"bytes_{tier}"] = b.astype(np.int64)
    return SystemResult(hw=hw, trace=trace, scenario=scenario, policy=policy, plan=plan, fidelity=fidelity, ops=table,
                        occupancy=occupancy, transfers=sched.transfers, tier_energy=times.tier_energy_pj,
                        wall_s={"service_model": t1 - t0, "orchestration": t2 - t1})
