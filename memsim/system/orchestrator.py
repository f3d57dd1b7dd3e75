"""SimPy orchestration of ops and transfers over compute units, memory tiers and links.

One process per compute unit runs the ops assigned to it in trace order (the trace order is a valid
topological order, so a unit never waits on an op queued behind it); before an op starts, every op it
depends on and every transfer it needs must be done. One process per link moves the plan's transfers
in order, each after the op it waits for. A tier is a SimPy resource of capacity one, held for the
whole of each op that touches it, but only where ops of two units can contend for it (a tier used by
a single unit needs no arbitration, which keeps large traces fast). Time is integer ps.

What is simplified: a tier serves one op at a time (see :mod:`memsim.system.simulator`); links are FIFO,
one transfer at a time, each taking ``latency + bytes / min(link, source tier, destination tier
bandwidth)`` (or the policy's own ``service_ps`` when longer); a transfer's traffic and streaming
energy on its two tiers are counted, but its traffic is not arbitrated against the ops
using them (a link is normally far slower than the memories it joins, so it takes a small share of
their bandwidth; prefetching over it overlaps compute, which is the point of prefetching).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import simpy

from memsim.errors import MemsimError


@dataclass
class Schedule:
    start: np.ndarray  # int64 ps per op
    end: np.ndarray
    transfers: pd.DataFrame  # one row per transfer: name, link, src, dst, bytes, start_ps, end_ps, energy_pj


def _edges(trace) -> tuple[np.ndarray, np.ndarray]:
    """Dependency edges (src must finish before dst starts) as two int64 arrays."""
    if hasattr(trace, "edge_arrays"):
        src, dst = trace.edge_arrays()
        return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    deps = trace.ops["deps"].tolist()
    d = [np.asarray(x if x is not None else [], dtype=np.int64) for x in deps]
    lens = np.array([len(x) for x in d], dtype=np.int64)
    return (np.concatenate(d) if d else np.zeros(0, np.int64)), np.repeat(np.arange(len(d)), lens)


def tier_bandwidth(system, tier: str) -> float:
    """Peak bandwidth of a whole tier (B/s): its devices' peak times their count."""
    from memsim.system.tiers import tier_model

    t = system.tiers[tier]
    return tier_model(t).peak_bandwidth * t.count


