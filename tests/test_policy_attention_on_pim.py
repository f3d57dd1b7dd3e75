"""attention-on-pim: placement (KV on the PIM tier, decode attention on PIM, FC on the GPU), batch scaling,
check() and parameter errors, softmax transfers, determinism. Small systems and GPT-2 keep it fast."""
from __future__ import annotations

import numpy as np
import pytest

from memsim.errors import ConfigError, MemsimError
from memsim.policies import get_policy
from memsim.system.api import run_point

SYSTEM = """
name: tiny-attacc
memory: {preset: HBM3_5200}
pim: {preset: AttAcc_HBM3_PIM, memory: {preset: HBM3_5200}, timing: {tCCD_AB: {nCK: 6}}}
system:
  units:
    gpu: {preset: A100a, memory: hbm}
    pim: {device: kvpim}
    %(sfm)s
  tiers:
    hbm: {device: memory, count: 5}
    kvpim: {device: pim, count: 4}
  %(links)s
policy: {name: attention-on-pim}
"""


def _hw(tmp_path, *, sfm=True, link=False, name="hw.yaml"):
    text = SYSTEM % {"sfm": "sfm: {preset: AttAcc-buffer-die-softmax, memory: kvpim}" if sfm else "",
                     "links": "links: {nv: {between: [hbm, kvpim], bandwidth: 100GB/s, latency: 1us}}" if link else ""}
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def _run(hw, batch=2, prompt=32, gen=2, **pol):
    ov = {"workload.batch": batch, "workload.prompt_tokens": prompt, "workload.generated_tokens": gen}
    ov.update({f"policy.{k}": v for k, v in pol.items()})
    return run_point(hw, "gpt2", overrides=ov)


def _time(res, mask) -> float:
    o = res.ops[mask]
    return float((o["end_ps"] - o["start_ps"]).sum())


def test_placement_kv_on_pim_attention_on_pim_fc_on_gpu(tmp_path):
    res = _run(_hw(tmp_path))
    o = res.ops
    dec = o["phase"] == "decode"
    att = o["kind"].isin(["attn_score", "attn_av"])
    assert set(o.loc[dec & att, "unit"]) == {"pim"}
    assert set(o.loc[dec & (o["kind"] == "softmax"), "unit"]) == {"sfm"}
    assert set(o.loc[o["kind"].isin(["gemm", "lm_head", "norm", "kv_append"]), "unit"]) == {"gpu"}
    # the prefill's attention stays on the accelerator (default)
    assert set(o.loc[~dec & (att | (o["kind"] == "softmax")), "unit"]) == {"gpu"}
    assert res.plan.default_tier == {"weight": "hbm", "kv": "kvpim", "activation": "hbm"}
    kv = res.trace.tensors[res.trace.tensors["kind"] == "kv"]["tensor"]
    assert res.occupancy["kvpim"] >= int(res.trace.tensors.set_index("tensor").loc[kv, "bytes"].sum())
    # FC layers stream their weights from HBM only; PIM attention moves bytes only on the PIM tier
    g = o[dec & (o["kind"] == "gemm")]
    assert (g["bytes_hbm"] > 0).all() and (g["bytes_kvpim"] == 0).all()
    a = o[dec & att]
    assert (a["bytes_kvpim"] > 0).all() and (a["bytes_hbm"] == 0).all()
    assert res.metrics()["policy_pim_ops"] == float((dec & att).sum())


def test_prefill_attention_parameter_moves_prefill_attention_to_pim(tmp_path):
    res = _run(_hw(tmp_path), prefill_attention=True)
    o = res.ops
    pre = o["phase"] == "prefill"
    assert set(o.loc[pre & o["kind"].isin(["attn_score", "attn_av"]), "unit"]) == {"pim"}
    assert set(o.loc[pre & (o["kind"] == "gemm"), "unit"]) == {"gpu"}


