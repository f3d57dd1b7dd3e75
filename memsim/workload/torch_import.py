"""Import operator traces captured from real PyTorch execution (optional: needs ``torch``).

Two entry points:

* :func:`capture` runs ``model(*args, **kwargs)`` under :mod:`torch.profiler` (CPU activity, shapes and
  dtypes recorded) with a ``record_function`` scope around every ``nn.Module`` call, and maps the aten
  ops to rows of the memsim op schema (:mod:`memsim.workload.trace`). Call it once per forward pass
  (the prefill, then each decode step with ``past_key_values``) and join the captures with
  :func:`to_trace`.
* :func:`rows_from_events` maps the events of a profile you captured yourself (``prof.events()``);
  without module scopes, layers are -1 and weights are recognised by argument position only.

Mapping (the outermost mapped op wins; the aten ops it calls internally are not counted again):

================================================= ==========================================================
aten op                                           memsim row
================================================= ==========================================================
``linear``, ``addmm``, ``mm``                     ``gemm``: m = rows of the activation, n = out, k = in;
                                                  the weight operand (and bias) is ``weight_bytes``
``matmul``, ``bmm``, ``baddbmm``                  with a parameter operand: ``gemm``; between activations
                                                  (attention): ``attn_score`` (Q.K^T) or, right after a
                                                  softmax in the same module, ``attn_av`` (P.V); the K / V
                                                  operand counts as ``kv_read_bytes``
``scaled_dot_product_attention``                  three rows: ``attn_score``, ``softmax``, ``attn_av``
``softmax``, ``_softmax``, ``_safe_softmax``      ``softmax``
``layer_norm``, ``rms_norm``, any op inside a     ``norm`` (a whole ``*Norm`` module call, e.g. Llama's
module whose class name contains ``Norm``         hand-written RMSNorm, is one row)
``embedding``                                     ``embedding`` (weight bytes: the gathered rows)
``gelu``, ``silu``, ``relu``, ``tanh``, ...       ``activation``
``add``, ``mul``, ``sub``, ``div`` (+ in place)   ``elementwise``
(inferred, one per attention-module call)         ``kv_append``: the new K and V, whose width is the
                                                  module's projection outputs minus the query width;
                                                  the attention ops' K / V reads are then the cache's
                                                  size (not eager HF's ``repeat_kv``-expanded copies)
================================================= ==========================================================

The LM head (a GEMM in a module named ``lm_head``, ``embed_out`` or ``output``) gets kind ``lm_head``.
Layer numbers come from module paths (``model.layers.3.mlp`` -> 3; also ``h.3``, ``blocks.3``).
Bytes follow from shapes and recorded dtypes. FLOPs: GEMMs and attention ``2mnk`` per batch/head
(full rectangle: masked pairs are computed by eager attention), element-wise ops one per output element.

Dependencies: :func:`capture` also attaches PyTorch's execution-trace observer, whose nodes name the
storage of every tensor argument; an op then depends on the last mapped ops that produced the storages
it reads, unmapped ops (views, copies, casts, cache concatenation) passing their inputs' producers on,
so parallel branches (Q/K/V projections, gate and up) stay parallel. The ``kv_append`` row depends on
the K and V projections and the attention ops on it. Across passes, an op with no producer in its pass
waits for the previous pass's last op (the sampled token). Where the observer is unavailable, and for
:func:`rows_from_events` on a plain profile, each op depends on the op before it (execution order).

Simplified: views, copies, masks and dtype casts are dropped; activation reads count every non-weight
tensor input once; data flow through the KV cache across passes is not traced.
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
from typing import Any, Iterable

import numpy as np
import pandas as pd

from memsim.workload.trace import OPS_COLUMNS, OpTrace, _deps_series, _derive_tensors, _STR_COLS

__all__ = ["capture", "rows_from_events", "to_trace", "SCOPE_PREFIX"]

SCOPE_PREFIX = "memsim.module:"

_GEMM = {"aten::linear", "aten::addmm", "aten::mm"}
_MATMUL = {"aten::matmul", "aten::bmm", "aten::baddbmm"}
_SDPA = {"aten::scaled_dot_product_attention"}
_SOFTMAX = {"aten::softmax", "aten::_softmax", "aten::_safe_softmax"}
_NORM = {"aten::layer_norm", "aten::native_layer_norm", "aten::rms_norm", "aten::group_norm"}
_EMBED = {"aten::embedding"}
_ACT = {"aten::gelu", "aten::gelu_", "aten::silu", "aten::silu_", "aten::relu", "aten::relu_", "aten::tanh",
        "aten::sigmoid"}
_ELEM = {"aten::add", "aten::add_", "aten::mul", "aten::mul_", "aten::sub", "aten::sub_", "aten::div", "aten::div_"}
MAPPED = _GEMM | _MATMUL | _SDPA | _SOFTMAX | _NORM | _EMBED | _ACT | _ELEM
_HEAD_NAMES = ("lm_head", "embed_out", "output")

_DTYPE_BYTES = {"float": 4, "double": 8, "c10::Half": 2, "c10::BFloat16": 2, "long int": 8, "int": 4,
                "short int": 2, "signed char": 1, "unsigned char": 1, "bool": 1, "c10::Float8_e4m3fn": 1,
                "c10::Float8_e5m2": 1}
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)(?:\.|$)")


def _numel(shape) -> int:
    return int(math.prod(shape)) if shape else 1


class _Module:
    """What the capture knows about one module: path, class, parameter shapes."""

    def __init__(self, path: str, cls: str, params: dict[str, tuple[int, ...]]):
        self.path, self.cls, self.params = path, cls, params


def capture(model, *args, step: int = 0, phase: str | None = None, **kwargs) -> list[dict[str, Any]]:
    """Run ``model(*args, **kwargs)`` once under the profiler; the mapped op rows of that forward pass.

    ``step`` 0 is the prefill; decode steps are 1, 2, ... (``phase`` defaults accordingly). Runs under
    ``torch.no_grad()``.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    modules: dict[str, _Module] = {}
    handles = []
    stack: list[Any] = []

    def pre(mod, _inp, path):
        rf = record_function(f"{SCOPE_PREFIX}{path}")
        rf.__enter__()
        stack.append(rf)

    def post(mod, _inp, _out):
        rf = stack.pop()
        rf.__exit__(None, None, None)

    for path, mod in model.named_modules():
        path = path or "<root>"
        modules[path] = _Module(path, type(mod).__name__,
                                {n: tuple(p.shape) for n, p in mod.named_parameters(recurse=False)})
        handles.append(mod.register_forward_pre_hook(lambda m, i, p=path: pre(m, i, p)))
        handles.append(mod.register_forward_hook(lambda m, i, o: post(m, i, o)))
    et_events: list[_EtEvent] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        et_path = os.path.join(tmp, "et.json")
        et = _et_observer(et_path)
        try:
            opts = {"execution_trace_observer": et} if et is not None else {}
            with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True, **opts) as prof:
                model(*args, **kwargs)
        finally:
            for h in handles:
                h.remove()
            while stack:
                stack.pop().__exit__(None, None, None)
        if et is not None:
            try:
                et.unregister_callback()
            except Exception:  # noqa: BLE001 - older torch: nothing to unregister
                pass
            et_events = _read_et(et_path)
    if et_events:
        rows = rows_from_events(et_events, modules=modules, step=step, phase=phase)
        _dataflow(et_events, rows)
        return rows
    return rows_from_events(prof.events(), modules=modules, step=step, phase=phase)


