"""FlashAttention-style tiled attention: the HBM <-> SRAM traffic of a tiling, and policy ``flash-attention``.

What is modelled
----------------
:func:`tiled_traffic` maps one attention head (``n_q`` queries, ``n_k`` keys, head dimension ``d``) onto
an on-chip SRAM of ``M`` bytes the way FlashAttention's forward pass does (Dao et al., NeurIPS'22,
Algorithm 1): K and V are cut into column blocks of ``Bc = floor(M / (4 d e))`` rows (``e`` bytes per
element), Q and O into row blocks of ``Br = min(Bc, d)`` rows (made smaller if needed so that the tiles fit);
the outer loop streams each K_j, V_j block into SRAM once, the inner loop streams every Q_i, O_i, l_i, m_i
block in and writes O_i, l_i, m_i back. The SRAM footprint ``e (2 Bc d + 2 Br d + Br Bc) + 8 Br`` (K_j,
V_j, Q_i, O_i, the S/P tile and the fp32 row statistics) is placed in a capacity-checked
:class:`memsim.sram.api.Scratchpad` of ``M`` bytes, so a tiling that does not fit raises. HBM traffic:

* reads: ``2 n_k d e`` (K, V once) + per outer block ``T_c`` times ``2 n_q d e + 8 n_q`` (Q_i, O_i, l, m);
* writes: the initial O, l, m (``n_q d e + 8 n_q``) + per outer block ``n_q d e + 8 n_q``;

with causal masking, (i, j) blocks entirely above the diagonal are skipped (their Q_i / O_i are not
loaded for that j).

**The I/O bound.** FlashAttention's Theorem 2: Θ(N² d² / M) HBM accesses for ``d <= M <= N d``
(M in elements). With ``T_c = N / Bc = 4 N d / M`` outer blocks and ``3 N d`` elements moved per outer
block, the leading term is ``12 N² d² / M`` elements: the constant memsim expects is **12** (non-causal,
Algorithm 1's loop order), about **6** causal (half of the (i, j) blocks); the other terms are ``3 N d``
(K, V read once and O initialised: ``1 / T_c`` relative) and the fp32 statistics l, m read and written per
outer block (``16 / (3 d e)`` relative: 4 % at d = 64 FP16).
:func:`io_bound_elements` is that closed form; the tests check the traffic against it over a grid of
N, d and M >= d² and its scaling exponents (2 in N, 2 in d, -1 in M).

Policy ``flash-attention``: :mod:`hbm-baseline <memsim.policies.hbm_baseline>`'s placement, with each
layer's ``attn.score`` / ``softmax`` / ``attn.av`` fused into one kernel whose HBM traffic is the tiling's
(decode: per batch element and KV head, the query heads of a GQA group stacked as ``H / KV`` query
rows; prefill: per query head, causal); ``softmax`` and ``attn.av`` then move no bytes and pay no kernel overhead. FLOPs
are unchanged (the forward pass recomputes nothing).

What is simplified: one head at a time (no split-K / FlashDecoding parallelism, which changes the
schedule, not the bytes); l and m are kept in fp32; the on-chip SRAM is one thread block's shared memory
(``sram``, default 192 KiB: the A100's SRAM per SM quoted by the FlashAttention paper, section 2.1 [S]).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.policies.base import Plan, register

STAT_BYTES = 4  # fp32 row max m_i and row sum l_i
#: expected constant of the I/O bound (elements = C * N^2 d^2 / M): Algorithm 1, non-causal
IO_CONSTANT = 12.0
DEFAULT_SRAM = 192 * 1024


@dataclass(frozen=True)
class Tiling:
    """One head's tiling and its HBM traffic (bytes)."""

    n_q: int
    n_k: int
    d: int
    sram_bytes: int
    elem_bytes: int
    causal: bool
    bc: int
    br: int
    tc: int
    tr: int
    footprint_bytes: int
    kv_read_bytes: int     # K and V
    q_o_read_bytes: int    # Q_i, O_i and the statistics, over all outer blocks
    write_bytes: int       # O_i and the statistics (initial + per outer block)

    @property
    def total_bytes(self) -> int:
        return self.kv_read_bytes + self.q_o_read_bytes + self.write_bytes


