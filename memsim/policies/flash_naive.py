"""``flash-naive``: the weights live on flash and every layer is loaded into DRAM for every token.

The baseline of "LLM in a flash" (Alizadeh et al., arXiv 2312.11514, ACL'24): the model does not fit in
the DRAM available to it, so its parameters stay on flash and are read on demand, layer by layer, each
time they are needed, with no reuse across tokens.

What is modelled
----------------
* Placement: every weight tensor lives on the flash tier (``policy.flash``, default: the system's first
  ``device: flash`` tier); weight groups named in ``policy.resident`` stay in DRAM instead
  (``embeddings``: the token/position tables, the final norm and the LM head; ``attention``: the QKV and
  output projections and the attention norms). KV cache and activations live in the DRAM tier the unit
  reads (``policy.dram``, default: the unit's ``memory``). Every op runs on one unit (``policy.unit``,
  default: the first GPU/NPU, else the first unit).
* Per step and per block, one :class:`~memsim.policies.base.Transfer` over the flash-DRAM link carries
  the layer's non-resident weights (bytes: the tensors' full sizes) into a DRAM staging buffer. It waits
  for the op just before the layer (``prefetch: false``, the paper's baseline: load, then compute), or
  for the first op of the previous layer (``prefetch: true``: double buffering), and gates the layer's
  first op. Non-block weights that are not resident are loaded before their first use in the step: the
  gathered rows for an embedding lookup, the whole tensor otherwise (a tied LM head loads the table).
* Where the flash reaches the DRAM tier only through a host tier (``policy.host``, default: the one tier
  linked to both; ``hw_configs/gpu_flash.yaml``: SSD -> host DRAM -> GPU memory, as a plain ``read()``
  then a copy), each load is two transfers, the copy chained after the read (``after_transfer``), and the
  host tier holds a bounce buffer the size of the DRAM staging buffer (``capacity_extra``).
* ``check(system, scenario)`` (run before any trace is made): the unit, its memory tier, a flash tier
  (``device: flash``) and a route between them.
* The ops then read their weights from the staging buffer in DRAM: the policy moves each op's weight
  bytes from the weight stream (flash) to its activation stream (DRAM) with ``op_overrides``, so that
  the flash tier is charged only by the transfers and the DRAM tier by the compute.
* Capacity: the staging buffer (one layer, two with ``prefetch``) is added to the DRAM tier
  (``capacity_extra``); an optional ``dram_budget`` (a size, e.g. ``6.7GB``) is the DRAM the policy may
  use (the paper limits DRAM to about half the model): resident weights + staging + KV cache + peak
  activations must fit in it, or the plan is rejected with an error naming ``policy.dram_budget``.

What is simplified
------------------
* A transfer takes ``link latency + bytes / min(link, flash, DRAM peak bandwidth)`` (the orchestrator's
  rule): a layer is one large sequential read, which the flash model serves at its ceiling (its
  sequential-read kernel comes within 0.2 % of it on the shipped presets). Page-cache effects (the paper
  reads uncached files) and the operating system's copy into the user buffer are not modelled.
* The staging buffer is written by the transfer and read by the ops; the transfer's traffic and
  streaming energy are counted on both of its tiers (flash read energy included) but not arbitrated
  against the ops (the orchestrator's rule). Two hops are not pipelined within one load (read, then copy).

Figures used ("LLM in a flash", via ``shared/hw_params.md`` section 4; tags as there): OPT-6.7B in FP16 is
13.4 GB and the paper's naive row loads all of it per token, with an I/O latency of about 2.1 s [U]
(Table 2, not retrieved, recalled); a 1 GiB linear read on the M2's flash exceeds 6 GiB/s [S].

Units: bytes, ps (``*_ps``) and seconds (``*_s``) as named.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.policies.base import Plan, Transfer, register

#: weight groups that ``policy.resident`` may keep in DRAM
GROUPS = ("embeddings", "attention")


def parse_groups(node: yt.Node) -> tuple[str, ...]:
    """A list of weight groups (``[attention, embeddings]``), or ``none`` / ``[]`` for none."""
    v = node.value
    if isinstance(v, str):
        items = [] if v.strip() in ("none", "") else [s.strip() for s in v.split(",")]
        nodes = [yt.wrap(s, node.file, node.path) for s in items]
    elif isinstance(v, list):
        nodes = [x if isinstance(x, yt.Node) else yt.wrap(x, node.file, node.path) for x in v]
    else:
        raise node.error(f"expected a list of weight groups ({', '.join(GROUPS)}), got {yt.show(v)}")
    out = tuple(yt.choice(*GROUPS)(x) for x in nodes)
    if len(set(out)) != len(out):
        raise node.error(f"a weight group is listed twice: {', '.join(out)}")
    return tuple(sorted(out))


# --------------------------------------------------------------------------------------- shared helpers
def pick_unit(system, name: str | None, policy: str):
    """The unit running the model: ``name``, else the first GPU/NPU, else the first unit."""
    if name is not None:
        if name not in system.units:
            raise ConfigError(f"{policy}: unknown unit {name!r}; units: {', '.join(system.units)}", path="policy.unit")
        return system.units[name]
    accel = [u for u in system.units.values() if u.kind in ("gpu", "npu")]
    return accel[0] if accel else next(iter(system.units.values()))


def pick_tier(system, name: str | None, device: str | None, default: str | None, param: str, policy: str) -> str:
    """A tier by name (checked), else ``default``, else the first tier of ``device``."""
    if name is not None:
        if name not in system.tiers:
            raise ConfigError(f"{policy}: unknown tier {name!r}; tiers: {', '.join(system.tiers)}",
                              path=f"policy.{param}")
        return name
    if default is not None:
        return default
    found = [t for t, c in system.tiers.items() if c.device == device]
    if not found:
        raise ConfigError(f"{policy}: the system has no '{device}' tier (tiers: {', '.join(system.tiers)}); "
                          f"add one or name it with policy.{param}", path=f"policy.{param}")
    return found[0]


def require_link(system, a: str, b: str, policy: str):
    link = system.link_between(a, b)
    if link is None:
        raise ConfigError(f"{policy}: no link joins tiers '{a}' and '{b}'; add one under system.links",
                          path="system.links")
    return link


def flash_route(system, flash: str, dst: str, via: str | None, policy: str) -> list[str]:
    """The tiers a flash read crosses to reach ``dst``: ``[flash, dst]`` over a direct link, or
    ``[flash, host, dst]`` through a bounce tier (``via``, else the one tier linked to both ends).

    A plain ``read()`` lands in host memory and is then copied to the accelerator: two hops, two links.
    """
    if via is not None:
        if via not in system.tiers:
            raise ConfigError(f"{policy}: unknown tier {via!r}; tiers: {', '.join(system.tiers)}", path="policy.host")
        require_link(system, flash, via, policy)
        require_link(system, via, dst, policy)
        return [flash, via, dst]
    if system.link_between(flash, dst) is not None:
        return [flash, dst]
    hosts = [t for t in system.tiers if t not in (flash, dst) and system.link_between(flash, t) is not None
             and system.link_between(t, dst) is not None]
    if len(hosts) == 1:
        return [flash, hosts[0], dst]
    if not hosts:
        raise ConfigError(f"{policy}: no link joins tiers '{flash}' and '{dst}', directly or through one host "
                          f"tier; add one under system.links", path="system.links")
    raise ConfigError(f"{policy}: tiers {', '.join(hosts)} all join '{flash}' to '{dst}'; name the bounce tier "
                      f"with policy.host", path="policy.host")


def hops(route: Sequence[str], nbytes: int, after: int, before: int, name: str,
         service_ps: int | None = None) -> list[Transfer]:
    """One transfer per hop of ``route``; ``service_ps`` (the flash read's own time) on the first hop only.
    The ``after_transfer`` chaining is filled in by :func:`flatten`."""
    out = []
    for j, (a, b) in enumerate(zip(route, route[1:])):
        out.append(Transfer(a, b, int(nbytes), after=after, before=before,
                            name=name if len(route) == 2 else f"{name} {a}->{b}",
                            service_ps=service_ps if j == 0 else None))
    return out


def flatten(groups: list[list[Transfer]]) -> list[Transfer]:
    """The plan's transfer list: groups in (after, before) order, each later hop chained to the one before."""
    out: list[Transfer] = []
    for g in sorted(groups, key=lambda g: (g[0].after, g[0].before)):
        for j, tr in enumerate(g):
            out.append(replace(tr, after_transfer=len(out) - 1) if j else tr)
    return out


def check_flash_system(system, unit: str | None, flash: str | None, dram: str | None, via: str | None,
                       policy: str) -> None:
    """The structural needs of the flash policies: the unit, a flash tier, the DRAM tier and a route."""
    u = pick_unit(system, unit, policy)
    d = pick_tier(system, dram, None, u.memory, "dram", policy)
    if d not in system.tiers:
        raise ConfigError(f"{policy}: the unit '{u.name}' reads tier '{d}', which the system does not define",
                          path=f"system.units.{u.name}.memory")
    f = pick_tier(system, flash, "flash", None, "flash", policy)
    if system.tiers[f].device != "flash":
        raise ConfigError(f"{policy}: tier '{f}' is not a flash tier (device: {system.tiers[f].device})",
                          path="policy.flash")
    flash_route(system, f, d, via, policy)


def weight_groups(trace) -> dict[str, str]:
    """Tensor id -> ``ffn`` / ``attention`` / ``norm`` / ``embeddings`` (non-block weights)."""
    t = trace.tensors
    out = {}
    for tid, kind, layer in zip(t["tensor"].tolist(), t["kind"].tolist(), t["layer"].tolist()):
        if kind != "weight":
            continue
        if layer < 0:
            out[tid] = "embeddings"
        elif ".mlp." in tid or ".moe." in tid:
            out[tid] = "ffn"
        elif ".attn." in tid:
            out[tid] = "attention"
        else:
            out[tid] = "norm"  # attn_norm / mlp_norm: loaded with the attention group
    return out


def tensor_bytes(trace) -> dict[str, int]:
    t = trace.tensors
    return dict(zip(t["tensor"].tolist(), t["bytes"].astype(np.int64).tolist()))


def weights_to_staging(ops, mask: np.ndarray, wb: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Overrides moving the weight reads of ``mask`` ops to their activation stream (a DRAM buffer)."""
    w = ops["weight_bytes"].to_numpy(dtype=np.float64).copy() if wb is None else wb.copy()
    a = ops["act_read_bytes"].to_numpy(dtype=np.float64).copy()
    a[mask] += w[mask]
    w[mask] = 0.0
    return {"weight_bytes": w, "act_read_bytes": a}


def transfer_ps(link, system, src: str, dst: str, nbytes: float) -> float:
    """The orchestrator's time for one transfer (ps): latency + bytes / min(link, tier peaks)."""
    from memsim.system.orchestrator import tier_bandwidth

    bw = min(link.bandwidth_bytes_per_s, tier_bandwidth(system, src), tier_bandwidth(system, dst))
    return link.latency_ps + nbytes / bw * 1e12


def dram_fixed_bytes(trace, dram_weights: Sequence[str]) -> tuple[int, int]:
    """(resident weight bytes, KV-cache bytes at the end of the run)."""
    t = trace.tensors
    tb = dict(zip(t["tensor"].tolist(), t["bytes"].astype(np.int64).tolist()))
    kv = int(t.loc[t["kind"] == "kv", "bytes"].sum())
    return int(sum(tb[x] for x in dram_weights)), kv


def check_budget(budget: int | None, parts: dict[str, int], policy: str) -> int:
    """Raise if the DRAM the plan needs exceeds ``policy.dram_budget``; returns the total."""
    total = int(sum(parts.values()))
    if budget is not None and total > budget:
        detail = ", ".join(f"{k} {v / 1e9:.2f} GB" for k, v in parts.items())
        raise ConfigError(f"{policy}: the plan needs {total / 1e9:.2f} GB of DRAM ({detail}) but "
                          f"policy.dram_budget is {budget / 1e9:.2f} GB", path="policy.dram_budget")
    return total


def peak_activation_bytes(trace) -> int:
    from memsim.system.simulator import tier_occupancy

    t = trace.tensors
    acts = {x: "a" for x in t.loc[t["kind"] == "activation", "tensor"].tolist()}
    other = {x: "o" for x in t.loc[t["kind"] != "activation", "tensor"].tolist()}
    occ = tier_occupancy(trace, {**acts, **other})
    return int(occ.get("a", 0))


# --------------------------------------------------------------------------------------- the policy
@register("flash-naive")
class FlashNaive:
    PARAMS = {"unit": yt.text, "flash": yt.text, "dram": yt.text, "host": yt.text, "resident": parse_groups,
              "prefetch": yt.boolean, "dram_budget": yt.size(positive=True)}

    def __init__(self, unit: str | None = None, flash: str | None = None, dram: str | None = None,
                 host: str | None = None, resident: Sequence[str] = (), prefetch: bool = False,
                 dram_budget: int | None = None):
        self.unit, self.flash, self.dram, self.host = unit, flash, dram, host
        self.resident = tuple(resident)
        self.prefetch = prefetch
        self.dram_budget = dram_budget

    def check(self, system: Any, scenario: Any) -> None:
        """The unit, its DRAM tier, a flash tier and a route between them (before any trace is made)."""
        check_flash_system(system, self.unit, self.flash, self.dram, self.host, self.name)

    def plan(self, trace: Any, system: Any) -> Plan:
        self.check(system, None)
        unit = pick_unit(system, self.unit, self.name)
        dram = pick_tier(system, self.dram, None, unit.memory, "dram", self.name)
        flash = pick_tier(system, self.flash, "flash", None, "flash", self.name)
        route = flash_route(system, flash, dram, self.host, self.name)
        links = [system.link_between(a, b) for a, b in zip(route, route[1:])]
        ops = trace.ops
        n = len(ops)
        groups = weight_groups(trace)
        tb = tensor_bytes(trace)
        keep = set(self.resident)

        def resident(tid: str) -> bool:
            g = groups[tid]
            return g in keep or (g == "norm" and "attention" in keep)

        on_flash = {tid for tid in groups if not resident(tid)}
        tensor_tier = {tid: (flash if tid in on_flash else dram) for tid in groups}

        wid = ops["weight"].to_numpy(dtype=object)
        layer = ops["layer"].to_numpy()
        step = ops["step"].to_numpy()
        kind = ops["kind"].to_numpy(dtype=object)
        wbytes = ops["weight_bytes"].to_numpy(dtype=np.int64)
        staged = np.array([bool(w) and w in on_flash for w in wid.tolist()], dtype=bool)

        groups_tr: list[list[Transfer]] = []
        prev_start = -1  # first op of the previous load group (for prefetch)
        bounds = np.flatnonzero(np.diff(step)) + 1
        starts = np.concatenate([[0], bounds]).tolist()
        ends = np.concatenate([bounds, [n]]).tolist()
        per_step_bytes = {}
        for s0, s1 in zip(starts, ends):
            s = int(step[s0])
            seen: set[str] = set()
            l0 = -2
            total = 0
            for i in range(s0, s1):
                li = int(layer[i])
                if li >= 0 and li != l0:  # the first op of a block: load its weights
                    l0 = li
                    sel = np.arange(i, s1)[layer[i:s1] == li]
                    tids = sorted({w for w in wid[sel].tolist() if w and w in on_flash} - seen)
                    seen.update(tids)
                    b = int(sum(tb[x] for x in tids))
                    if b:
                        after = prev_start if self.prefetch and prev_start >= 0 else i - 1
                        groups_tr.append(hops(route, b, min(after, i - 1), i, f"step{s}.L{li} weights"))
                        prev_start = i
                        total += b
                elif li < 0 and staged[i] and wid[i] not in seen:
                    tid = wid[i]
                    rows_only = kind[i] == "embedding"
                    b = int(wbytes[i]) if rows_only else tb[tid]
                    if not rows_only:
                        seen.add(tid)
                    after = prev_start if self.prefetch and prev_start >= 0 else i - 1
                    groups_tr.append(hops(route, b, min(after, i - 1), i,
                                          f"step{s}.{tid}{' rows' if rows_only else ''}"))
                    prev_start = i
                    total += b
            per_step_bytes[s] = total
        transfers = flatten(groups_tr)
        staging = max((g[0].bytes for g in groups_tr), default=0) * (2 if self.prefetch else 1)
        extra = {dram: staging}
        if len(route) == 3:  # the host bounce buffer: as many layers as the DRAM staging holds
            extra[route[1]] = staging
        res_w, kv = dram_fixed_bytes(trace, [t for t in groups if t not in on_flash])
        used = check_budget(self.dram_budget, {"resident weights": res_w, "staging": staging, "KV cache": kv,
                                               "activations": peak_activation_bytes(trace)}, self.name)
        dec = [b for s, b in per_step_bytes.items() if s > 0]
        flash_per_token = float(np.mean(dec)) if dec else 0.0
        total_w = int(sum(tb[x] for x in groups))
        return Plan(
            default_tier={"weight": flash, "kv": dram, "activation": dram},
            op_unit=np.full(n, unit.name, dtype=object), tensor_tier=tensor_tier, transfers=transfers,
            op_overrides=weights_to_staging(ops, staged), capacity_extra=extra,
            notes=[f"weights on '{flash}' ({(total_w - res_w) / 1e9:.2f} GB), resident in '{dram}': "
                   f"{', '.join(self.resident) or 'nothing'} ({res_w / 1e9:.2f} GB)",
                   f"every layer loaded per token over {' then '.join(repr(x.name) for x in links)} "
                   f"({' -> '.join(route)}) into a {staging / 1e6:.1f} MB staging "
                   f"buffer ({'double-buffered' if self.prefetch else 'load, then compute'})",
                   f"all ops on '{unit.name}' ({unit.preset})"],
            metrics={"flash_bytes_per_token": flash_per_token, "staging_bytes": float(staging),
                     "dram_used_bytes": float(used), "resident_weight_bytes": float(res_w)})


def validation_cases() -> list:
    """The naive/windowing comparisons are defined with flash-windowing (see that module)."""
    return []
