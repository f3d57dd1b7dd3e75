"""The transformer op-trace generator: schema, order, closed-form identities, GQA/MQA, MoE, Parquet."""
from __future__ import annotations

import hashlib
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from memsim.errors import TraceError
from memsim.workload import KINDS, Scenario, generate, load_model, read_trace, write_trace
from memsim.workload.closed_form import (decode_step_bytes, decode_step_flops, flops_per_token, kv_cache_bytes,
                                         prefill_bytes)
from memsim.workload.trace import OPS_COLUMNS, TENSORS_COLUMNS, active_experts, tensors_path


def _trace(name, **kw):
    m = load_model(name)
    kw.setdefault("prompt_tokens", 16)
    kw.setdefault("generated_tokens", 3)
    return m, Scenario(model=m, **kw), generate(m, Scenario(model=m, **kw))


@pytest.fixture(scope="module")
def llama():
    return _trace("llama2-7b", prompt_tokens=32, generated_tokens=4)


def test_schema_columns_and_types(llama):
    _, _, tr = llama
    assert tuple(tr.ops.columns) == OPS_COLUMNS
    assert tuple(tr.tensors.columns) == TENSORS_COLUMNS
    for c in ("op", "step", "layer", "m", "n", "k", "batch", "heads", "flops", "weight_bytes", "kv_read_bytes",
              "kv_write_bytes", "act_read_bytes", "act_write_bytes", "expert"):
        assert tr.ops[c].dtype == np.int64, c
    assert set(tr.ops["kind"]) <= set(KINDS)
    assert set(tr.ops["phase"]) == {"prefill", "decode"}
    assert (tr.ops["op"].to_numpy() == np.arange(len(tr.ops))).all()
    # op 5 is layer 0's attention score: it waits for RoPE (Q, K) and the KV append
    assert tr.ops["name"].iloc[5] == "L0.attn.score" and list(tr.ops["deps"].iloc[5]) == [3, 4]


def test_topological_order_and_step_chain(llama):
    _, sc, tr = llama
    e = tr.edges
    assert (e["src"] < e["dst"]).all() and len(e) > 0
    src, dst = tr.edge_arrays()
    assert (src == e["src"].to_numpy()).all() and (dst == e["dst"].to_numpy()).all()
    ops = tr.ops
    # every op except the very first waits for something; steps are contiguous and ordered
    has_dep = np.zeros(len(ops), bool)
    has_dep[e["dst"].to_numpy()] = True
    assert has_dep[1:].all() and not has_dep[0]
    assert (np.diff(ops["step"].to_numpy()) >= 0).all()
    assert ops["step"].max() == sc.generated_tokens
    # each decode step's embedding waits for the previous step's LM head
    for s in range(1, sc.generated_tokens + 1):
        emb = ops[(ops.step == s) & (ops.name == "embed")].op.item()
        head = ops[(ops.step == s - 1) & (ops.name == "lm_head")].op.item()
        assert e[(e.dst == emb)].src.tolist() == [head]
    # names are unique within a step
    assert not ops.duplicated(["step", "name"]).any()
    # the deps column and the edge table agree
    for i in (0, 7, len(ops) - 1):
        assert list(ops["deps"].iloc[i]) == e[e.dst == i].src.tolist()


def test_op_sequence_of_a_llama_layer(llama):
    _, _, tr = llama
    d = tr.ops[(tr.ops.step == 1) & (tr.ops.layer == 0)]
    assert d.name.str.removeprefix("L0.").tolist() == [
        "attn_norm", "attn.qkv", "attn.rope", "attn.kv_append", "attn.score", "attn.softmax", "attn.av",
        "attn.o_proj", "attn.residual", "mlp_norm", "mlp.gate", "mlp.up", "mlp.act", "mlp.down", "mlp.residual"]
    qkv = d[d.name == "L0.attn.qkv"].iloc[0]
    assert (qkv.m, qkv.n, qkv.k) == (1, 3 * 4096, 4096)
    assert qkv.flops == 2 * qkv.m * qkv.n * qkv.k and qkv.weight_bytes == 2 * 4096 * 3 * 4096
    score = d[d.kind == "attn_score"].iloc[0]
    assert (score.m, score.n, score.k, score.heads, score.batch) == (1, 33, 128, 32, 1)
    av = d[d.kind == "attn_av"].iloc[0]
    assert (av.m, av.n, av.k) == (1, 128, 33)


