"""The PyTorch importer (memsim.workload.torch_import), on a tiny hand-built module and, when
transformers is installed, on a tiny Hugging Face Llama built from its config with random weights."""
from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from memsim.workload import Scenario, generate, import_hf_config, read_trace, write_trace  # noqa: E402
from memsim.workload.torch_import import capture, to_trace  # noqa: E402

nn = torch.nn


class Block(nn.Module):
    def __init__(self, d, heads, f):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.ModuleDict({"q": nn.Linear(d, d), "k": nn.Linear(d, d), "v": nn.Linear(d, d), "o": nn.Linear(d, d)})
        self.up, self.down = nn.Linear(d, f), nn.Linear(f, d)

    def forward(self, x):
        B, T, d = x.shape
        h = self.ln1(x)
        q, k, v = (self.attn[n](h).view(B, T, self.heads, -1).transpose(1, 2) for n in "qkv")
        p = torch.softmax(q @ k.transpose(-1, -2) / 8.0, dim=-1)
        a = (p @ v).transpose(1, 2).reshape(B, T, d)
        x = x + self.attn["o"](a)
        return x + self.down(torch.nn.functional.gelu(self.up(self.ln2(x))))


class Tiny(nn.Module):
    def __init__(self, vocab=50, d=32, heads=4, f=64, layers=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Block(d, heads, f) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids):
        x = self.embed(ids)
        for b in self.layers:
            x = b(x)
        return self.lm_head(self.norm(x))


def test_tiny_module_maps_to_schema(tmp_path):
    torch.manual_seed(0)
    model = Tiny().eval()
    B, T = 2, 6
    rows = capture(model, torch.randint(0, 50, (B, T)))
    tr = to_trace(rows, model_name="tiny")
    ops = tr.ops
    g = ops[ops.kind == "gemm"]
    assert len(g) == 2 * 6  # q, k, v, o, up, down per layer
    assert set(g.layer) == {0, 1}
    assert (g.m == B * T).all() and (g.flops == 2 * g.m * g.n * g.k).all()
    linear_params = sum(p.numel() for n, p in model.named_parameters() if ".attn." in n or ".up." in n or ".down." in n)
    assert g.weight_bytes.sum() == 4 * linear_params  # fp32
    head = ops[ops.kind == "lm_head"].iloc[0]
    assert (head.m, head.n, head.k, head.weight) == (B * T, 50, 32, "lm_head.weight")
    s = ops[ops.kind == "attn_score"]
    av = ops[ops.kind == "attn_av"]
    assert len(s) == len(av) == 2
    assert (s.m == T).all() and (s.n == T).all() and (s.k == 8).all() and (s.batch == B).all() and (s.heads == 4).all()
    assert (av.n == 8).all() and (av.k == T).all()
    assert (ops.kind == "softmax").sum() == 2
    assert (ops.kind == "norm").sum() == 5 and (ops.kind == "embedding").sum() == 1
    assert (ops.kind == "activation").sum() == 2
    assert (tr.edges.src < tr.edges.dst).all()
    # data flow from the execution trace: q, k, v all wait for ln1 only; attention P.V for softmax and v
    by = tr.ops.set_index("name")
    ln1 = by.loc["layers.1.ln1:norm", "op"]
    for proj in "qkv":
        assert list(by.loc[f"layers.1.attn.{proj}:linear", "deps"]) == [ln1]
    av = ops[(ops.kind == "attn_av") & (ops.layer == 1)].iloc[0]
    sm = ops[(ops.kind == "softmax") & (ops.layer == 1)].iloc[0]
    assert set(av.deps) == {sm.op, by.loc["layers.1.attn.v:linear", "op"]}
    back = read_trace(write_trace(tr, tmp_path / "tiny.parquet"))
    assert back.ops.equals(tr.ops)


