"""Operator traces of transformer inference: the generator, the :class:`OpTrace` schema and Parquet I/O.

:func:`generate` turns a :class:`~memsim.workload.model.ModelSpec` and a
:class:`~memsim.workload.scenario.Scenario` into the operator trace of the prefill (step 0, all
``prompt_tokens`` of every sequence at once) and of every decode step (steps ``1..generated_tokens``,
one token per sequence each). Decode step ``s`` consumes the token at position ``prompt_tokens + s - 1``
(the first one is sampled from the prefill's logits), appends its K and V to the cache and attends over
``prompt_tokens + s`` keys.

Schema (the contract with the system simulator)
-----------------------------------------------
``OpTrace.ops``: one row per op, ``op`` = row number, rows in a topological order (every dependency has a
smaller ``op``), grouped by ``step``.

============== ======== ===============================================================================
column         type     meaning
============== ======== ===============================================================================
op             int64    0..N-1
phase          str      ``prefill`` (step 0) or ``decode``
step           int64    0 = prefill, s = decode step s (1..G)
layer          int64    block index, -1 outside the blocks (embedding, final norm, LM head)
name           str      ``embed``, ``pos_embed``, ``L3.attn_norm``, ``L3.attn.qkv``, ``L3.attn.rope``,
                        ``L3.attn.kv_append``, ``L3.attn.score``, ``L3.attn.softmax``, ``L3.attn.av``,
                        ``L3.attn.o_proj``, ``L3.attn.residual``, ``L3.mlp_norm``, ``L3.mlp.gate|up|act|down``,
                        ``L3.mlp.residual``, ``L3.residual`` (parallel blocks), ``L3.moe.router``, ``L3.moe.e5.gate|up|act|down``,
                        ``L3.moe.combine``, ``final_norm``, ``lm_head``; unique within a step
kind           str      one of :data:`KINDS` (below)
m, n, k        int64    GEMM: m = activation rows (batch x tokens), n = output features, k = reduction.
                        attn_score: m = query tokens per sequence, n = keys, k = head_dim; attn_av: m =
                        query tokens, n = head_dim, k = keys; softmax: m = query tokens, n = keys.
                        Element-wise ops: m = rows, n = row width, k = 0
batch          int64    sequences (the scenario's batch)
heads          int64    query heads for attention ops (attn_score, softmax, attn_av, rope), else 0
flops          int64    floating-point operations (multiply and add counted separately)
weight_bytes   int64    weight bytes read (a whole tensor for GEMMs; the gathered rows for embeddings)
kv_read_bytes  int64    KV-cache bytes read (K by attn_score, V by attn_av)
kv_write_bytes int64    KV-cache bytes written (kv_append: this step's K and V)
act_read_bytes int64    activation bytes read (inputs other than weights and KV)
act_write_bytes int64   activation bytes written (the op's output tensor ``out``)
weight         str      id of the weight tensor read, "" if none
kv             str      id of the KV-cache tensor read or written (``L3.kv``), "" if none
out            str      id of the activation tensor written (``a<op>``), "" if none
expert         int64    expert id for MoE expert ops, else -1
deps           list     op ids this op waits for (list<int64>, ascending; also ``OpTrace.edges``)
============== ======== ===============================================================================

``KINDS``: ``embedding`` (token or learned-position gather), ``norm``, ``gemm`` (projections and expert
FFNs), ``rope``, ``kv_append`` (write K, V to the cache), ``attn_score`` (Q.K^T), ``softmax``, ``attn_av``
(P.V), ``activation`` (GELU/ReLU/SiLU, including the gate multiply of gated FFNs), ``elementwise``
(residual adds, MoE combine), ``moe_router`` (router GEMM + top-k), ``lm_head``.

``OpTrace.tensors``: one row per tensor: ``tensor`` (str id), ``kind`` (``weight``/``kv``/``activation``),
``layer`` (int64), ``bytes`` (int64: a weight's size, a layer's KV cache at the end of the run, an
activation's size), ``first_op``/``last_op`` (int64, the first and last op touching it, -1 for a weight no
op reads, e.g. an expert never routed to).

``OpTrace.meta``: a JSON-able dict: ``format``, ``version``, ``model``, ``model_spec``, ``scenario``,
``dtypes``, ``total_weight_bytes``, ``param_count``; :meth:`OpTrace.resolved` is what to hash.

What is modelled / simplified
-----------------------------
* QKV is **one fused GEMM** (``n = (heads + 2 kv_heads) x head_dim``), so GQA/MQA shrink its weight and
  the KV cache; gated FFNs use separate ``gate`` and ``up`` GEMMs. Biases are folded into their weight
  tensor (bytes) and not counted as FLOPs.
* Attention is op by op (score, softmax, P.V), not fused: scores are written and read as activations.
  FLOPs and score bytes count the causal (unmasked) query-key pairs only; K and V are read from the cache
  by every attention op, in the prefill too (after ``kv_append`` wrote them).
* Prefill runs the final norm and the LM head on the last token of each sequence only.
* MoE: the router picks ``k = num_experts_per_tok`` distinct experts per token. For ``T`` tokens in a step
  the number of distinct experts a layer runs is the expectation under uniform routing,
  ``round(E * (1 - (1 - k/E)^T))`` clamped to ``[k, min(E, k*T)]`` (batch-1 decode: exactly ``k``), and
  the ``k*T`` token-expert pairs are spread evenly over them. Which experts is drawn deterministically
  from ``moe_seed`` per (step, layer). Expert capacity limits and load imbalance are not modelled.
* Element-wise FLOPs per element: LayerNorm 5, RMSNorm 4, softmax 5, GELU 8, SiLU 4, ReLU 1 (+1 for the
  gate multiply), RoPE 3, residual add 1 per added input, MoE combine 2 per expert output; embedding
  gathers 0. Token ids (4 bytes per token) are the embedding's activation input.
* No KV-cache quantisation scales, paging or eviction; no speculative decoding, beam search, sampling.

Storage: :func:`write_trace` writes ``X.parquet`` (ops, metadata in the file's key-value metadata under
``memsim.optrace``) and ``X.tensors.parquet``; :func:`read_trace` validates columns, types and the
topological order and raises :class:`~memsim.errors.TraceError` naming the file, column and row. A trace
without the tensors file (e.g. produced elsewhere) gets its tensor table derived from the ops.
Writing is deterministic: the same trace gives byte-identical files.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from memsim.errors import TraceError
from memsim.workload.model import ModelSpec, weight_tensors
from memsim.workload.scenario import DTYPE_BITS, Scenario, dtype_bytes

__all__ = ["KINDS", "OPS_COLUMNS", "TENSORS_COLUMNS", "OpTrace", "generate", "write_trace", "read_trace",
           "active_experts", "tensors_path"]

FORMAT = "memsim-optrace"
VERSION = 1
KINDS = ("embedding", "norm", "gemm", "rope", "kv_append", "attn_score", "softmax", "attn_av", "activation",
         "elementwise", "moe_router", "lm_head")
PHASES = ("prefill", "decode")
TENSOR_KINDS = ("weight", "kv", "activation")

_INT_COLS = ("op", "step", "layer", "m", "n", "k", "batch", "heads", "flops", "weight_bytes", "kv_read_bytes",
             "kv_write_bytes", "act_read_bytes", "act_write_bytes", "expert")
_STR_COLS = ("phase", "name", "kind", "weight", "kv", "out")
OPS_COLUMNS = ("op", "phase", "step", "layer", "name", "kind", "m", "n", "k", "batch", "heads", "flops",
               "weight_bytes", "kv_read_bytes", "kv_write_bytes", "act_read_bytes", "act_write_bytes",
               "weight", "kv", "out", "expert", "deps")
TENSORS_COLUMNS = ("tensor", "kind", "layer", "bytes", "first_op", "last_op")
_BYTE_COLS = ("weight_bytes", "kv_read_bytes", "kv_write_bytes", "act_read_bytes", "act_write_bytes")
# Columns the template builder fills (bytes are accumulated in bits and rounded up at the end).
_NUM = ("layer", "m", "n", "k", "batch", "heads", "flops", "weight_bits", "kv_read_bits", "kv_write_bits",
        "act_read_bits", "act_write_bits", "expert")

_ACT_FLOPS = {"gelu": 8, "gelu_new": 8, "gelu_pytorch_tanh": 8, "relu": 1, "silu": 4}
_TOKEN_ID_BITS = 32


def active_experts(model: ModelSpec, tokens: int) -> int:
    """Distinct experts one MoE layer runs for ``tokens`` tokens (expected value under uniform routing)."""
    e, k = model.num_local_experts, model.num_experts_per_tok
    if e <= 1:
        return 1
    expected = e * (1.0 - (1.0 - k / e) ** tokens)
    return int(min(max(round(expected), k), e, k * tokens))


def _tokens_per_expert(tokens: int, k: int, n_active: int) -> list[int]:
    total = tokens * k
    base, rem = divmod(total, n_active)
    return [base + (1 if j < rem else 0) for j in range(n_active)]


# ----------------------------------------------------------------------------------------------------
# One step's ops (Python; a few thousand rows at most), built once for the prefill and twice for the
# decode template.
# ----------------------------------------------------------------------------------------------------


class _Step:
    def __init__(self) -> None:
        self.num: dict[str, list[int]] = {c: [] for c in _NUM}
        self.name: list[str] = []
        self.kind: list[str] = []
        self.weight: list[str] = []
        self.kv: list[str] = []
        self.part: list[int] = []  # expert part index (0 gate, 1 up, 2 act, 3 down) or -1
        self.src: list[int] = []
        self.dst: list[int] = []

    def add(self, name: str, kind: str, layer: int, *, batch: int, deps: tuple[int, ...] = (), m: int = 0,
            n: int = 0, k: int = 0, heads: int = 0, flops: int = 0, weight: str = "", weight_bits: int = 0,
            kv: str = "", kv_read_bits: int = 0, kv_write_bits: int = 0, act_read_bits: int = 0,
            act_write_bits: int = 0, expert: int = -1, part: int = -1) -> int:
        i = len(self.name)
        for c, v in (("layer", layer), ("m", m), ("n", n), ("k", k), ("batch", batch), ("heads", heads),
                     ("flops", flops), ("weight_bits", weight_bits), ("kv_read_bits", kv_read_bits),
                     ("kv_write_bits", kv_write_bits), ("act_read_bits", act_read_bits),
                     ("act_write_bits", act_write_bits), ("expert", expert)):
            self.num[c].append(v)
        self.name.append(name)
        self.kind.append(kind)
        self.weight.append(weight)
        self.kv.append(kv)
        self.part.append(part)
        for d in sorted(set(deps)):
            self.src.append(d)
            self.dst.append(i)
        return i

    def arrays(self) -> dict[str, np.ndarray]:
        return {c: np.asarray(v, dtype=np.int64) for c, v in self.num.items()}


def _build_step(model: ModelSpec, sc: Scenario, q: int, past: int, n_active: int) -> _Step:
    """Ops of one forward pass over ``q`` new tokens per sequence with ``past`` tokens already cached."""
    m = model
    B = sc.batch
    wb, ab, kb = DTYPE_BITS[sc.weight_dtype], DTYPE_BITS[sc.act_dtype], DTYPE_BITS[sc.kv_dtype]
    d, f, H, hd = m.hidden_size, m.intermediate_size, m.num_attention_heads, m.head_dim
    T = B * q  # activation rows
    keys = past + q
    pairs = B * H * (q * past + q * (q + 1) // 2)  # causal (unmasked) query-key pairs, all heads
    norm_flops = 5 if m.norm == "layernorm" else 4
    norm_w = 2 * d if m.norm == "layernorm" else d
    bias = m.linear_bias
    st = _Step()

    def gemm(name: str, layer: int, rows: int, n_out: int, k_in: int, weight: str, deps: tuple[int, ...],
             kind: str = "gemm", expert: int = -1, part: int = -1, bias_: bool = bias) -> int:
        return st.add(name, kind, layer, batch=B, deps=deps, m=rows, n=n_out, k=k_in, flops=2 * rows * n_out * k_in,
                      weight=weight, weight_bits=(k_in * n_out + (n_out if bias_ else 0)) * wb,
                      act_read_bits=rows * k_in * ab, act_write_bits=rows * n_out * ab, expert=expert, part=part)

    def norm(name: str, layer: int, rows: int, weight: str, deps: tuple[int, ...]) -> int:
        return st.add(name, "norm", layer, batch=B, deps=deps, m=rows, n=d, flops=norm_flops * rows * d,
                      weight=weight, weight_bits=norm_w * wb, act_read_bits=rows * d * ab,
                      act_write_bits=rows * d * ab)

    def ffn(prefix: str, layer: int, rows: int, x: int, wprefix: str, deps: tuple[int, ...],
            expert: int = -1) -> int:
        """gate/up -> act -> down; returns the down projection's op."""
        if m.gated_ffn:
            g = gemm(prefix + "gate", layer, rows, f, d, wprefix + "w_gate", deps, expert=expert, part=0)
            u = gemm(prefix + "up", layer, rows, f, d, wprefix + "w_up", deps, expert=expert, part=1)
            a = st.add(prefix + "act", "activation", layer, batch=B, deps=(g, u), m=rows, n=f,
                       flops=(_ACT_FLOPS[m.hidden_act] + 1) * rows * f, act_read_bits=2 * rows * f * ab,
                       act_write_bits=rows * f * ab, expert=expert, part=2)
        else:
            u = gemm(prefix + "up", layer, rows, f, d, wprefix + "w_up", deps, expert=expert, part=1)
            a = st.add(prefix + "act", "activation", layer, batch=B, deps=(u,), m=rows, n=f,
                       flops=_ACT_FLOPS[m.hidden_act] * rows * f, act_read_bits=rows * f * ab,
                       act_write_bits=rows * f * ab, expert=expert, part=2)
        return gemm(prefix + "down", layer, rows, d, f, wprefix + "w_down", (a,), expert=expert, part=3)

    x = st.add("embed", "embedding", -1, batch=B, m=T, n=d, weight="embed_tokens", weight_bits=T * d * wb,
               act_read_bits=T * _TOKEN_ID_BITS, act_write_bits=T * d * ab)
    if m.position_embedding == "learned":
        x = st.add("pos_embed", "embedding", -1, batch=B, deps=(x,), m=T, n=d, flops=T * d,
                   weight="embed_positions", weight_bits=T * d * wb, act_read_bits=T * d * ab,
                   act_write_bits=T * d * ab)
    for li in range(m.num_hidden_layers):
        p = f"L{li}."
        kv_id = p + "kv"
        h = norm(p + "attn_norm", li, T, p + "attn_norm", (x,))
        qkv = gemm(p + "attn.qkv", li, T, m.q_dim + 2 * m.kv_dim, d, p + "attn.wqkv", (h,))
        qk = qkv
        if m.position_embedding == "rope":
            rot = T * (m.q_dim + m.kv_dim)
            qk = st.add(p + "attn.rope", "rope", li, batch=B, deps=(qkv,), m=T, n=m.q_dim + m.kv_dim, heads=H,
                        flops=3 * rot, act_read_bits=rot * ab, act_write_bits=rot * ab)
        app = st.add(p + "attn.kv_append", "kv_append", li, batch=B, deps=(qk,), m=T, n=2 * m.kv_dim, kv=kv_id,
                     act_read_bits=T * 2 * m.kv_dim * ab, kv_write_bits=T * 2 * m.kv_dim * kb)
        kv_bits = B * keys * m.kv_dim * kb  # K (or V) of every cached key
        sc_ = st.add(p + "attn.score", "attn_score", li, batch=B, deps=(qk, app), m=q, n=keys, k=hd, heads=H,
                     flops=2 * hd * pairs, kv=kv_id, kv_read_bits=kv_bits, act_read_bits=T * m.q_dim * ab,
                     act_write_bits=pairs * ab)
        sm = st.add(p + "attn.softmax", "softmax", li, batch=B, deps=(sc_,), m=q, n=keys, heads=H,
                    flops=5 * pairs, act_read_bits=pairs * ab, act_write_bits=pairs * ab)
        av = st.add(p + "attn.av", "attn_av", li, batch=B, deps=(sm, app), m=q, n=hd, k=keys, heads=H,
                    flops=2 * hd * pairs, kv=kv_id, kv_read_bits=kv_bits, act_read_bits=pairs * ab,
                    act_write_bits=T * m.q_dim * ab)
        o = gemm(p + "attn.o_proj", li, T, d, m.q_dim, p + "attn.wo", (av,))
        if m.parallel_attn_mlp:
            down = ffn(p + "mlp.", li, T, h, p + "mlp.", (h,))
            x = st.add(p + "residual", "elementwise", li, batch=B, deps=(o, down, x), m=T, n=d, flops=2 * T * d,
                       act_read_bits=3 * T * d * ab, act_write_bits=T * d * ab)
            continue
        r1 = st.add(p + "attn.residual", "elementwise", li, batch=B, deps=(o, x), m=T, n=d, flops=T * d,
                    act_read_bits=2 * T * d * ab, act_write_bits=T * d * ab)
        h2 = norm(p + "mlp_norm", li, T, p + "mlp_norm", (r1,))
        if m.is_moe:
            E = m.num_local_experts
            rt = st.add(p + "moe.router", "moe_router", li, batch=B, deps=(h2,), m=T, n=E, k=d,
                        flops=2 * T * E * d + 5 * T * E, weight=p + "moe.router", weight_bits=d * E * wb,
                        act_read_bits=T * d * ab, act_write_bits=T * m.num_experts_per_tok * 64)  # fp32 weight + int32 id
            downs = []
            counts = _tokens_per_expert(T, m.num_experts_per_tok, n_active)
            for slot, rows in enumerate(counts):
                # Placeholder names; the generator substitutes the expert chosen for this slot.
                downs.append(ffn(f"{p}moe.x{slot}.", li, rows, h2, f"{p}moe.x{slot}.", (h2, rt), expert=slot))
            routed = sum(counts)
            mo = st.add(p + "moe.combine", "elementwise", li, batch=B, deps=(*downs, rt), m=T, n=d,
                        flops=2 * routed * d, act_read_bits=routed * d * ab + T * m.num_experts_per_tok * 64,
                        act_write_bits=T * d * ab)
        else:
            mo = ffn(p + "mlp.", li, T, h2, p + "mlp.", (h2,))
        x = st.add(p + "mlp.residual", "elementwise", li, batch=B, deps=(mo, r1), m=T, n=d, flops=T * d,
                   act_read_bits=2 * T * d * ab, act_write_bits=T * d * ab)
    # Final norm and LM head on the last token of each sequence (all that decode has; prefill keeps 1 of q).
    fn = norm("final_norm", -1, B, "final_norm", (x,))
    head_w = "embed_tokens" if m.tie_word_embeddings else "lm_head"
    gemm("lm_head", -1, B, m.vocab_size, d, head_w, (fn,), kind="lm_head", bias_=False)
    return st