def test_batch_scaling_pim_time_linear_fc_sublinear(tmp_path):
    hw = _hw(tmp_path)
    small, big = _run(hw, batch=2), _run(hw, batch=8)
    mid, long = _run(hw, batch=2, prompt=256), _run(hw, batch=2, prompt=1000)

    def pim_t(r):
        return _time(r, (r.ops["phase"] == "decode") & (r.ops["unit"] == "pim"))

    def fc_t(r):
        return _time(r, (r.ops["phase"] == "decode") & (r.ops["kind"] == "gemm"))

    # attention is one GEMV per (sequence, head) pair, spread over the stacks and their pseudo-channels:
    # 4x the batch is 4x the work (bytes, below) but costs more than 1x and at most 4x the PIM time,
    # depending on how much of the PIM's parallelism the smaller batch left idle
    assert 1.05 < pim_t(big) / pim_t(small) <= 4.0 * 1.01
    # longer context: more keys per GEMV, more PIM time; GPT-2's 64-wide heads spread over 1,024 banks per
    # stack make each GEMV short, so the PIM model's fixed cost per GEMV (~150 ns) keeps it sub-proportional
    assert pim_t(small) < pim_t(mid) < pim_t(long)
    assert pim_t(long) > 1.25 * pim_t(small)
    # the FC layers share their weights over the batch: far less than 4x
    assert fc_t(big) / fc_t(small) < 1.5
    # and the KV bytes on the PIM tier scale with batch x context
    kv = lambda r: r.metrics()["bytes_per_decode_step_kvpim"]  # noqa: E731
    assert kv(big) / kv(small) == pytest.approx(4.0, rel=0.05)


def test_softmax_on_accelerator_moves_scores_over_the_link(tmp_path):
    res = _run(_hw(tmp_path, sfm=False, link=True))
    o = res.ops
    dec = o["phase"] == "decode"
    assert set(o.loc[dec & (o["kind"] == "softmax"), "unit"]) == {"gpu"}
    t = res.transfers
    n_layers = 12
    assert len(t) == 2 * n_layers * 2  # scores out and probabilities back, per layer and decode step
    tr = res.trace.ops
    scores = tr[(tr["phase"] == "decode") & (tr["kind"] == "attn_score")]["act_write_bytes"].to_numpy()
    out = t[t["src"] == "kvpim"].sort_values("before_op")["bytes"].to_numpy()
    assert np.array_equal(out, scores)  # each layer's scores, PIM tier -> HBM, before its softmax
    assert set(t["dst"]) == {"kvpim", "hbm"}


def test_check_rejects_systems_without_the_needed_units(tmp_path):
    from memsim.system.validation import _hw as shipped

    with pytest.raises(MemsimError, match="needs a PIM unit"):
        run_point(shipped("a100_80gb.yaml"), "gpt2", policy="attention-on-pim")
    with pytest.raises(MemsimError, match="GPU or NPU"):
        run_point(shipped("pim_gpt_aim.yaml"), "gpt2", policy="attention-on-pim")
    with pytest.raises(ConfigError, match="no link") as e:
        _run(_hw(tmp_path, sfm=False, link=False))
    assert e.value.path == "policy.softmax"


@pytest.mark.parametrize("param,value,match", [("pim", "gpu", "not a PIM unit"),
                                                ("accelerator", "nope", "not a compute unit"),
                                                ("accelerator", "pim", "not a compute unit"),
                                                ("softmax", "pim", "PIM units run only GEMVs")])
def test_unit_parameter_errors_name_the_parameter(tmp_path, param, value, match):
    with pytest.raises(ConfigError, match=match) as e:
        _run(_hw(tmp_path), **{param: value})
    assert e.value.path == f"policy.{param}"


def test_parameter_parse_errors_name_policy_param():
    with pytest.raises(ConfigError) as e:
        get_policy("attention-on-pim", {"bogus": 1})
    assert "policy.bogus" in str(e.value)
    with pytest.raises(ConfigError) as e:
        get_policy("attention-on-pim", {"prefill_attention": "maybe"})
    assert "policy.prefill_attention" in str(e.value)


def test_deterministic(tmp_path):
    hw = _hw(tmp_path)
    a, b = _run(hw, batch=3), _run(hw, batch=3)
    assert a.metrics() == b.metrics()
    assert np.array_equal(a.ops["end_ps"].to_numpy(), b.ops["end_ps"].to_numpy())


def test_shipped_configs_load_and_check():
    from memsim.system.api import resolve_point
    from memsim.system.validation import _hw as shipped

    r = resolve_point(shipped("attacc_like.yaml"), "workloads/gpt3_175b_attacc.yaml")
    assert r["policy"]["name"] == "attention-on-pim"
    r = resolve_point(shipped("attacc_baseline.yaml"), "workloads/gpt3_175b_attacc.yaml")
    assert r["policy"]["name"] == "hbm-baseline"


def test_validation_cases_declared():
    from memsim.policies.attention_on_pim import validation_cases
    from memsim.policies.validation import cases

    ids = {c.id for c in cases()}
    mine = validation_cases()
    assert {c.id for c in mine} <= ids
    bands = [ch.band for c in mine for ch in c.checks if ch.band]
    assert bands == [(2.0, 3.0), (2.0, 3.0)]