@pytest.mark.parametrize("name,batch,dt", [
    ("llama2-7b", 1, ("fp16", "fp16", "fp16")), ("llama2-70b", 2, ("int4", "fp16", "int8")),
    ("gpt2-xl", 3, ("int8", "bf16", "int4")), ("falcon-7b", 1, ("bf16", "bf16", "bf16")),
    ("mixtral-8x7b", 1, ("fp16", "fp16", "fp16")), ("mixtral-8x7b", 8, ("int4", "fp16", "fp16")),
    ("opt-6.7b", 2, ("fp32", "fp32", "fp32")), ("llama3-8b", 1, ("fp16", "fp16", "int4")),
])
def test_bytes_and_flops_identities(name, batch, dt):
    """bytes per step = weights + KV read + KV write, exactly as the closed form; GEMM+attention FLOPs too."""
    m, sc, tr = _trace(name, batch=batch, prompt_tokens=9, generated_tokens=3, weight_dtype=dt[0],
                       act_dtype=dt[1], kv_dtype=dt[2])
    st = tr.step_totals()
    for s in range(0, 4):
        cf = prefill_bytes(m, sc) if s == 0 else decode_step_bytes(m, sc, s)
        assert st.loc[s, "weight_bytes"] == cf["weights"]
        assert st.loc[s, "kv_read_bytes"] == cf["kv_read"]
        assert st.loc[s, "kv_write_bytes"] == cf["kv_write"]
        assert st.loc[s, ["weight_bytes", "kv_read_bytes", "kv_write_bytes"]].sum() == cf["total"]
    for s in (1, 3):
        d = tr.ops[tr.ops.step == s]
        mm = d[d.kind.isin(["gemm", "lm_head", "moe_router"])]
        attn = d[d.kind.isin(["attn_score", "attn_av"])]
        f = decode_step_flops(m, sc, s)
        assert int((2 * mm.m * mm.n * mm.k).sum()) == f["gemm"]
        assert int(attn.flops.sum()) == f["attention"]
        assert f["total"] == batch * flops_per_token(m, sc.prompt_tokens + s)
        assert f["total"] <= d.flops.sum() <= 1.01 * f["total"]  # element-wise ops add under 1 %
    # the whole KV cache at the end = the sum of every KV write
    assert tr.ops.kv_write_bytes.sum() == kv_cache_bytes(m, sc) == tr.tensors[tr.tensors.kind == "kv"].bytes.sum()


def test_decode_flops_near_two_params_per_token():
    m = load_model("llama2-7b")
    f = flops_per_token(m, 512)
    assert 2 * m.param_count() * 0.97 < f < 2 * m.param_count() * 1.03


def test_kv_grows_one_token_per_step(llama):
    m, sc, tr = llama
    st = tr.step_totals()
    per_token = 32 * 2 * 4096 * 2  # layers x (K,V) x kv_dim x fp16
    assert (np.diff(st.kv_read_bytes.to_numpy()[1:]) == per_token).all()
    assert st.loc[1, "kv_read_bytes"] == (sc.prompt_tokens + 1) * per_token
    assert (st.kv_write_bytes.to_numpy()[1:] == per_token).all()  # one token's K and V, all layers


@pytest.mark.parametrize("name,kv_heads", [("llama2-7b", 32), ("llama2-70b", 8), ("llama3-8b", 8),
                                           ("falcon-7b", 1), ("mixtral-8x7b", 8)])