# ----------------------------------------------------------------------------------------------------
# OpTrace
# ----------------------------------------------------------------------------------------------------


@dataclass
class OpTrace:
    """The generated (or read) operator trace: ``ops`` and ``tensors`` DataFrames and ``meta``."""

    ops: pd.DataFrame
    tensors: pd.DataFrame
    meta: dict[str, Any]
    _src: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    _dst: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self._src is None:
            self._src, self._dst = _edges_of(self.ops["deps"])

    @property
    def edges(self) -> pd.DataFrame:
        """Dependency edges: ``src`` must finish before ``dst`` starts (sorted by dst, then src)."""
        return pd.DataFrame({"src": self._src, "dst": self._dst})

    def edge_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(src, dst)`` int64 arrays of :attr:`edges` (no copy, do not modify)."""
        return self._src, self._dst

    @property
    def model_name(self) -> str:
        return str(self.meta.get("model", ""))

    @property
    def total_weight_bytes(self) -> int:
        if "total_weight_bytes" in self.meta:
            return int(self.meta["total_weight_bytes"])
        t = self.tensors
        return int(t.loc[t["kind"] == "weight", "bytes"].sum())

    @property
    def num_steps(self) -> int:
        return int(self.ops["step"].max()) + 1 if len(self.ops) else 0

    def resolved(self) -> dict[str, Any]:
        """Everything the trace was generated from (JSON-able; hash this to name results)."""
        return json.loads(json.dumps(self.meta, sort_keys=True))

    def step_totals(self) -> pd.DataFrame:
        """Per step: op count and the sums of flops and every byte column (index: step)."""
        cols = ["flops", *_BYTE_COLS]
        g = self.ops.groupby("step", sort=True)
        out = g[cols].sum()
        out.insert(0, "ops", g.size())
        return out

    def phase_ops(self, phase: str) -> pd.DataFrame:
        return self.ops[self.ops["phase"] == phase]


def _edges_of(deps: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow as pa

    arr = pa.array(deps) if not isinstance(deps, (pa.Array, pa.ChunkedArray)) else deps
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    values = arr.values.to_numpy().astype(np.int64)
    counts = np.diff(offsets)
    dst = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return values[offsets[0]:offsets[-1]], dst


def _deps_series(src: np.ndarray, dst: np.ndarray, n: int) -> pd.Series:
    """list<int64> column from edges sorted by (dst, src)."""
    import pyarrow as pa

    counts = np.bincount(dst, minlength=n)
    offsets = np.zeros(n + 1, dtype=np.int32 if len(src) < 2**31 else np.int64)
    np.cumsum(counts, out=offsets[1:])
    arr = pa.ListArray.from_arrays(pa.array(offsets), pa.array(src.astype(np.int64)))
    return pd.Series(arr, dtype=pd.ArrowDtype(pa.list_(pa.int64())), name="deps")


# ----------------------------------------------------------------------------------------------------
# Generator
# ----------------------------------------------------------------------------------------------------


def _expert_tables(model: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(names, weight ids) indexed [layer, expert, part] for MoE models."""
    L, E = model.num_hidden_layers, model.num_local_experts
    parts = ("gate", "up", "act", "down")
    names = np.empty((L, E, 4), dtype=object)
    weights = np.empty((L, E, 4), dtype=object)
    for li in range(L):
        for e in range(E):
            for j, part in enumerate(parts):
                names[li, e, j] = f"L{li}.moe.e{e}.{part}"
                weights[li, e, j] = "" if part == "act" else f"L{li}.moe.e{e}.w_{part}"
    return names, weights


