"""``memsim workload``: generate a transformer operator trace and print its summary.

Usage::

    memsim workload llama2-7b --prompt 512 --gen 128 --batch 1 [--dtype fp16 | --weights int4 --kv int8]
    memsim workload workloads/llama2_7b_decode.yaml --out trace.parquet
    memsim workload path/to/config.json            # a Hugging Face config
    memsim workload --list                         # shipped models

The summary gives the parameter count, weight and KV bytes, ops per phase, and bytes (weights / KV read /
KV write / activations) and FLOPs of the prefill and of the first and last decode steps. ``--out``
writes the trace as Parquet (plus its ``.tensors.parquet``).
"""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("workload", help="generate a transformer operator trace and print its summary")
    p.add_argument("workload", nargs="?", help="model name (llama2-7b), model YAML, HF config.json or scenario YAML")
    p.add_argument("--prompt", type=int, help="prompt tokens per sequence (default: the scenario's, else 512)")
    p.add_argument("--gen", type=int, help="generated tokens = decode steps (default: the scenario's, else 128)")
    p.add_argument("--batch", type=int, help="sequences (default: the scenario's, else 1)")
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16", "int8", "int4"], help="datatype of everything")
    p.add_argument("--weights", choices=["fp32", "fp16", "bf16", "int8", "int4"], help="weight datatype")
    p.add_argument("--kv", choices=["fp32", "fp16", "bf16", "int8", "int4"], help="KV-cache datatype")
    p.add_argument("--out", "-o", help="write the trace to this .parquet file")
    p.add_argument("--list", action="store_true", help="list the shipped models and exit")
    p.set_defaults(func=cmd_workload)


def _gb(n: float) -> str:
    return f"{n / 1e9:,.3f} GB"


def cmd_workload(args, out=None) -> int:
    from memsim.errors import MemsimError
    from memsim.workload import generate, list_models, load_model, load_workload, write_trace
    from memsim.workload.closed_form import kv_cache_bytes

    out = out or sys.stdout
    w = out.write
    if args.list:
        for name in list_models():
            m = load_model(name)
            w(f"{name:14s} {m.param_count() / 1e9:8.3f} B params  {m.num_hidden_layers:3d} layers  "
              f"{m.attention_kind}{'  MoE %d/%d' % (m.num_experts_per_tok, m.num_local_experts) if m.is_moe else ''}\n")
        return 0
    if not args.workload:
        raise MemsimError("memsim workload: give a model name, model YAML, config.json or scenario YAML (or --list)")
    for flag in ("prompt", "gen", "batch"):
        v = getattr(args, flag)
        if v is not None and (v < 0 or (v == 0 and flag != "gen")):
            raise MemsimError(f"--{flag} expects a {'non-negative' if flag == 'gen' else 'positive'} integer, got {v}")
    changes = {}
    if args.prompt is not None:
        changes["prompt_tokens"] = args.prompt
    if args.gen is not None:
        changes["generated_tokens"] = args.gen
    if args.batch is not None:
        changes["batch"] = args.batch
    if args.dtype:
        changes.update(weight_dtype=args.dtype, act_dtype=args.dtype, kv_dtype=args.dtype)
    if args.weights:
        changes["weight_dtype"] = args.weights
    if args.kv:
        changes["kv_dtype"] = args.kv
    sc = load_workload(args.workload, **changes)
    m = sc.model
    t0 = time.perf_counter()
    tr = generate(m, sc)
    wall = time.perf_counter() - t0
    st = tr.step_totals()
    ops = tr.ops
    w(f"memsim workload: {sc.name}\n")
    w(f"  model       {m.name} ({m.model_type}): {m.num_hidden_layers} layers, hidden {m.hidden_size}, "
      f"{m.num_attention_heads} heads / {m.num_key_value_heads} KV heads ({m.attention_kind}), FFN "
      f"{m.intermediate_size}{' gated' if m.gated_ffn else ''} {m.hidden_act}, vocab {m.vocab_size}"
      f"{f', {m.num_local_experts} experts top-{m.num_experts_per_tok}' if m.is_moe else ''}\n")
    w(f"  source      {m.source}\n")
    act = f", {m.active_param_count():,} active per token" if m.is_moe else ""
    w(f"  params      {m.param_count():,}{act}\n")
    w(f"  scenario    batch {sc.batch}, prompt {sc.prompt_tokens}, generated {sc.generated_tokens}; "
      f"weights {sc.weight_dtype}, activations {sc.act_dtype}, KV {sc.kv_dtype}\n")
    w(f"  weights     {_gb(tr.total_weight_bytes)}; KV cache at the end {_gb(kv_cache_bytes(m, sc))}\n")
    n_pre = int((ops.phase == "prefill").sum())
    w(f"  ops         {len(ops):,} ({n_pre:,} prefill, {len(ops) - n_pre:,} decode = "
      f"{(len(ops) - n_pre) // max(1, sc.generated_tokens):,} per step); {len(tr.tensors):,} tensors\n")

    def row(label: str, s: int) -> None:
        r = st.loc[s]
        moved = r.weight_bytes + r.kv_read_bytes + r.kv_write_bytes
        w(f"  {label:11s} {_gb(moved)} moved (weights {_gb(r.weight_bytes)}, KV read {_gb(r.kv_read_bytes)}, "
          f"KV write {r.kv_write_bytes / 1e6:,.3f} MB; activations {_gb(r.act_read_bytes + r.act_write_bytes)}), "
          f"{r.flops / 1e9:,.2f} GFLOP\n")

    row("prefill", 0)
    if sc.generated_tokens:
        row("decode 1", 1)
        if sc.generated_tokens > 1:
            row(f"decode {sc.generated_tokens}", sc.generated_tokens)
    w(f"  generated   in {wall:.2f} s\n")
    if args.out:
        path = write_trace(tr, args.out)
        w(f"  wrote       {path} (+ .tensors.parquet)\n")
    return 0