def footprint(d: int, bc: int, br: int, e: int) -> int:
    """SRAM bytes of one step: K_j, V_j (Bc x d), Q_i, O_i (Br x d), S/P (Br x Bc), fp32 l_i and m_i."""
    return e * (2 * bc * d + 2 * br * d + br * bc) + 2 * STAT_BYTES * br


def tile_sizes(d: int, sram_bytes: int, e: int = 2) -> tuple[int, int]:
    """(Bc, Br): Bc = floor(M / (4 d e)) as in Algorithm 1; Br = min(Bc, d), shrunk until the tiles fit."""
    m = sram_bytes // e
    if m < d * d:
        raise ConfigError(f"flash-attention: the SRAM ({sram_bytes} B = {m} elements) is below d^2 = {d * d}; the "
                          f"I/O bound holds for M >= d^2", path="policy.sram")
    bc = max(1, m // (4 * d))
    br = min(bc, d)
    while br > 1 and footprint(d, bc, br, e) > sram_bytes:
        br -= 1
    if footprint(d, bc, br, e) > sram_bytes:
        raise ConfigError(f"flash-attention: no tiling of d = {d} fits {sram_bytes} B", path="policy.sram")
    return bc, br


def _scratchpad(sram_bytes: int):
    from memsim.sram.api import Scratchpad
    from memsim.sram.config import get_preset

    cfg = dataclasses.replace(get_preset("CACTI7_32KiB_22nm"), capacity_bytes=int(sram_bytes),
                              name=f"attention SRAM {sram_bytes} B")
    return Scratchpad(cfg, align=1)


def tiled_traffic(n_q: int, n_k: int, d: int, sram_bytes: int, e: int = 2, causal: bool = False) -> Tiling:
    """HBM traffic of one head under the tiling of :func:`tile_sizes` (see the module docstring)."""
    bc, br = tile_sizes(d, sram_bytes, e)
    bc = min(bc, n_k)
    br = min(br, n_q)
    pad = _scratchpad(sram_bytes)  # capacity enforced: these allocations raise if the tiles do not fit
    for name, nbytes in (("K_j", bc * d * e), ("V_j", bc * d * e), ("Q_i", br * d * e), ("O_i", br * d * e),
                         ("S_ij", br * bc * e), ("l_i", br * STAT_BYTES), ("m_i", br * STAT_BYTES)):
        pad.allocate(name, nbytes)
    tc = -(-n_k // bc)
    tr = -(-n_q // br)
    row = d * e + 2 * STAT_BYTES  # O row + l + m
    if causal:
        # query t (0-based, of n_q) sits at key position t + n_k - n_q; block (i, j) is skipped when every key
        # of block j lies after every query of block i
        off = n_k - n_q
        q_last = np.minimum((np.arange(tr) + 1) * br, n_q) - 1 + off  # last query position of each row block
        q_rows = np.minimum((np.arange(tr) + 1) * br, n_q) - np.arange(tr) * br
        rows_loaded = 0
        for j in range(tc):
            k_first = j * bc
            rows_loaded += int(q_rows[q_last >= k_first].sum())
    else:
        rows_loaded = tc * n_q
    kv = 2 * n_k * d * e
    q_o = rows_loaded * (2 * d * e + 2 * STAT_BYTES)   # Q_i, O_i, l_i, m_i in
    writes = n_q * row + rows_loaded * row              # initial O, l, m + O_i, l_i, m_i out
    return Tiling(n_q, n_k, d, int(sram_bytes), e, causal, bc, br, tc, tr, pad.used, kv, q_o, writes)


def io_bound_elements(n: int, d: int, m_elements: float, constant: float = IO_CONSTANT) -> float:
    """The leading term of FlashAttention's HBM accesses, ``constant * N^2 d^2 / M`` (elements)."""
    return constant * n * n * d * d / m_elements


def standard_traffic_elements(n: int, d: int) -> int:
    """Standard attention (Algorithm 0): read Q, K (2Nd), write S (N^2), read S / write P (2N^2), read P, V
    (N^2 + Nd), write O (Nd): 4Nd + 4N^2 elements, Θ(Nd + N^2)."""
    return 4 * n * d + 4 * n * n


@register("flash-attention")
class FlashAttention:
    PARAMS = {"sram": yt.size(positive=True), "causal_prefill": yt.boolean, "unit": yt.text}

    def __init__(self, sram: int = DEFAULT_SRAM, causal_prefill: bool = True, unit: str | None = None):
        self.sram, self.causal_prefill, self.unit = int(sram), causal_prefill, unit

    def check(self, system, scenario) -> None:
        """Structural checks before any trace is generated: the unit exists, the SRAM holds M >= d^2."""
        from memsim.policies.kv_paging import accelerator
        from memsim.workload.scenario import DTYPE_BITS

        accelerator(system, self.unit, "flash-attention")
        tile_sizes(int(scenario.model.head_dim), self.sram, max(1, DTYPE_BITS[scenario.act_dtype] // 8))

    def plan(self, trace, system) -> Plan:
        from memsim.policies.kv_paging import accelerator
        from memsim.workload.scenario import DTYPE_BITS

        unit = accelerator(system, self.unit, "flash-attention")
        tier = unit.memory
        ops = trace.ops
        n = len(ops)
        ms = trace.meta["model_spec"]
        H, KVh, hd = int(ms["num_attention_heads"]), int(ms["num_key_value_heads"]), int(ms["head_dim"])
        group = H // KVh
        e = DTYPE_BITS[trace.meta["dtypes"]["activations"]] // 8
        if e < 1:
            raise ConfigError("flash-attention: activations below one byte per element are not supported",
                              path="policy.sram")
        kinds = ops["kind"].to_numpy(dtype=object)
        cols = {c: ops[c].to_numpy(dtype=np.float64).copy() for c in
                ("kv_read_bytes", "act_read_bytes", "act_write_bytes")}
        overhead = np.full(n, float(unit.kernel_overhead_ps))
        before = float(sum(cols[c][np.isin(kinds, ["attn_score", "softmax", "attn_av"])].sum() for c in cols))
        score = np.flatnonzero(kinds == "attn_score")
        batch = ops["batch"].to_numpy()
        step = ops["step"].to_numpy()
        cache: dict[tuple, Tiling] = {}
        last_tiling = None
        prefill_ratio = float("nan")
        for i in score.tolist():
            q, keys, B = int(ops.at[i, "m"]), int(ops.at[i, "n"]), int(batch[i])
            causal = self.causal_prefill and step[i] == 0 and q > 1
            # decode (one query): a GQA group's query heads share K, V -> `group` query rows per (sequence, KV
            # head); prefill: one tiling per query head (rows aligned with key positions for the causal mask)
            rows, heads = (q * group, B * KVh) if q == 1 else (q, B * H)
            key = (rows, keys, causal)
            til = cache.get(key)
            if til is None:
                til = cache[key] = tiled_traffic(rows, keys, hd, self.sram, e, causal=causal)
            cols["kv_read_bytes"][i] = til.kv_read_bytes * heads
            cols["act_read_bytes"][i] = til.q_o_read_bytes * heads
            cols["act_write_bytes"][i] = til.write_bytes * heads
            # the fused kernel's softmax and P.V (the next two attention ops of this layer) move nothing more
            for j in (i + 1, i + 2):
                if j < n and kinds[j] in ("softmax", "attn_av"):
                    for c in cols:
                        cols[c][j] = 0.0
                    overhead[j] = 0.0
            if step[i] == 0:
                last_tiling = til
                m_el = self.sram / e
                prefill_ratio = til.total_bytes / e / io_bound_elements(rows, hd, m_el,
                                                                        IO_CONSTANT / (2 if causal else 1))
        after = float(sum(cols[c][np.isin(kinds, ["attn_score", "softmax", "attn_av"])].sum() for c in cols))
        metrics = {"attention_hbm_bytes_tiled": after, "attention_hbm_bytes_unfused": before,
                   "attention_traffic_ratio": before / after if after else 1.0, "sram_bytes": float(self.sram)}
        notes = [f"attention fused and tiled through {self.sram / 1024:.0f} KiB of SRAM: HBM bytes of the attention "
                 f"ops {before / 1e9:.3f} GB -> {after / 1e9:.3f} GB"]
        if last_tiling is not None:
            metrics.update(prefill_bc=float(last_tiling.bc), prefill_br=float(last_tiling.br),
                           prefill_io_bound_ratio=prefill_ratio)
            notes.append(f"prefill tiles Bc = {last_tiling.bc}, Br = {last_tiling.br} "
                         f"(footprint {last_tiling.footprint_bytes} B); traffic / I/O bound = {prefill_ratio:.3f}")
        return Plan(default_tier={"weight": tier, "kv": tier, "activation": tier},
                    op_unit=np.full(n, unit.name, dtype=object), notes=notes, metrics=metrics,
                    op_overrides={**{c: np.ceil(v) for c, v in cols.items()}, "overhead_ps": overhead})


# ----------------------------------------------------------------------------------------- validation
FA_SOURCE = "Dao et al., 'FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness', NeurIPS'22"
#: the grid of the closed-form check: N, d, M / d^2 (M in elements, FP16)
GRID_N = (1024, 4096, 16384)
GRID_D = (64, 128)
GRID_K = (1, 2, 4, 16, 64)


def io_bound_grid(e: int = 2) -> list[dict[str, float]]:
    """Traffic / (12 N^2 d^2 / M) over the grid, for d^2 <= M <= N d / 4 (elements)."""
    rows = []
    for n in GRID_N:
        for d in GRID_D:
            for k in GRID_K:
                m = k * d * d
                if m > n * d // 4:
                    continue
                t = tiled_traffic(n, n, d, m * e, e)
                rows.append({"N": n, "d": d, "M": m, "tc": t.tc, "ratio": t.total_bytes / e / io_bound_elements(n, d, m)})
    return rows


def _slope(f, a: float, b: float) -> float:
    return float(np.log(f(b) / f(a)) / np.log(b / a))


def _io_case() -> dict[str, float]:
    e = 2
    rows = io_bound_grid(e)
    r = np.array([x["ratio"] for x in rows])
    # exponents where the quadratic term dominates (T_c >= 64: the 3 N d terms are under 2 %)
    d, n, m = 64, 16384, 4 * 64 * 64
    return {"io_ratio_min": float(r.min()), "io_ratio_max": float(r.max()),
            "slope_N": _slope(lambda x: tiled_traffic(int(x), int(x), d, m * e, e).total_bytes, n / 2, n),
            "slope_M": _slope(lambda x: tiled_traffic(n, n, d, int(x) * e, e).total_bytes, 4 * d * d, 8 * d * d),
            "slope_d": _slope(lambda x: tiled_traffic(n, n, int(x), 128 * 128 * e, e).total_bytes, 64, 128)}


def _gpt2_case() -> dict[str, float]:
    n, d, e = 1024, 64, 2
    t = tiled_traffic(n, n, d, DEFAULT_SRAM, e)
    return {"hbm_reduction_forward": standard_traffic_elements(n, d) * e / t.total_bytes}


def validation_cases() -> list:
    from memsim.validate.catalogue import Case, Check

    return [
        Case(id="policy/flash-attention/io-bound-closed-form", fast=True, run=_io_case,
             source=(f"{FA_SOURCE}, Theorem 2: Θ(N^2 d^2 / M) HBM accesses for d <= M <= N d [S]; expected constant 12 "
                     "(Algorithm 1: 3 N d elements per K/V block, 4 N d / M blocks) [D]; grid N in {1k, 4k, 16k}, d in "
                     "{64, 128}, M / d^2 in {1 .. 64} with M <= N d / 4; traffic / bound = 1 + 1/T_c + 16/(3 d e) (1 + 1/(2 T_c))"),
             checks=(Check("io_ratio_min", 1.15, 0.0, band=(1.0, 1.3)), Check("io_ratio_max", 1.15, 0.0, band=(1.0, 1.3)),
                     Check("slope_N", 2.0, 0.01), Check("slope_M", -1.0, 0.02), Check("slope_d", 2.0, 0.03))),
        Case(id="policy/flash-attention/GPT-2-medium-HBM-traffic", fast=True, run=_gpt2_case,
             source=(f"{FA_SOURCE}, Fig. 2 left [U]: GPT-2 medium attention (N = 1024, d = 64) on A100, HBM R/W 40.3 GB "
                     "standard vs 4.4 GB FlashAttention (9.2x, forward + backward); memsim: forward pass of one head, "
                     "Algorithm 0 vs Algorithm 1 with 192 KiB of SRAM"),
             checks=(Check("hbm_reduction_forward", 9.2, 0.25),),
             known_misses={"hbm_reduction_forward":
                           "memsim models the forward pass only (5.5x); the paper's 9.2x includes the backward pass, where "
                           "standard attention also writes and reads dP and dS (N^2 each) that FlashAttention recomputes "
                           "on chip; the recalled figures are [U]"}),
    ]