def generate(model: ModelSpec, scenario: Scenario) -> OpTrace:
    """The operator trace of ``scenario`` (prefill + every decode step) on ``model``.

    ``scenario.model`` is ignored in favour of ``model`` when they differ only by object identity; pass
    the scenario's own model normally (``generate(sc.model, sc)``).
    """
    m, sc = model, scenario
    if sc.model != m:
        sc = sc.with_(model=m)
    P, G, B = sc.prompt_tokens, sc.generated_tokens, sc.batch
    L = m.num_hidden_layers
    n_pre = active_experts(m, B * P)
    n_dec = active_experts(m, B)

    pre = _build_step(m, sc, P, 0, n_pre)
    pre_num = pre.arrays()
    Np = len(pre.name)

    # Decode template: every numeric column is affine in the number of cached keys (q = 1), so two builds
    # give base and slope; step s (1..G) has past = P + s - 1.
    if G > 0:
        t0 = _build_step(m, sc, 1, P, n_dec)
        t1 = _build_step(m, sc, 1, P + 1, n_dec)
        assert t0.name == t1.name and t0.src == t1.src
        a0, a1 = t0.arrays(), t1.arrays()
        Nd = len(t0.name)
        s_idx = np.arange(G, dtype=np.int64)[:, None]  # s - 1
        dec_num = {c: (a0[c][None, :] + (a1[c] - a0[c])[None, :] * s_idx).reshape(-1) for c in _NUM}
    else:
        t0, Nd = None, 0
        dec_num = {c: np.zeros(0, dtype=np.int64) for c in _NUM}

    N = Np + G * Nd
    cols: dict[str, np.ndarray] = {c: np.concatenate([pre_num[c], dec_num[c]]) for c in _NUM}
    step = np.concatenate([np.zeros(Np, dtype=np.int64), np.repeat(np.arange(1, G + 1, dtype=np.int64), Nd)])
    # String columns as integer codes into one vocabulary per column (turned into Arrow strings at the end).
    vocab: dict[str, _Vocab] = {c: _Vocab() for c in ("name", "kind", "weight", "kv")}
    codes: dict[str, np.ndarray] = {}
    for c in vocab:
        pre_codes = vocab[c].codes(getattr(pre, c))
        dec_codes = np.tile(vocab[c].codes(getattr(t0, c)), G) if G else np.zeros(0, dtype=np.int64)
        codes[c] = np.concatenate([pre_codes, dec_codes])
    part = np.concatenate([np.asarray(pre.part, dtype=np.int64),
                           np.tile(np.asarray(t0.part, dtype=np.int64), G) if G else np.zeros(0, dtype=np.int64)])

    # MoE: substitute the experts chosen for each (step, layer, slot).
    if m.is_moe:
        E = m.num_local_experts
        rng = np.random.default_rng(sc.moe_seed)
        choice = np.argsort(rng.random((G + 1, L, E)), axis=-1, kind="stable")
        width = np.where(np.arange(G + 1) == 0, n_pre, n_dec)
        # the first `width` experts of each permutation, in increasing id order (unchosen ones sort last)
        chosen = np.sort(np.where(np.arange(E)[None, None, :] < width[:, None, None], choice, E), axis=-1)
        rows = np.nonzero(cols["expert"] >= 0)[0]
        slot = cols["expert"][rows]
        lay = cols["layer"][rows]
        stp = step[rows]
        assert (slot < width[stp]).all()
        ex = chosen[stp, lay, slot]
        names_t, weights_t = _expert_tables(m)
        cols["expert"][rows] = ex
        codes["name"][rows] = vocab["name"].codes(names_t.reshape(-1)).reshape(names_t.shape)[lay, ex, part[rows]]
        codes["weight"][rows] = vocab["weight"].codes(weights_t.reshape(-1)).reshape(weights_t.shape)[lay, ex, part[rows]]

    # Dependencies: the prefill's and the template's edges, plus each step's embedding waiting for the
    # previous step's LM head (the sampled token).
    src_parts = [np.asarray(pre.src, dtype=np.int64)]
    dst_parts = [np.asarray(pre.dst, dtype=np.int64)]
    if G:
        off = Np + Nd * np.arange(G, dtype=np.int64)[:, None]
        src_parts.append((np.asarray(t0.src, dtype=np.int64)[None, :] + off).reshape(-1))
        dst_parts.append((np.asarray(t0.dst, dtype=np.int64)[None, :] + off).reshape(-1))
        prev_head = np.concatenate([[Np - 1], Np + Nd * np.arange(G - 1, dtype=np.int64) + Nd - 1])
        src_parts.append(prev_head)
        dst_parts.append(off[:, 0])
    src = np.concatenate(src_parts)
    dst = np.concatenate(dst_parts)
    order = np.lexsort((src, dst))
    src, dst = src[order], dst[order]

    op = np.arange(N, dtype=np.int64)
    byte_cols = {c.replace("_bits", "_bytes"): (cols[c] + 7) // 8 for c in
                 ("weight_bits", "kv_read_bits", "kv_write_bits", "act_read_bits", "act_write_bits")}
    has_out = byte_cols["act_write_bytes"] > 0
    out, out_ids = _act_ids(op, has_out)
    data: dict[str, Any] = {
        "op": op,
        "phase": _strings(np.array(["prefill", "decode"], dtype=object), (step > 0).astype(np.int64)),
        "step": step, "layer": cols["layer"],
        "name": vocab["name"].column(codes["name"]), "kind": vocab["kind"].column(codes["kind"]),
        "m": cols["m"], "n": cols["n"], "k": cols["k"], "batch": cols["batch"], "heads": cols["heads"],
        "flops": cols["flops"], **byte_cols,
        "weight": vocab["weight"].column(codes["weight"]), "kv": vocab["kv"].column(codes["kv"]),
        "out": pd.Series(out, dtype="str"), "expert": cols["expert"],
    }
    ops = pd.DataFrame(data)
    ops["deps"] = _deps_series(src, dst, N)

    tensors = _tensor_table(m, sc, ops, codes, vocab, src, dst, has_out, out_ids)
    wtotal = int(tensors.loc[tensors["kind"] == "weight", "bytes"].sum())
    meta = {"format": FORMAT, "version": VERSION, "model": m.name, "model_spec": m.resolved(),
            "scenario": sc.resolved(), "dtypes": sc.dtypes, "total_weight_bytes": wtotal,
            "param_count": m.param_count(), "experts_per_layer": {"prefill": n_pre, "decode": n_dec}}
    return OpTrace(ops=ops, tensors=tensors, meta=meta, _src=src, _dst=dst)


