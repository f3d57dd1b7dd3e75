"""Closed-form figures of a scenario, computed from the model alone (no trace), for tests and validation.

These are independent re-derivations of what :func:`memsim.workload.trace.generate` emits, so that a
trace can be checked against them and the system simulator's results against rooflines:

* :func:`decode_step_bytes`: bytes moved by one decode step = weights read + KV read + KV write. Weights
  read are every layer's tensors (for MoE: the router and the layer's active experts,
  :func:`~memsim.workload.trace.active_experts`), the final norm and the whole LM head (the tied
  embedding matrix when tied) plus the embedding rows gathered (``batch x hidden``; the learned-position
  rows likewise). KV read is K and V of all ``prompt_tokens + step`` cached keys of every layer; KV write
  is this step's K and V. Equal to the trace's column sums exactly (activations are reported apart).
* :func:`prefill_bytes`: the same for step 0.
* :func:`decode_step_flops` / :func:`flops_per_token`: GEMM FLOPs ``2 x (matmul parameters touched)``
  per token plus the attention term ``4 x layers x heads x head_dim x keys`` (Q.K^T and P.V). Element-wise
  ops (norms, softmax, activations, residuals) are left out; they add well under 1 % for the shipped models.

Units: bytes and FLOPs (multiply and add counted separately), all integers.
"""
from __future__ import annotations

from memsim.workload.model import ModelSpec, weight_tensors
from memsim.workload.scenario import Scenario, dtype_bytes
from memsim.workload.trace import active_experts

__all__ = ["weight_bytes", "decode_step_bytes", "prefill_bytes", "decode_step_flops", "flops_per_token",
           "matmul_params_per_token", "kv_cache_bytes"]


def weight_bytes(model: ModelSpec, dtype: str) -> int:
    """Bytes of every weight tensor of ``model`` stored in ``dtype``."""
    return sum(dtype_bytes(n, dtype) for _, _, n in weight_tensors(model))


def kv_cache_bytes(model: ModelSpec, sc: Scenario, tokens: int | None = None) -> int:
    """KV cache of all layers and sequences holding ``tokens`` tokens (default: the whole run)."""
    t = sc.total_tokens if tokens is None else tokens
    return model.num_hidden_layers * dtype_bytes(sc.batch * t * 2 * model.kv_dim, sc.kv_dtype)


def _weights_read(model: ModelSpec, sc: Scenario, tokens: int) -> int:
    """Weight bytes one forward pass over ``tokens`` tokens (all sequences) reads."""
    wd = sc.weight_dtype
    n_active = active_experts(model, tokens)
    total = 0
    for tid, _layer, n in weight_tensors(model):
        if tid in ("embed_tokens", "embed_positions"):
            continue
        if ".moe.e" in tid:
            expert = int(tid.split(".moe.e")[1].split(".")[0])
            if expert >= model.num_local_experts:
                continue
            # every layer runs n_active experts, all of the same size: count the first n_active ids
            if expert >= n_active:
                continue
        total += dtype_bytes(n, wd)
    total += dtype_bytes(tokens * model.hidden_size, wd)  # gathered token-embedding rows
    if model.position_embedding == "learned":
        total += dtype_bytes(tokens * model.hidden_size, wd)
    if model.tie_word_embeddings:
        total += dtype_bytes(model.vocab_size * model.hidden_size, wd)  # the LM head reads the whole table
    return total


def _kv(model: ModelSpec, sc: Scenario, q: int, keys: int) -> tuple[int, int]:
    L, B = model.num_hidden_layers, sc.batch
    read = L * 2 * dtype_bytes(B * keys * model.kv_dim, sc.kv_dtype)
    write = L * dtype_bytes(B * q * 2 * model.kv_dim, sc.kv_dtype)
    return read, write


def decode_step_bytes(model: ModelSpec, sc: Scenario, step: int) -> dict[str, int]:
    """``{"weights", "kv_read", "kv_write", "total"}`` bytes of decode step ``step`` (1-based)."""
    if not 1 <= step <= sc.generated_tokens:
        raise ValueError(f"decode steps are 1..{sc.generated_tokens}, got {step}")
    w = _weights_read(model, sc, sc.batch)
    r, wr = _kv(model, sc, 1, sc.prompt_tokens + step)
    return {"weights": w, "kv_read": r, "kv_write": wr, "total": w + r + wr}


def prefill_bytes(model: ModelSpec, sc: Scenario) -> dict[str, int]:
    """Same as :func:`decode_step_bytes` for the prefill (step 0)."""
    w = _weights_read(model, sc, sc.batch * sc.prompt_tokens)
    r, wr = _kv(model, sc, sc.prompt_tokens, sc.prompt_tokens)
    return {"weights": w, "kv_read": r, "kv_write": wr, "total": w + r + wr}


def matmul_params_per_token(model: ModelSpec) -> int:
    """Weights one token multiplies with: projections, active experts' FFNs, router, LM head (no biases,
    norms or embedding gathers)."""
    m = model
    d, f = m.hidden_size, m.intermediate_size
    ffn = (3 if m.gated_ffn else 2) * d * f
    per_layer = d * (m.q_dim + 2 * m.kv_dim) + m.q_dim * d + ffn * m.num_experts_per_tok
    if m.is_moe:
        per_layer += d * m.num_local_experts
    return m.num_hidden_layers * per_layer + d * m.vocab_size


def flops_per_token(model: ModelSpec, keys: int) -> int:
    """FLOPs of one token attending over ``keys`` keys: 2 x matmul params + 4 x L x H x head_dim x keys."""
    m = model
    return 2 * matmul_params_per_token(m) + 4 * m.num_hidden_layers * m.num_attention_heads * m.head_dim * keys


def decode_step_flops(model: ModelSpec, sc: Scenario, step: int) -> dict[str, int]:
    """``{"gemm", "attention", "total"}`` FLOPs of decode step ``step`` (all sequences)."""
    m, B = model, sc.batch
    keys = sc.prompt_tokens + step
    gemm = 2 * B * matmul_params_per_token(m)
    attn = 4 * B * m.num_hidden_layers * m.num_attention_heads * m.head_dim * keys
    return {"gemm": gemm, "attention": attn, "total": gemm + attn}