def test_gqa_mqa_shrink_kv(name, kv_heads):
    m, sc, tr = _trace(name, prompt_tokens=10, generated_tokens=2, kv_dtype="fp16")
    d = tr.ops[(tr.ops.step == 2)]
    per_layer_write = d[d.kind == "kv_append"].kv_write_bytes
    assert (per_layer_write == 2 * kv_heads * m.head_dim * 2).all()
    score = d[d.kind == "attn_score"]
    assert (score.kv_read_bytes == 12 * kv_heads * m.head_dim * 2).all()
    assert (score.heads == m.num_attention_heads).all()
    qkv = d[d.name == "L0.attn.qkv"].iloc[0]
    assert qkv.n == (m.num_attention_heads + 2 * kv_heads) * m.head_dim


def test_falcon_parallel_block():
    _, _, tr = _trace("falcon-7b", prompt_tokens=4, generated_tokens=1)
    d = tr.ops[(tr.ops.step == 1) & (tr.ops.layer == 3)].set_index("name")
    assert "L3.mlp_norm" not in d.index and "L3.mlp.gate" not in d.index
    norm = d.loc["L3.attn_norm", "op"]
    assert list(d.loc["L3.mlp.up", "deps"]) == [norm] and list(d.loc["L3.attn.qkv", "deps"]) == [norm]
    assert set(d.loc["L3.residual", "deps"]) == {d.loc["L3.attn.o_proj", "op"], d.loc["L3.mlp.down", "op"],
                                                  tr.ops[(tr.ops.step == 1) & (tr.ops.name == "L2.residual")].op.item()}


def test_learned_positions_and_tied_head():
    m, sc, tr = _trace("gpt2", prompt_tokens=8, generated_tokens=2)
    d = tr.ops[tr.ops.step == 2]
    assert d.name.iloc[:2].tolist() == ["embed", "pos_embed"]
    assert "rope" not in set(d.kind)
    head = d[d.kind == "lm_head"].iloc[0]
    assert head.weight == "embed_tokens" and head.weight_bytes == 2 * 50257 * 768
    assert "lm_head" not in set(tr.tensors.tensor)