class _Vocab:
    """Strings of one column and their integer codes."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.words: list[str] = []

    def codes(self, words) -> np.ndarray:
        out = np.empty(len(words), dtype=np.int64)
        for i, w in enumerate(words):
            c = self.index.get(w)
            if c is None:
                c = self.index[w] = len(self.words)
                self.words.append(w)
            out[i] = c
        return out

    def column(self, codes: np.ndarray) -> pd.Series:
        return _strings(np.asarray(self.words, dtype=object), codes)


def _strings(words: np.ndarray, codes: np.ndarray) -> pd.Series:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pd.Series(pc.take(pa.array(words, type=pa.string()), pa.array(codes)), dtype="str")


def _act_ids(op: np.ndarray, has_out: np.ndarray):
    """(the ``out`` column: ``a<op>`` or "", the ids of the ops that have an output) as Arrow arrays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.binary_join_element_wise("a", pc.cast(pa.array(op), pa.string()), "")
    mask = pa.array(has_out)
    return pc.if_else(mask, ids, ""), ids.filter(mask)


def _first_last_codes(codes: np.ndarray, n_words: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of each code (-1 where a code never occurs)."""
    first = np.full(n_words, -1, dtype=np.int64)
    last = np.full(n_words, -1, dtype=np.int64)
    n = len(codes)
    u, i = np.unique(codes, return_index=True)
    first[u] = i
    u, i = np.unique(codes[::-1], return_index=True)
    last[u] = n - 1 - i
    return first, last


def _tensor_table(m: ModelSpec, sc: Scenario, ops: pd.DataFrame, codes: dict[str, np.ndarray],
                  vocab: dict[str, "_Vocab"], src: np.ndarray, dst: np.ndarray, has_out: np.ndarray,
                  out_ids) -> pd.DataFrame:
    wt = weight_tensors(m)
    w_ids = [t for t, _, _ in wt]
    wf, wl = _first_last_codes(codes["weight"], len(vocab["weight"].words) + 1)
    wcode = np.asarray([vocab["weight"].index.get(t, len(vocab["weight"].words)) for t in w_ids], dtype=np.int64)
    kv_ids = [f"L{i}.kv" for i in range(m.num_hidden_layers)]
    kf, kl = _first_last_codes(codes["kv"], len(vocab["kv"].words) + 1)
    kcode = np.asarray([vocab["kv"].index.get(t, len(vocab["kv"].words)) for t in kv_ids], dtype=np.int64)
    kv_bytes = dtype_bytes(sc.batch * sc.total_tokens * 2 * m.kv_dim, sc.kv_dtype)
    opn = ops["op"].to_numpy()
    last = opn.copy()
    if len(src):
        np.maximum.at(last, src, dst)
    n_w, n_kv, n_a = len(w_ids), len(kv_ids), int(has_out.sum())
    import pyarrow as pa

    tensor = pa.concat_arrays([pa.array(w_ids, pa.string()), pa.array(kv_ids, pa.string()), out_ids])
    kind = np.repeat(np.arange(3, dtype=np.int64), [n_w, n_kv, n_a])
    return pd.DataFrame({
        "tensor": pd.Series(tensor, dtype="str"),
        "kind": _strings(np.asarray(TENSOR_KINDS, dtype=object), kind),
        "layer": np.concatenate([np.asarray([l for _, l, _ in wt], dtype=np.int64),
                                 np.arange(n_kv, dtype=np.int64), ops["layer"].to_numpy()[has_out]]),
        "bytes": np.concatenate([np.asarray([dtype_bytes(n, sc.weight_dtype) for _, _, n in wt], dtype=np.int64),
                                 np.full(n_kv, kv_bytes, dtype=np.int64),
                                 ops["act_write_bytes"].to_numpy()[has_out]]),
        "first_op": np.concatenate([wf[wcode], kf[kcode], opn[has_out]]),
        "last_op": np.concatenate([wl[wcode], kl[kcode], last[has_out]]),
    })


def _activation_rows(ops: pd.DataFrame, src: np.ndarray, dst: np.ndarray) -> pd.DataFrame:
    opn = ops["op"].to_numpy()
    last = opn.copy()
    if len(src):
        np.maximum.at(last, src, dst)
    mask = (ops["out"] != "").to_numpy()
    return pd.DataFrame({"tensor": ops["out"].to_numpy(dtype=object)[mask], "kind": "activation",
                         "layer": ops["layer"].to_numpy()[mask], "bytes": ops["act_write_bytes"].to_numpy()[mask],
                         "first_op": opn[mask], "last_op": last[mask]})


# ----------------------------------------------------------------------------------------------------
# Parquet storage
# ----------------------------------------------------------------------------------------------------


def tensors_path(path: str | Path) -> Path:
    """The tensor table's file next to an ops file: ``x.parquet`` -> ``x.tensors.parquet``."""
    p = Path(path)
    return p.with_name(p.name[: -len(".parquet")] + ".tensors.parquet") if p.name.endswith(".parquet") \
        else p.with_name(p.name + ".tensors.parquet")


def _ops_schema():
    import pyarrow as pa

    fields = []
    for c in OPS_COLUMNS:
        if c == "deps":
            fields.append(pa.field(c, pa.list_(pa.int64())))
        elif c in _STR_COLS:
            fields.append(pa.field(c, pa.string()))
        else:
            fields.append(pa.field(c, pa.int64()))
    return pa.schema(fields)


def _to_table(df: pd.DataFrame, columns: tuple[str, ...], schema, meta: dict | None):
    import pyarrow as pa

    arrays = []
    for c, f in zip(columns, schema):
        col = df[c]
        if c == "deps":
            arrays.append(pa.array(col).cast(f.type))
        elif pa.types.is_string(f.type):
            arrays.append(pa.array(col.to_numpy(dtype=object), type=pa.string()))
        else:
            arrays.append(pa.array(col.to_numpy(dtype=np.int64), type=pa.int64()))
    md = {b"memsim.optrace": json.dumps(meta, sort_keys=True).encode()} if meta is not None else None
    return pa.Table.from_arrays(arrays, schema=schema.with_metadata(md) if md else schema)


def _write_atomic(table, path: Path) -> None:
    import pyarrow.parquet as pq

    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=1 << 20)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_trace(trace: OpTrace, path: str | Path) -> Path:
    """Write ``path`` (ops + metadata) and its ``.tensors.parquet`` sibling; returns ``path``."""
    import pyarrow as pa

    p = Path(path)
    _write_atomic(_to_table(trace.ops, OPS_COLUMNS, _ops_schema(), trace.meta), p)
    tschema = pa.schema([pa.field("tensor", pa.string()), pa.field("kind", pa.string()),
                         *[pa.field(c, pa.int64()) for c in ("layer", "bytes", "first_op", "last_op")]])
    _write_atomic(_to_table(trace.tensors, TENSORS_COLUMNS, tschema, None), tensors_path(p))
    return p