def orchestrate(trace, system, plan, times, *, progress=None) -> Schedule:
    ops = trace.ops

    def tier_bw(name: str) -> float:
        return tier_bandwidth(system, name) if name in system.tiers else float("inf")

    energy_memo: dict[tuple[str, bool], float] = {}

    def tier_energy_per_byte(name: str, write: bool) -> float:
        """Streaming energy of a tier per byte (its analytical stream model); 0 for a unit endpoint."""
        if name not in system.tiers:
            return 0.0
        key = (name, write)
        if key not in energy_memo:
            from memsim.system.tiers import tier_model

            ref = 1 << 20
            energy_memo[key] = tier_model(system.tiers[name]).stream("analytical", float(ref), write).energy_pj / ref
        return energy_memo[key]

    n = len(ops)
    env = simpy.Environment()
    dur = times.duration_ps.tolist()
    touched = times.tiers
    unit_of = times.unit
    # A unit runs its ops in trace order, so a dependency on an earlier op of the same unit is met by
    # construction; only dependencies across units need events (this keeps one-unit traces cheap).
    src, dst = _edges(trace)
    if len(src) and np.any(src >= dst):
        raise MemsimError("the trace is not in topological order (an op depends on a later one)")
    codes = {u: k for k, u in enumerate(sorted(set(unit_of.tolist())))}
    ucode = np.array([codes[u] for u in unit_of], dtype=np.int64) if n else np.zeros(0, np.int64)
    cross = ucode[src] != ucode[dst] if len(src) else np.zeros(0, bool)
    deps: dict[int, list[int]] = {}
    for a, b in zip(src[cross].tolist(), dst[cross].tolist()):
        deps.setdefault(b, []).append(a)

    # tiers that more than one process can touch need arbitration
    users: dict[str, set] = {}
    for i in range(n):
        for t in touched[i]:
            users.setdefault(t, set()).add(unit_of[i])
    tr_list = list(plan.transfers)
    links_for = []
    for k, tr in enumerate(tr_list):
        link = system.link_between(tr.src, tr.dst)
        if link is None:
            raise MemsimError(f"transfer {tr.name or k} from '{tr.src}' to '{tr.dst}': no link joins these tiers")
        links_for.append(link)
    shared = {t for t, u in users.items() if len(u) > 1}
    resources = {t: simpy.Resource(env, capacity=1) for t in sorted(shared)}

    tr_after = {tr.after for tr in tr_list if tr.after >= 0}
    evented = set(src[cross].tolist()) | tr_after
    done = {i: env.event() for i in sorted(evented)}
    start = np.zeros(n, dtype=np.int64)
    end = np.zeros(n, dtype=np.int64)
    needs: dict[int, list] = {}
    tr_done = [env.event() for _ in tr_list]
    for k, tr in enumerate(tr_list):
        if not -1 <= tr.after < n or not 0 <= tr.before < n or (tr.after >= tr.before):
            raise MemsimError(f"transfer {tr.name or k}: 'after' ({tr.after}) must precede 'before' ({tr.before}) "
                              f"within the {n} ops")
        if not -1 <= tr.after_transfer < k:
            raise MemsimError(f"transfer {tr.name or k}: 'after_transfer' ({tr.after_transfer}) must name an "
                              f"earlier transfer of the plan (or be -1)")
        needs.setdefault(tr.before, []).append(tr_done[k])
    finished = [0]
    step = max(1, n // 100)

    def run_unit(op_ids):
        for i in op_ids:
            waits = [done[d] for d in deps.get(i, ()) if not done[d].triggered]
            waits += [e for e in needs.get(i, ()) if not e.triggered]
            if waits:
                yield env.all_of(waits)
            held = [(t, resources[t].request()) for t in touched[i] if t in resources]
            for _, req in held:
                yield req
            start[i] = env.now
            yield env.timeout(dur[i])
            for t, req in held:
                resources[t].release(req)
            end[i] = env.now
            if i in done:
                done[i].succeed()
            finished[0] += 1
            if progress is not None and finished[0] % step == 0:
                progress(finished[0], n)

    tr_rows = []

    def run_link(items):
        link_res = simpy.Resource(env, capacity=1)
        for k in items:
            tr, link = tr_list[k], links_for[k]
            if tr.after >= 0 and not done[tr.after].triggered:
                yield done[tr.after]
            if tr.after_transfer >= 0 and not tr_done[tr.after_transfer].triggered:
                yield tr_done[tr.after_transfer]
            with link_res.request() as lr:
                yield lr
                t0 = env.now
                bw = min(link.bandwidth_bytes_per_s, tier_bw(tr.src), tier_bw(tr.dst))
                t = link.latency_ps + tr.bytes / bw * 1e12
                if tr.service_ps is not None:
                    t = max(t, float(tr.service_ps))
                yield env.timeout(int(np.ceil(t)))
            e_link = tr.bytes * 8 * link.energy_pj_per_bit
            e_src = tr.bytes * tier_energy_per_byte(tr.src, False)
            e_dst = tr.bytes * tier_energy_per_byte(tr.dst, True)
            tr_rows.append({"name": tr.name or f"transfer{k}", "link": link.name, "src": tr.src, "dst": tr.dst,
                            "bytes": int(tr.bytes), "start_ps": int(t0), "end_ps": int(env.now),
                            "link_energy_pj": e_link, "src_energy_pj": e_src, "dst_energy_pj": e_dst,
                            "energy_pj": e_link + e_src + e_dst, "before_op": tr.before})
            tr_done[k].succeed()

    by_unit: dict[str, list[int]] = {}
    for i in range(n):
        by_unit.setdefault(unit_of[i], []).append(i)
    for name in sorted(by_unit):
        env.process(run_unit(by_unit[name]))
    by_link: dict[str, list[int]] = {}
    for k, link in enumerate(links_for):
        by_link.setdefault(link.name, []).append(k)
    for name in sorted(by_link):
        env.process(run_link(by_link[name]))
    env.run()
    if finished[0] != n:
        raise MemsimError(f"the schedule deadlocked: {n - finished[0]} of {n} ops never ran; "
                          f"check the trace's dependencies and the plan's transfers")
    cols = ["name", "link", "src", "dst", "bytes", "start_ps", "end_ps", "link_energy_pj", "src_energy_pj",
            "dst_energy_pj", "energy_pj", "before_op"]
    transfers = pd.DataFrame(tr_rows, columns=cols).sort_values(["start_ps", "name"], kind="stable") \
        .reset_index(drop=True)
    return Schedule(start, end, transfers)
