"""Ops on a PIM unit: the trace's op shapes mapped onto :mod:`memsim.pim.api` operators.

==============  ===================================================================================
op kind         PIM operator (per device of the tier; ``count`` devices work in parallel)
==============  ===================================================================================
gemm, lm_head   ``m`` GEMVs ``(n x k) . x`` one after another (one per activation row: batch x tokens),
                the ``n`` output rows split evenly over the tier's devices (weights stationary)
attn_score      score GEMVs over ``n`` keys of ``k`` elements: every (sequence, head) pair of the batch is an
                independent GEMV with its own K, so the ``batch x heads`` pairs are spread evenly over the
                devices (AttAcc maps requests and heads to stacks), one round per query token ``m``
attn_av         P.V GEMVs, ``k`` keys by ``n`` = head_dim, (sequence, head) pairs spread as above
elementwise     an element-wise add of ``m x n`` elements split over the devices (operands in the banks)
==============  ===================================================================================

Other kinds (softmax, norms, activations with transcendental functions, RoPE, embeddings, routing) do
not run on PIM: a policy must assign them to another unit, and the simulator says so if it does not.

What is simplified: each op's PIM operands are assumed resident in the layout the PIM model uses (no
re-layout cost); GEMVs of one op's rows run back to back without overlapping; the time of an op is
the PIM model's time for one device's share (devices are identical and work in parallel); the PIM
model's own external traffic (input vector, results) is its I/O cost.
"""
from __future__ import annotations

import math

import numpy as np

from memsim.errors import MemsimError

PIM_KINDS = ("gemm", "lm_head", "attn_score", "attn_av", "elementwise")


def _result(cfg, kind: str, m: int, n: int, k: int, batch: int, heads: int, count: int, layout: str, dtype: str):
    from memsim.pim import api

    if kind in ("gemm", "lm_head"):
        r = api.gemv(cfg, max(1, math.ceil(n / count)), k, dtype, layout)
        return r, m
    pairs = max(1, math.ceil(batch * heads / count))  # (sequence, head) GEMVs per device
    if kind == "attn_score":
        return api.attention_score(cfg, n, k, pairs, dtype), m
    if kind == "attn_av":
        return api.attention_av(cfg, k, n, pairs, dtype), m
    if kind == "elementwise":
        return api.elementwise(cfg, max(1, math.ceil(m * n / count)), "add", dtype), 1
    raise AssertionError(kind)


def pim_dtype(cfg, dtype: str) -> str:
    """The datatype the PIM units compute in: the trace's weight type, or the device's own 16-bit type for
    a 16-bit trace type it lacks (fp16 on a BF16-only unit: same bytes and MAC rate, numerics aside)."""
    from memsim.pim.config import DTYPE_BYTES

    if dtype in cfg.device.dtypes:
        return dtype
    same = [d for d in cfg.device.dtypes if DTYPE_BYTES.get(d) == DTYPE_BYTES.get(dtype)]
    if not same:
        raise MemsimError(f"PIM device {cfg.name} computes in {', '.join(cfg.device.dtypes)}, not {dtype}")
    return same[0]


def pim_op_times(ops, sel: np.ndarray, unit, tier, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time ps, energy pJ, bytes moved inside and across the device) of the selected ops on a PIM unit."""
    cfg = tier.other
    dtype = pim_dtype(cfg, dtype)
    kinds = ops["kind"].to_numpy(dtype=object)[sel]
    bad = sorted(set(kinds.tolist()) - set(PIM_KINDS))
    if bad:
        first = ops["name"].to_numpy(dtype=object)[sel][np.isin(kinds, bad)][0]
        raise MemsimError(f"op '{first}' ({bad[0]}) cannot run on PIM unit '{unit.name}' ({unit.preset}): PIM runs "
                          f"{', '.join(PIM_KINDS)}; assign the other kinds to a host unit")
    cols = [ops[c].to_numpy()[sel] for c in ("m", "n", "k", "batch", "heads")]
    t = np.zeros(len(kinds))
    e = np.zeros(len(kinds))
    b = np.zeros(len(kinds))
    memo: dict[tuple, tuple[float, float, float]] = {}
    for i, key in enumerate(zip(kinds.tolist(), *(c.tolist() for c in cols))):
        if key not in memo:
            r, reps = _result(cfg, *key, tier.count, unit.layout, dtype)
            memo[key] = (r.time_ps * reps, r.energy_pj["total"] * reps * tier.count,
                         (r.bytes_internal + r.bytes_external) * reps * tier.count)
        t[i], e[i], b[i] = memo[key]
    return t, e, b