def test_prefill_lm_head_last_token_only():
    m, sc, tr = _trace("llama2-7b", batch=3, prompt_tokens=20, generated_tokens=1)
    p = tr.ops[tr.ops.step == 0].set_index("name")
    assert p.loc["lm_head", "m"] == 3 and p.loc["final_norm", "m"] == 3
    assert p.loc["L0.attn.qkv", "m"] == 60
    s = p.loc["L0.attn.score"]
    assert (s.m, s.n) == (20, 20)
    assert s.flops == 2 * 128 * 3 * 32 * (20 * 21 // 2)  # causal pairs only


def test_moe_batch1_decode_runs_exactly_top_k_experts():
    m, sc, tr = _trace("mixtral-8x7b", prompt_tokens=12, generated_tokens=6)
    d = tr.ops[(tr.ops.phase == "decode") & (tr.ops.expert >= 0)]
    per = d.groupby(["step", "layer"]).expert.nunique()
    assert (per == 2).all() and len(per) == 6 * 32
    assert d.expert.between(0, 7).all()
    # each expert runs gate, up, act, down on the single token
    g = d[d.name.str.endswith(".up")]
    assert (g.m == 1).all() and (g.weight.str.contains(".moe.e")).all()
    # choice varies across layers and steps, deterministically
    sets = d.groupby(["step", "layer"]).expert.apply(lambda s: tuple(sorted(set(s))))
    assert sets.nunique() > 5
    _, _, tr2 = _trace("mixtral-8x7b", prompt_tokens=12, generated_tokens=6)
    assert tr2.ops.equals(tr.ops)
    # prefill of 12 tokens: expected distinct experts 8(1 - (6/8)^12) = 7.75 -> 8
    p = tr.ops[(tr.ops.step == 0) & (tr.ops.expert >= 0) & tr.ops.name.str.endswith(".up")]
    assert (p.groupby("layer").expert.nunique() == 8).all()
    assert (p.groupby("layer").m.sum() == 12 * 2).all()  # every token-expert pair once


def test_moe_expected_distinct_experts_rule():
    m = load_model("mixtral-8x7b")
    assert active_experts(m, 1) == 2
    assert active_experts(m, 2) == 4  # 8(1 - 0.75^2) = 3.5 -> 4
    assert active_experts(m, 4) == 5  # 8(1 - 0.75^4) = 5.47 -> 5
    assert active_experts(m, 8) == 7  # 8(1 - 0.75^8) = 7.2 -> 7
    assert active_experts(m, 100) == 8
    assert active_experts(load_model("llama2-7b"), 64) == 1
    _, _, tr = _trace("mixtral-8x7b", batch=4, prompt_tokens=3, generated_tokens=2)
    d = tr.ops[(tr.ops.step == 2) & (tr.ops.expert >= 0) & tr.ops.name.str.endswith(".up")]
    assert (d.groupby("layer").expert.nunique() == 5).all()
    assert (d.groupby("layer").m.sum() == 8).all() and d.m.max() <= 4
    assert tr.meta["experts_per_layer"] == {"prefill": 8, "decode": 5}


def test_tensor_table_consistent(llama):
    m, sc, tr = llama
    t = tr.tensors
    assert not t.tensor.duplicated().any()
    assert set(t.kind) == {"weight", "kv", "activation"}
    w = t[t.kind == "weight"]
    assert w.bytes.sum() == tr.total_weight_bytes == 2 * m.param_count()
    assert (w.first_op >= 0).all()  # every weight is read (dense model)
    assert ((t.first_op <= t.last_op) & (t.last_op < len(tr.ops))).all()
    # every weight id the ops name is in the table; every activation an op writes too
    assert set(tr.ops.weight[tr.ops.weight != ""]) <= set(w.tensor)
    a = t[t.kind == "activation"].set_index("tensor")
    outs = tr.ops[tr.ops.out != ""]
    assert (a.loc[outs.out, "bytes"].to_numpy() == outs.act_write_bytes.to_numpy()).all()
    # an activation lives until its last consumer
    e = tr.edges
    last = e.groupby("src").dst.max()
    ops_with_out = outs.op.to_numpy()
    expect = last.reindex(ops_with_out).fillna(pd.Series(ops_with_out, index=ops_with_out)).to_numpy()
    assert (a.loc[outs.out, "last_op"].to_numpy() == expect).all()
    kv = t[t.kind == "kv"]
    assert len(kv) == 32 and (kv.bytes == 1 * (32 + 4) * 2 * 4096 * 2).all()


def test_generation_speed():
    """Llama-2-7B and -70B, 512-token prompt + 128 decode steps: well under 2 s each (on a free core)."""
    for name in ("llama2-7b", "llama2-70b"):
        m = load_model(name)
        sc = Scenario(model=m, prompt_tokens=512, generated_tokens=128)
        t0 = time.process_time()  # CPU time: wall time on a shared, loaded machine says little
        tr = generate(m, sc)
        dt = time.process_time() - t0
        assert tr.num_steps == 129
        assert dt < 2.0, f"{name}: {dt:.2f} s of CPU"


# ---- Parquet storage ---------------------------------------------------------------------------------


def _sha(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_parquet_round_trip_identical_and_deterministic(tmp_path):
    _, _, tr = _trace("mixtral-8x7b", batch=2, prompt_tokens=5, generated_tokens=3)
    p1 = write_trace(tr, tmp_path / "a.parquet")
    back = read_trace(p1)
    assert back.ops.equals(tr.ops) and back.tensors.equals(tr.tensors) and back.meta == tr.meta
    assert (back.edges == tr.edges).all().all()
    p2 = write_trace(back, tmp_path / "b.parquet")
    assert _sha(p1) == _sha(p2) and _sha(tensors_path(p1)) == _sha(tensors_path(p2))
    _, _, again = _trace("mixtral-8x7b", batch=2, prompt_tokens=5, generated_tokens=3)
    p3 = write_trace(again, tmp_path / "c.parquet")
    assert _sha(p1) == _sha(p3)
    assert back.resolved() == tr.resolved() and back.resolved()["scenario"]["batch"] == 2


def test_trace_without_tensor_file_derives_tensors(tmp_path):
    m, sc, tr = _trace("llama2-7b", prompt_tokens=4, generated_tokens=2)
    p = write_trace(tr, tmp_path / "x.parquet")
    tensors_path(p).unlink()
    back = read_trace(p)
    t = back.tensors.set_index("tensor")
    orig = tr.tensors.set_index("tensor")
    assert set(t.index) == set(orig.index)
    # weights fully read by GEMMs, KV and activations: identical sizes and lifetimes
    same = [i for i in orig.index if i != "embed_tokens"]
    assert (t.loc[same, ["bytes", "first_op", "last_op"]] == orig.loc[same, ["bytes", "first_op", "last_op"]]).all().all()


def _rewrite(tmp_path, tr, mutate, name="bad.parquet"):
    src = write_trace(tr, tmp_path / "good.parquet")
    table = pq.read_table(src)
    table = mutate(table)
    out = tmp_path / name
    pq.write_table(table, out)
    return out


def _set(table, col, array):
    return table.set_column(table.column_names.index(col), col, array)


@pytest.fixture(scope="module")
def small():
    return _trace("gpt2", prompt_tokens=4, generated_tokens=2)[2]


def _with_value(table, col, row, value, type_=None):
    vals = table.column(col).to_pylist()
    vals[row] = value
    return _set(table, col, pa.array(vals, type=type_ or table.schema.field(col).type))


@pytest.mark.parametrize("mutate,words", [
    (lambda t: t.drop_columns(["flops"]), "missing column 'flops'"),
    (lambda t: _set(t, "m", pa.array([str(v) for v in t.column("m").to_pylist()])), "column 'm': expected integers"),
    (lambda t: _with_value(t, "kind", 17, "conv2d"), "column 'kind', row 17: expected one of"),
    (lambda t: _with_value(t, "flops", 9, -5), "column 'flops', row 9: expected a value >= 0"),
    (lambda t: _with_value(t, "op", 3, 4), "column 'op', row 3"),
    (lambda t: _with_value(t, "deps", 5, [5]), "column 'deps', row 5: op 5 depends on op 5"),
    (lambda t: _with_value(t, "deps", 6, [40]), "column 'deps', row 6"),
    (lambda t: _with_value(t, "phase", 2, "decode"), "column 'phase', row 2"),
    (lambda t: _with_value(t, "name", 4, None), "column 'name', row 4: missing value"),
    (lambda t: _with_value(t, "step", t.num_rows - 1, 1), "column 'step', row"),
])
def test_read_errors_name_file_column_and_row(tmp_path, small, mutate, words):
    p = _rewrite(tmp_path, small, mutate)
    with pytest.raises(TraceError) as e:
        read_trace(p)
    assert e.value.file == str(p)
    assert words in str(e.value), str(e.value)


def test_read_errors_other_files(tmp_path, small):
    with pytest.raises(TraceError, match="file not found"):
        read_trace(tmp_path / "none.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(TraceError, match="not a readable Parquet file"):
        read_trace(junk)
    p = write_trace(small, tmp_path / "t.parquet")
    tp = tensors_path(p)
    t = pq.read_table(tp)
    pq.write_table(_with_value(t, "kind", 3, "buffer"), tp)
    with pytest.raises(TraceError) as e:
        read_trace(p)
    assert e.value.file == str(tp) and "column 'kind', row 3" in str(e.value)


def test_prefill_only_and_unused_experts():
    """generated_tokens 0 gives the prefill alone; experts no op reads have first_op = last_op = -1."""
    m, sc, tr = _trace("mixtral-8x7b", prompt_tokens=1, generated_tokens=0)
    assert set(tr.ops.step) == {0} and tr.num_steps == 1
    w = tr.tensors[tr.tensors.kind == "weight"]
    experts = w[w.tensor.str.contains(".moe.e")]
    used = experts[experts.first_op >= 0]
    assert len(used) == 32 * 2 * 3  # 2 experts x (gate, up, down) per layer
    assert (experts[experts.first_op < 0].last_op == -1).all()
    assert tr.ops.weight_bytes.sum() == prefill_bytes(m, sc)["weights"]