def test_plain_profile_events_chain_in_execution_order():
    from torch.profiler import ProfilerActivity, profile

    from memsim.workload.torch_import import rows_from_events

    model = Tiny(layers=1).eval()
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        model(torch.randint(0, 50, (1, 4)))
    tr = to_trace(rows_from_events(prof.events()))
    ops = tr.ops
    # no module scopes: no layers, and the LM head is a plain GEMM
    assert (ops.kind == "gemm").sum() == 7 and (ops.layer == -1).all()
    e = tr.edges
    assert (e.dst - e.src == 1).all() and len(e) == len(ops) - 1


def test_hf_llama_matches_generator(tmp_path):
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval()
    P = 8
    ids = torch.randint(0, 256, (1, P))
    pre = capture(model, ids, use_cache=True, step=0)
    with torch.no_grad():
        out = model(ids, use_cache=True)
    nxt = out.logits[:, -1:].argmax(-1)
    # transformers 5.x renamed past_key_values to cache
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cache = out["cache"] if "cache" in out else out["past_key_values"]
    dec = capture(model, nxt, step=1, use_cache=True, **{key: cache})
    tr = to_trace([pre, dec], model_name="tiny-llama")
    assert set(tr.ops.step) == {0, 1}

    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    spec = import_hf_config(tmp_path / "config.json")
    assert spec.param_count() == sum(p.numel() for p in model.parameters())
    ours = generate(spec, Scenario(model=spec, prompt_tokens=P, generated_tokens=1, weight_dtype="fp32",
                                   act_dtype="fp32", kv_dtype="fp32")).ops
    for step in (0, 1):
        t = tr.ops[(tr.ops.step == step) & (tr.ops.kind == "gemm") & (tr.ops.layer >= 0)]
        o = ours[(ours.step == step) & (ours.kind == "gemm") & (ours.layer >= 0)]
        assert t.flops.sum() == o.flops.sum()
        assert t.weight_bytes.sum() == o.weight_bytes.sum()
        ts = tr.ops[(tr.ops.step == step) & (tr.ops.kind == "attn_score")]
        os_ = ours[(ours.step == step) & (ours.kind == "attn_score")]
        assert len(ts) == len(os_) == 2
        assert (ts.n.to_numpy() == os_.n.to_numpy()).all() and (ts.m.to_numpy() == os_.m.to_numpy()).all()
        assert (ts.k.to_numpy() == os_.k.to_numpy()).all()
        # KV cache traffic: the new K and V written, the cached K and V read (GQA: 2 of 4 heads)
        for col in ("kv_read_bytes", "kv_write_bytes"):
            assert tr.ops[tr.ops.step == step][col].sum() == ours[ours.step == step][col].sum(), col
        n_norm = (tr.ops[tr.ops.step == step].kind == "norm").sum()
        assert n_norm == 2 * 2 + 1
        nr = tr.ops[(tr.ops.step == step) & (tr.ops.kind == "norm")]
        assert (nr.n == 64).all() and (nr.weight_bytes == 64 * 4).all()
        # parallel branches survive: gate and up both wait for the post-attention norm only
        st = tr.ops[tr.ops.step == step].set_index("name")
        norm = st.loc["model.layers.1.post_attention_layernorm:norm", "op"]
        assert list(st.loc["model.layers.1.mlp.gate_proj:linear", "deps"]) == [norm]
        assert list(st.loc["model.layers.1.mlp.up_proj:linear", "deps"]) == [norm]
        kv = st.loc["model.layers.1.self_attn:kv_append"]
        assert set(kv.deps) == {st.loc["model.layers.1.self_attn.k_proj:linear", "op"],
                                st.loc["model.layers.1.self_attn.v_proj:linear", "op"]}
    assert (tr.edges.src < tr.edges.dst).all()
    emb1 = tr.ops[(tr.ops.step == 1) & (tr.ops.kind == "embedding")].iloc[0]
    assert list(emb1.deps) == [tr.ops[tr.ops.step == 0].op.max()]  # waits for the prefill's LM head
    assert np.array_equal(sorted(set(tr.ops.layer)), [-1, 0, 1])