def _et_observer(path: str):
    """A registered ExecutionTraceObserver writing to ``path``, or None where torch has none."""
    try:
        from torch.profiler import ExecutionTraceObserver

        et = ExecutionTraceObserver()
        et.register_callback(path)
        return et
    except Exception:  # noqa: BLE001 - any failure: fall back to the profiler's events alone
        return None


class _Range:
    __slots__ = ("start", "end")

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end


class _EtEvent:
    """An execution-trace node looking like a profiler FunctionEvent, plus its tensors' storages."""

    __slots__ = ("name", "input_shapes", "input_dtypes", "cpu_parent", "time_range", "ins", "outs", "nid")


def _storages(values, types) -> list[int]:
    out: list[int] = []
    for v, t in zip(values, types):
        if isinstance(t, str) and t.startswith("Tensor") and isinstance(v, list) and len(v) >= 2:
            out.append(int(v[1]))
        elif isinstance(t, str) and t.startswith("GenericList") and isinstance(v, list):
            out += [int(x[1]) for x in v if isinstance(x, list) and len(x) >= 2 and isinstance(x[1], int)]
    return out


def _read_et(path: str) -> list[_EtEvent] | None:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        nodes = data["nodes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    events: dict[int, _EtEvent] = {}
    parent: dict[int, int] = {}
    for n in nodes:
        e = _EtEvent()
        e.nid = int(n["id"])
        e.name = n["name"]
        ins, outs = n.get("inputs") or {}, n.get("outputs") or {}
        e.input_shapes = ins.get("shapes") or []
        types = ins.get("types") or []
        e.input_dtypes = [t[len("Tensor("):-1] if isinstance(t, str) and t.startswith("Tensor(") else None for t in types]
        e.ins = _storages(ins.get("values") or [], types)
        e.outs = _storages(outs.get("values") or [], outs.get("types") or [])
        e.time_range = _Range(e.nid, e.nid)
        e.cpu_parent = None
        events[e.nid] = e
        parent[e.nid] = int(n.get("ctrl_deps", 0) or 0)
    for nid, e in events.items():
        e.cpu_parent = events.get(parent[nid]) if parent[nid] != nid else None
    return sorted(events.values(), key=lambda e: e.nid)


def _dataflow(events: list[_EtEvent], rows: list[dict[str, Any]]) -> None:
    """Set each row's ``_deps`` (rows it waits for) from tensor storages: a row depends on the last
    mapped producers of the storages it reads; unmapped ops (views, copies, casts, cache concatenation)
    pass their inputs' producers on to their outputs."""
    by_evt: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        for e in r["_evts"]:
            by_evt.setdefault(id(e), []).append(r)
    producers: dict[int, tuple[int, ...]] = {}  # storage -> ids of rows (id()) that produced it
    row_by_id = {id(r): r for r in rows}
    deps: dict[int, set[int]] = {id(r): set() for r in rows}
    for e in events:
        if not e.name.startswith("aten::") or _aten_ancestor(e):
            continue
        got = by_evt.get(id(e))
        inputs = set()
        for st in e.ins:
            inputs.update(producers.get(st, ()))
        if got:
            first = got[0]
            deps[id(first)].update(inputs)
            for prev, nxt in zip(got, got[1:]):  # e.g. SDPA's score -> softmax -> av
                if nxt is not prev:
                    deps[id(nxt)].update(inputs)
                    deps[id(nxt)].add(id(prev))
            for st in e.outs:
                producers[st] = (id(got[-1]),)
        else:
            for st in e.outs:
                producers[st] = tuple(sorted(inputs | set(producers.get(st, ())) if st in e.ins else inputs))
    for r in rows:
        d = deps.get(id(r), set())
        d.discard(id(r))
        r["_deps"] = [row_by_id[i] for i in d if i in row_by_id]


def _aten_ancestor(evt) -> bool:
    p = evt.cpu_parent
    while p is not None:
        if p.name.startswith("aten::"):
            return True
        p = p.cpu_parent
    return False


def _scope(evt) -> str | None:
    p = evt.cpu_parent
    while p is not None:
        if p.name.startswith(SCOPE_PREFIX):
            return p.name[len(SCOPE_PREFIX):]
        p = p.cpu_parent
    return None


def _mapped_ancestor(evt) -> bool:
    p = evt.cpu_parent
    while p is not None:
        if p.name in MAPPED:
            return True
        p = p.cpu_parent
    return False


def _bytes_of(shape, dtype: str | None) -> int:
    return _numel(shape) * _DTYPE_BYTES.get(dtype or "float", 4)


def rows_from_events(events: Iterable[Any], *, modules: dict[str, Any] | None = None, step: int = 0,
                     phase: str | None = None) -> list[dict[str, Any]]:
    """Map profiler ``FunctionEvent`` objects (``prof.events()``) to memsim op rows (dicts)."""
    modules = modules or {}
    phase = phase or ("prefill" if step == 0 else "decode")
    evts = sorted((e for e in events if e.name in MAPPED or e.name.startswith(SCOPE_PREFIX)),
                  key=lambda e: (e.time_range.start, -e.time_range.end))
    rows: list[dict[str, Any]] = []
    norm_calls: dict[str, dict[str, Any]] = {}  # open *Norm module calls, by the scope event id
    last_kind_in_scope: dict[str, str] = {}
    counters: dict[str, int] = {}

    def new_row(name: str, kind: str, scope: str | None, **kw) -> dict[str, Any]:
        layer = _layer(scope)
        base = f"{scope}:{name}" if scope else name
        counters[base] = counters.get(base, 0) + 1
        label = base if counters[base] == 1 else f"{base}#{counters[base]}"
        row = {"phase": phase, "step": step, "layer": layer, "name": label, "kind": kind, "m": 0, "n": 0, "k": 0,
               "batch": 1, "heads": 0, "flops": 0, "weight_bytes": 0, "kv_read_bytes": 0, "kv_write_bytes": 0,
               "act_read_bytes": 0, "act_write_bytes": 0, "weight": "", "kv": "", "expert": -1}
        row.update(kw)
        row["_evts"] = [current[0]]
        rows.append(row)
        if scope is not None:
            last_kind_in_scope[scope] = kind
        return row

    current: list[Any] = [None]
    for e in evts:
        if e.name.startswith(SCOPE_PREFIX) or _mapped_ancestor(e):
            continue
        current[0] = e
        scope = _scope(e)
        # tensor arguments only: anything that is not a flat list of ints (lists, scalars) becomes []
        shapes = [list(s) if isinstance(s, (list, tuple)) and all(isinstance(x, int) for x in s) else []
                  for s in (e.input_shapes or [])]
        dtypes = list(getattr(e, "input_dtypes", None) or [None] * len(shapes))
        dtypes += [None] * (len(shapes) - len(dtypes))
        mod = modules.get(scope) if scope else None
        # A whole *Norm module call becomes one norm row.
        norm_scope = _norm_scope(e, modules)
        if norm_scope is not None:
            key, npath = norm_scope
            row = norm_calls.get(key)
            tens = [(sh, dt) for sh, dt in zip(shapes, dtypes) if sh]
            out_shape, out_dt = max(tens, key=lambda t: _numel(t[0])) if tens else ([], None)
            if row is None:
                nmod = modules.get(npath)
                wb = sum(_numel(s) for s in (nmod.params.values() if nmod else [])) * _DTYPE_BYTES.get(dtypes[0] or "float", 4)
                row = new_row("norm", "norm", npath, weight_bytes=wb, weight=f"{npath}.weight" if wb else "")
                norm_calls[key] = row
            else:
                row["_evts"].append(e)
            if _numel(out_shape) > row["m"] * max(row["n"], 1) or row["n"] == 0:
                # the norm's rows and width: its largest operand (the hidden states, not the variance)
                row.update(m=_numel(out_shape[:-1]), n=out_shape[-1] if out_shape else 0,
                           act_read_bytes=_bytes_of(out_shape, out_dt), act_write_bytes=_bytes_of(out_shape, out_dt))
            row["flops"] += _numel(out_shape)
            continue
        op = e.name.replace("aten::", "")
        if e.name in _GEMM or (e.name in _MATMUL and _param_operand(shapes, mod) is not None):
            _gemm_row(new_row, op, e.name, scope, mod, shapes, dtypes)
        elif e.name in _MATMUL:
            if e.name == "aten::baddbmm":
                a, b = shapes[1], shapes[2]
            else:
                a, b = shapes[0], shapes[1]
            after_softmax = scope is not None and last_kind_in_scope.get(scope) == "softmax"
            kind = "attn_av" if after_softmax else "attn_score"
            bdims = a[:-2] if len(a) > 2 else []
            mm, kk, nn = a[-2], a[-1], b[-1]
            batch = bdims[0] if bdims else 1
            heads = _numel(bdims[1:]) if len(bdims) > 1 else (1 if bdims else 0)
            kvid = f"L{_layer(scope)}.kv" if _layer(scope) >= 0 else "kv"
            new_row(op, kind, scope, m=mm, n=nn, k=kk, batch=batch, heads=heads,
                    flops=2 * _numel(bdims) * mm * nn * kk, kv=kvid,
                    kv_read_bytes=_bytes_of(b, dtypes[1] if len(dtypes) > 1 else None),
                    act_read_bytes=_bytes_of(a, dtypes[0]),
                    act_write_bytes=_bytes_of([*bdims, mm, nn], dtypes[0]))
        elif e.name in _SDPA:
            q, k, v = shapes[0], shapes[1], shapes[2]
            dt = dtypes[0]
            B, H, qn, hd = (q + [1, 1, 1, 1])[:4] if len(q) == 4 else (1, _numel(q[:-2]), q[-2], q[-1])
            keys = k[-2]
            pairs = B * H * qn * keys
            kvid = f"L{_layer(scope)}.kv" if _layer(scope) >= 0 else "kv"
            new_row("sdpa.score", "attn_score", scope, m=qn, n=keys, k=hd, batch=B, heads=H, flops=2 * hd * pairs,
                    kv=kvid, kv_read_bytes=_bytes_of(k, dtypes[1]), act_read_bytes=_bytes_of(q, dt),
                    act_write_bytes=pairs * _DTYPE_BYTES.get(dt or "float", 4))
            new_row("sdpa.softmax", "softmax", scope, m=qn, n=keys, batch=B, heads=H, flops=5 * pairs,
                    act_read_bytes=pairs * _DTYPE_BYTES.get(dt or "float", 4),
                    act_write_bytes=pairs * _DTYPE_BYTES.get(dt or "float", 4))
            new_row("sdpa.av", "attn_av", scope, m=qn, n=hd, k=keys, batch=B, heads=H, flops=2 * hd * pairs,
                    kv=kvid, kv_read_bytes=_bytes_of(v, dtypes[2]),
                    act_read_bytes=pairs * _DTYPE_BYTES.get(dt or "float", 4), act_write_bytes=_bytes_of(q, dt))
        elif e.name in _SOFTMAX:
            s = shapes[0]
            new_row(op, "softmax", scope, m=s[-2] if len(s) > 1 else 1, n=s[-1], batch=s[0] if len(s) > 2 else 1,
                    heads=_numel(s[1:-2]) if len(s) > 3 else 0, flops=5 * _numel(s),
                    act_read_bytes=_bytes_of(s, dtypes[0]), act_write_bytes=_bytes_of(s, dtypes[0]))
        elif e.name in _NORM:
            s = shapes[0]
            w = _numel(shapes[2]) if e.name in ("aten::layer_norm", "aten::native_layer_norm") and len(shapes) > 2 and shapes[2] else 0
            w += _numel(shapes[3]) if e.name in ("aten::layer_norm", "aten::native_layer_norm") and len(shapes) > 3 and shapes[3] else 0
            if e.name == "aten::rms_norm" and len(shapes) > 2 and shapes[2]:
                w = _numel(shapes[2])
            new_row(op, "norm", scope, m=_numel(s[:-1]), n=s[-1], flops=5 * _numel(s),
                    weight_bytes=w * _DTYPE_BYTES.get(dtypes[0] or "float", 4),
                    weight=f"{scope}.weight" if (w and scope) else ("norm.weight" if w else ""),
                    act_read_bytes=_bytes_of(s, dtypes[0]), act_write_bytes=_bytes_of(s, dtypes[0]))
        elif e.name in _EMBED:
            wshape, idx = shapes[0], shapes[1]
            rows_ = _numel(idx)
            d = wshape[-1] if wshape else 0
            new_row(op, "embedding", scope, m=rows_, n=d,
                    weight_bytes=rows_ * d * _DTYPE_BYTES.get(dtypes[0] or "float", 4),
                    weight=f"{scope}.weight" if scope else "embedding.weight",
                    act_read_bytes=_bytes_of(idx, dtypes[1] if len(dtypes) > 1 else "long int"),
                    act_write_bytes=rows_ * d * _DTYPE_BYTES.get(dtypes[0] or "float", 4))
        elif e.name in _ACT:
            s = shapes[0]
            new_row(op, "activation", scope, m=_numel(s[:-1]), n=s[-1] if s else 1, flops=_numel(s),
                    act_read_bytes=_bytes_of(s, dtypes[0]), act_write_bytes=_bytes_of(s, dtypes[0]))
        elif e.name in _ELEM:
            tens = [(s, dt) for s, dt in zip(shapes, dtypes) if s]
            if not tens:
                continue
            out = max((s for s, _ in tens), key=_numel)
            new_row(op, "elementwise", scope, m=_numel(out[:-1]), n=out[-1], flops=_numel(out),
                    act_read_bytes=sum(_bytes_of(s, dt) for s, dt in tens),
                    act_write_bytes=_bytes_of(out, tens[0][1]))
    return _add_kv_appends(rows)


def _add_kv_appends(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert a ``kv_append`` row before the first ``attn_score`` of each attention-module call.

    The profiler does not record the shapes of ``torch.cat``'s tensor list (how HF caches append), so the
    new K and V are inferred from the projections of the same attention module: their total output width
    minus the query width (``heads x head_dim`` of the score op) is ``2 x kv_heads x head_dim``. With that
    width the K and V reads of the attention ops are corrected to the cache's size (eager Hugging Face
    attention expands grouped KV heads with ``repeat_kv`` before the matmul).
    """
    out: list[dict[str, Any]] = []
    proj: dict[str, list[dict[str, Any]]] = {}  # attention scope -> projection rows since its last score
    kv_width: dict[str, int] = {}
    kv_rows: dict[str, dict[str, Any]] = {}
    for r in rows:
        scope = r["name"].rsplit(":", 1)[0] if ":" in r["name"] else ""
        if r["kind"] == "gemm":
            parent = scope.rsplit(".", 1)[0] if "." in scope else ""
            proj.setdefault(parent, []).append(r)
        if r["kind"] in ("attn_score", "attn_av") and scope:
            if r["kind"] == "attn_score" and proj.get(scope):
                q_width = r["heads"] * r["k"]
                total = sum(p["n"] for p in proj[scope])
                rows_ = proj[scope][0]["m"]
                width = total - q_width
                if width > 0 and width % 2 == 0:
                    kv_width[scope] = width
                    esize = max(1, proj[scope][0]["act_write_bytes"] // max(1, rows_ * proj[scope][0]["n"]))
                    kv_row = {**r, "name": f"{scope}:kv_append", "kind": "kv_append", "m": rows_, "n": width,
                              "k": 0, "heads": 0, "flops": 0, "weight_bytes": 0, "kv_read_bytes": 0,
                              "kv_write_bytes": rows_ * width * esize, "act_read_bytes": rows_ * width * esize,
                              "act_write_bytes": 0, "weight": "", "_evts": [],
                              "_extra": [p for p in proj[scope] if len(proj[scope]) == 1 or p["n"] != q_width]}
                    out.append(kv_row)
                    kv_rows[scope] = kv_row
                proj[scope] = []
            width = kv_width.get(scope)
            if width:
                keys = r["n"] if r["kind"] == "attn_score" else r["k"]
                dim = r["k"] if r["kind"] == "attn_score" else r["n"]
                expanded = r["kv_read_bytes"]
                esize = max(1, expanded // max(1, r["batch"] * max(1, r["heads"]) * keys * dim))
                r["kv_read_bytes"] = r["batch"] * keys * (width // 2) * esize
                r["_extra"] = [*r.get("_extra", []), kv_rows[scope]]
        out.append(r)
    return out


def _layer(scope: str | None) -> int:
    if not scope:
        return -1
    m = _LAYER_RE.search(scope)
    return int(m.group(1)) if m else -1


def _norm_scope(evt, modules: dict[str, Any]) -> tuple[int, str] | None:
    """(id of the scope event, module path) of the innermost enclosing *Norm module, if any."""
    p = evt.cpu_parent
    while p is not None:
        if p.name.startswith(SCOPE_PREFIX):
            path = p.name[len(SCOPE_PREFIX):]
            mod = modules.get(path)
            if mod is not None and "norm" in mod.cls.lower():
                return (id(p), path)
            return None  # only the innermost module counts
        p = p.cpu_parent
    return None


def _param_operand(shapes, mod) -> int | None:
    """Index of the operand that is a parameter of ``mod`` (by shape), for matmul-like ops."""
    if mod is None:
        return None
    pshapes = {tuple(s) for s in mod.params.values()}
    for i, s in enumerate(shapes):
        if s and (tuple(s) in pshapes or tuple(reversed(s)) in pshapes) and len(s) == 2:
            return i
    return None


def _gemm_row(new_row, op, name, scope, mod, shapes, dtypes) -> None:
    if name == "aten::linear":
        x, w = shapes[0], shapes[1]
        b = shapes[2] if len(shapes) > 2 and shapes[2] else []
        m_, k_, n_ = _numel(x[:-1]), x[-1], w[0]
        wel = _numel(w) + (_numel(b) if b else 0)
        wdt, xdt = dtypes[1], dtypes[0]
    elif name == "aten::addmm":
        b, x, w = shapes[0], shapes[1], shapes[2]
        m_, k_, n_ = x[0], x[1], w[1]
        wel = _numel(w) + _numel(b)
        wdt, xdt = dtypes[2], dtypes[1]
    else:  # mm / matmul / bmm with a parameter operand
        i = _param_operand(shapes, mod)
        if i is None:
            i = 1
        x, w = shapes[1 - i], shapes[i]
        if i == 1:
            m_, k_, n_ = _numel(x[:-1]), x[-1], w[-1]
        else:
            m_, k_, n_ = w[0], w[1], x[-1]
        wel = _numel(w)
        wdt, xdt = dtypes[i], dtypes[1 - i]
    leaf = (scope or "").rsplit(".", 1)[-1]
    kind = "lm_head" if leaf in _HEAD_NAMES else "gemm"
    wsize = _DTYPE_BYTES.get(wdt or "float", 4)
    asize = _DTYPE_BYTES.get(xdt or "float", 4)
    new_row(op, kind, scope, m=m_, n=n_, k=k_, flops=2 * m_ * n_ * k_, weight_bytes=wel * wsize,
            weight=f"{scope}.weight" if scope else f"{op}.weight", act_read_bytes=m_ * k_ * asize,
            act_write_bytes=m_ * n_ * asize)


def to_trace(captures: list[list[dict[str, Any]]] | list[dict[str, Any]], *, model_name: str = "torch",
             meta: dict[str, Any] | None = None) -> OpTrace:
    """Join captured rows (one list per forward pass, in order) into an :class:`OpTrace`."""
    if captures and isinstance(captures[0], dict):
        captures = [captures]  # type: ignore[list-item]
    rows = [r for cap in captures for r in cap]  # type: ignore[union-attr]
    if not rows:
        raise ValueError("no mapped ops in the capture")
    n = len(rows)
    index = {id(r): i for i, r in enumerate(rows)}
    src_l: list[int] = []
    dst_l: list[int] = []
    start = 0
    for cap in captures:  # type: ignore[union-attr]
        prev_last = start - 1
        for j, r in enumerate(cap):
            i = start + j
            if "_deps" in r:
                ds = {index[id(x)] for x in r["_deps"] if id(x) in index}
            else:  # no data flow known: execution order
                ds = {i - 1} if j > 0 else set()
            ds |= {index[id(x)] for x in r.get("_extra", []) if id(x) in index}
            ds = {d for d in ds if d < i}
            if not ds and prev_last >= 0:
                ds = {prev_last}  # a root of a later pass waits for the pass before (the sampled token)
            for d in sorted(ds):
                src_l.append(d)
                dst_l.append(i)
        start += len(cap)
    df = pd.DataFrame([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    df.insert(0, "op", np.arange(n, dtype=np.int64))
    df["out"] = np.where(df["act_write_bytes"].to_numpy() > 0, np.char.add("a", np.arange(n).astype(str)), "")
    for c in OPS_COLUMNS:
        if c == "deps":
            continue
        if c in _STR_COLS:
            df[c] = pd.array(df[c].astype(object).to_numpy(), dtype="str")
        else:
            df[c] = df[c].astype(np.int64)
    df = df[[c for c in OPS_COLUMNS if c != "deps"]].copy()
    src = np.asarray(src_l, dtype=np.int64)
    dst = np.asarray(dst_l, dtype=np.int64)
    df["deps"] = _deps_series(src, dst, n)
    tensors = _derive_tensors(df, src, dst)
    md = {"format": "memsim-optrace", "version": 1, "model": model_name, "source": "torch.profiler",
          **(meta or {})}
    return OpTrace(ops=df, tensors=tensors, meta=md, _src=src, _dst=dst)