def _bad(file: str, msg: str) -> TraceError:
    return TraceError(msg, file=file)


def _read_table(path: Path, file: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise _bad(file, "file not found") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise _bad(file, f"not a readable Parquet file: {exc}") from None


def _int_column(table, c: str, file: str, *, required: bool = True, default: int = 0) -> np.ndarray:
    import pyarrow as pa

    if c not in table.column_names:
        if required:
            raise _bad(file, f"missing column '{c}'")
        return np.full(table.num_rows, default, dtype=np.int64)
    col = table.column(c)
    if not pa.types.is_integer(col.type):
        raise _bad(file, f"column '{c}': expected integers, got {col.type}")
    if col.null_count:
        row = int(np.nonzero(col.is_null().to_numpy(zero_copy_only=False))[0][0])
        raise _bad(file, f"column '{c}', row {row}: missing value")
    arr = col.to_numpy()
    if arr.dtype == np.uint64 and len(arr) and arr.max() > np.iinfo(np.int64).max:
        row = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise _bad(file, f"column '{c}', row {row}: value {arr[row]} does not fit int64")
    return arr.astype(np.int64)


def _str_column(table, c: str, file: str, *, required: bool = True):
    """A string column as a (combined, plain string) Arrow array."""
    import pyarrow as pa

    if c not in table.column_names:
        if required:
            raise _bad(file, f"missing column '{c}'")
        return pa.array([""] * table.num_rows, type=pa.string())
    col = table.column(c)
    if pa.types.is_dictionary(col.type) and pa.types.is_string(col.type.value_type):
        col = col.cast(pa.string())
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        raise _bad(file, f"column '{c}': expected strings, got {col.type}")
    if col.null_count:
        row = int(np.nonzero(col.is_null().to_numpy(zero_copy_only=False))[0][0])
        raise _bad(file, f"column '{c}', row {row}: missing value")
    return col.combine_chunks().cast(pa.string())


def _mask(arrow_bool) -> np.ndarray:
    return np.asarray(arrow_bool.to_numpy(zero_copy_only=False), dtype=bool)


def _not_in(arr, allowed) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    return ~_mask(pc.is_in(arr, value_set=pa.array(list(allowed), type=pa.string())))


def _eq(arr, value: str) -> np.ndarray:
    import pyarrow.compute as pc

    return _mask(pc.equal(arr, value))


def _first_bad(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def read_trace(path: str | Path) -> OpTrace:
    """Read and validate a trace written by :func:`write_trace` (or produced elsewhere in that schema)."""
    import pyarrow as pa

    p = Path(path)
    file = str(path)
    table = _read_table(p, file)
    n = table.num_rows
    if n == 0:
        raise _bad(file, "no ops in the trace")
    ints = {c: _int_column(table, c, file, required=c not in ("expert", "heads", "batch"),
                           default=-1 if c == "expert" else (1 if c == "batch" else 0)) for c in _INT_COLS}
    strs = {c: _str_column(table, c, file, required=c not in ("kv", "out")) for c in _STR_COLS}
    # Values
    if not np.array_equal(ints["op"], np.arange(n)):
        row = _first_bad(ints["op"] != np.arange(n))
        raise _bad(file, f"column 'op', row {row}: expected {row} (ops numbered 0..N-1 in row order), "
                         f"got {ints['op'][row]}")
    for c in _INT_COLS:
        lo = -1 if c in ("layer", "expert") else 0
        bad = ints[c] < lo
        if bad.any():
            row = _first_bad(bad)
            raise _bad(file, f"column '{c}', row {row}: expected a value >= {lo}, got {ints[c][row]}")
    for c, allowed in (("phase", PHASES), ("kind", KINDS)):
        bad = _not_in(strs[c], allowed)
        if bad.any():
            row = _first_bad(bad)
            raise _bad(file, f"column '{c}', row {row}: expected one of {', '.join(allowed)}, "
                             f"got {strs[c][row].as_py()!r}")
    bad = _eq(strs["phase"], "prefill") != (ints["step"] == 0)
    if bad.any():
        row = _first_bad(bad)
        raise _bad(file, f"column 'phase', row {row}: step 0 is the prefill and steps >= 1 decode, got "
                         f"phase {strs['phase'][row].as_py()!r} at step {ints['step'][row]}")
    bad = np.diff(ints["step"]) < 0
    if bad.any():
        row = _first_bad(bad) + 1
        raise _bad(file, f"column 'step', row {row}: steps must be non-decreasing, got {ints['step'][row]} after "
                         f"{ints['step'][row - 1]}")
    bad = _eq(strs["name"], "")
    if bad.any():
        raise _bad(file, f"column 'name', row {_first_bad(bad)}: empty op name")
    # Dependencies
    if "deps" not in table.column_names:
        raise _bad(file, "missing column 'deps'")
    deps = table.column("deps")
    if not ((pa.types.is_list(deps.type) or pa.types.is_large_list(deps.type))
            and pa.types.is_integer(deps.type.value_type)):
        raise _bad(file, f"column 'deps': expected lists of integers, got {deps.type}")
    deps = deps.combine_chunks()
    if deps.null_count or deps.values.null_count:
        rows = np.nonzero(deps.is_null().to_numpy(zero_copy_only=False))[0]
        row = int(rows[0]) if len(rows) else _row_of_null_value(deps)
        raise _bad(file, f"column 'deps', row {row}: missing value")
    src, dst = _edges_of(deps)
    bad = (src >= dst) | (src < 0)
    if bad.any():
        i = _first_bad(bad)
        raise _bad(file, f"column 'deps', row {dst[i]}: op {dst[i]} depends on op {src[i]}, which does not come "
                         f"before it (rows must be in a topological order)")
    order = np.lexsort((src, dst))
    src, dst = src[order], dst[order]
    data: dict[str, Any] = {}
    for c in OPS_COLUMNS:
        if c == "deps":
            continue
        data[c] = pd.Series(strs[c], dtype="str") if c in _STR_COLS else ints[c]
    ops = pd.DataFrame(data)
    ops["deps"] = _deps_series(src, dst, n)
    meta: dict[str, Any] = {}
    md = table.schema.metadata or {}
    if b"memsim.optrace" in md:
        try:
            meta = json.loads(md[b"memsim.optrace"])
        except ValueError:
            raise _bad(file, "file metadata 'memsim.optrace' is not valid JSON") from None
        if not isinstance(meta, dict):
            raise _bad(file, "file metadata 'memsim.optrace' is not a JSON object")
    tp = tensors_path(p)
    tensors = _read_tensors(tp, n) if tp.exists() else _derive_tensors(ops, src, dst)
    return OpTrace(ops=ops, tensors=tensors, meta=meta, _src=src, _dst=dst)


def _row_of_null_value(deps) -> int:
    offsets = deps.offsets.to_numpy()
    nulls = np.nonzero(deps.values.is_null().to_numpy(zero_copy_only=False))[0]
    return int(np.searchsorted(offsets, nulls[0], side="right") - 1)


def _read_tensors(path: Path, n_ops: int) -> pd.DataFrame:
    file = str(path)
    table = _read_table(path, file)
    tid = _str_column(table, "tensor", file)
    kind = _str_column(table, "kind", file)
    ints = {c: _int_column(table, c, file) for c in ("layer", "bytes", "first_op", "last_op")}
    bad = _not_in(kind, TENSOR_KINDS)
    if bad.any():
        row = _first_bad(bad)
        raise _bad(file, f"column 'kind', row {row}: expected one of {', '.join(TENSOR_KINDS)}, "
                         f"got {kind[row].as_py()!r}")
    tids = pd.Series(tid, dtype="str")
    dup = tids.duplicated().to_numpy()
    if dup.any():
        row = _first_bad(dup)
        raise _bad(file, f"column 'tensor', row {row}: duplicate tensor id {tid[row].as_py()!r}")
    for c, lo in (("layer", -1), ("bytes", 0), ("first_op", -1), ("last_op", -1)):
        bad = ints[c] < lo
        if c in ("first_op", "last_op"):
            bad |= ints[c] >= n_ops
        if bad.any():
            row = _first_bad(bad)
            raise _bad(file, f"column '{c}', row {row}: value {ints[c][row]} out of range")
    bad = ints["last_op"] < ints["first_op"]
    if bad.any():
        row = _first_bad(bad)
        raise _bad(file, f"column 'last_op', row {row}: last_op {ints['last_op'][row]} before first_op "
                         f"{ints['first_op'][row]}")
    return pd.DataFrame({"tensor": tids, "kind": pd.Series(kind, dtype="str"), **ints})


def _derive_tensors(ops: pd.DataFrame, src: np.ndarray, dst: np.ndarray) -> pd.DataFrame:
    """A tensor table from the ops alone: weights sized by their largest read, KV by the sum of writes."""
    opn = ops["op"].to_numpy()
    parts = []
    for col, kind, size_col, how in (("weight", "weight", "weight_bytes", "max"), ("kv", "kv", "kv_write_bytes", "sum")):
        mask = (ops[col] != "").to_numpy()
        if not mask.any():
            continue
        df = pd.DataFrame({"tensor": ops[col].to_numpy(dtype=object)[mask], "layer": ops["layer"].to_numpy()[mask],
                           "size": ops[size_col].to_numpy()[mask], "op": opn[mask]})
        g = df.groupby("tensor", sort=False)
        parts.append(pd.DataFrame({"tensor": list(g.groups.keys()), "kind": kind,
                                   "layer": g["layer"].first().to_numpy(), "bytes": g["size"].agg(how).to_numpy(),
                                   "first_op": g["op"].min().to_numpy(), "last_op": g["op"].max().to_numpy()}))
    parts.append(_activation_rows(ops, src, dst))
    t = pd.concat(parts, ignore_index=True)
    for c in ("layer", "bytes", "first_op", "last_op"):
        t[c] = t[c].astype(np.int64)
    t["tensor"] = pd.array(t["tensor"].to_numpy(dtype=object), dtype="str")
    t["kind"] = pd.array(t["kind"].to_numpy(dtype=object), dtype="str")
    return t
