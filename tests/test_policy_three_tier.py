"""three-tier: switch time in closed form, fused vs unfused HBM traffic, SRAM capacity and spills, expert
switching (LRU against the trace's routing), parameter errors, determinism, CLI."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.policies import Plan, get_policy
from memsim.policies.three_tier import live_peak, spill_threshold
from memsim.system.api import run_point
from memsim.system.simulator import CapacityError, simulate, tier_capacity
from memsim.workload.model import load_model
from memsim.workload.scenario import Scenario
from memsim.workload.trace import generate

REPO = Path(__file__).resolve().parents[1]
SN40L = str(REPO / "hw_configs" / "sn40l_like.yaml")
H100 = str(REPO / "hw_configs" / "h100_host_ddr.yaml")
A100 = str(REPO / "hw_configs" / "a100_host_ddr.yaml")
SMALL = {"workload.prompt_tokens": 16, "workload.generated_tokens": 3}


@pytest.fixture(scope="module")
def gpt2_runs():
    return {f: run_point(SN40L, "gpt2", policy="three-tier", overrides={**SMALL, "policy.fuse": f})
            for f in (True, False)}


def test_switch_time_is_bytes_over_link_bandwidth_plus_latency(gpt2_runs):
    res = gpt2_runs[True]
    t = res.trace.tensors
    wbytes = int(t.loc[t["kind"] == "weight", "bytes"].sum())
    tr = res.transfers[res.transfers["name"] == "model switch-in"].iloc[0]
    assert tr["bytes"] == wbytes and tr["link"] == "ddr_port" and tr["start_ps"] == 0
    expect = int(np.ceil(1_000_000 + wbytes / 100e9 * 1e12))  # 1 us + bytes / 100 GB/s (DDR 154 GB/s, HBM 1.6 TB/s)
    assert tr["end_ps"] - tr["start_ps"] == expect
    assert res.metrics()["policy_switch_time_s"] == pytest.approx(expect * 1e-12, rel=0, abs=1e-12)
    assert res.ops["start_ps"].min() >= tr["end_ps"]  # nothing runs before the model is in HBM
    assert res.metrics()["ttft_s"] > expect * 1e-12
    # a DGX-like GPU switches from host memory over PCIe: 1 us + bytes / 63 GB/s (PCIe 5.0), 31.5 GB/s (4.0)
    for hw, bw in ((H100, 63e9), (A100, 31.5e9)):
        r = run_point(hw, "gpt2", policy="three-tier", overrides=SMALL)
        row = r.transfers[r.transfers["name"] == "model switch-in"].iloc[0]
        assert row["link"] == "pcie" and row["src"] == "host"
        assert row["end_ps"] - row["start_ps"] == int(np.ceil(1_000_000 + wbytes / bw * 1e12))
        assert "sram" not in r.occupancy  # no SRAM tier: unfused


def test_fused_versus_unfused_hbm_traffic(gpt2_runs):
    f, u = gpt2_runs[True], gpt2_runs[False]
    mf, mu = f.metrics(), u.metrics()
    # the policy's figures are what the simulator charges the ops (transfers aside)
    assert f.ops["bytes_hbm"].sum() == mf["policy_hbm_bytes_fused"]
    assert u.ops["bytes_hbm"].sum() == mu["policy_hbm_bytes_unfused"] == mf["policy_hbm_bytes_unfused"]
    ops = f.trace.ops
    act = ops[["act_read_bytes", "act_write_bytes"]].to_numpy().sum()
    assert mf["policy_hbm_bytes_unfused"] - mf["policy_hbm_bytes_fused"] == act  # nothing spilled at this size
    assert f.ops["bytes_sram"].sum() == act and "bytes_sram" not in u.ops
    assert mf["policy_sram_spilled_bytes"] == 0
    # one kernel per decoder layer and step (plus the embedding and the final norm + LM head): only the first op
    # of each run of ops of one (step, layer) pays the kernel overhead
    ovh = f.plan.op_overrides["overhead_ps"]
    steps = f.trace.num_steps
    assert (ovh > 0).sum() == steps * (12 + 2) == mf["policy_fused_kernels"]
    starts = np.flatnonzero(ovh > 0)
    assert (ops["layer"].to_numpy()[starts].reshape(steps, 14)[:, 1:-1] == np.arange(12)).all()
    assert "overhead_ps" not in u.plan.op_overrides
    assert mf["ttft_s"] < mu["ttft_s"] and mf["tpot_s"] < mu["tpot_s"]


def test_sram_capacity_is_enforced_with_explicit_spills():
    ov = {"system.tiers.sram.count": 2, "workload.batch": 4, "workload.prompt_tokens": 64,
          "workload.generated_tokens": 1}  # 1 MiB of SRAM
    res = run_point(SN40L, "gpt2", policy="three-tier", overrides=ov)
    system = res.hw.section("system")
    cap = tier_capacity(system, "sram")
    assert cap == 1 << 20
    m = res.metrics()
    assert m["policy_sram_spilled_bytes"] > 0 and 0 < res.occupancy["sram"] <= cap
    t = res.trace.tensors
    act = t[t["kind"] == "activation"]
    spilled = act["tensor"].isin(list(res.plan.tensor_tier)).to_numpy()
    assert all(res.plan.tensor_tier[x] == "hbm" for x in act["tensor"][spilled])
    kept_max = act["bytes"].to_numpy()[~spilled].max()
    assert act["bytes"].to_numpy()[spilled].min() > kept_max  # the largest spill first
    f, l, b = (act[c].to_numpy() for c in ("first_op", "last_op", "bytes"))
    assert live_peak(f[~spilled], l[~spilled], b[~spilled]) == res.occupancy["sram"]
    # the threshold is the largest that fits: keeping the next size up would overflow
    nxt = act["bytes"].to_numpy()[spilled].min()
    keep = b <= nxt
    assert live_peak(f[keep], l[keep], b[keep]) > cap
    assert spill_threshold(f, l, b, cap) == kept_max
    # placing every activation in that SRAM is refused by the system model (never silent)

    class AllInSram:
        name = "all-in-sram"

        def plan(self, trace, system):
            return Plan(default_tier={"weight": "hbm", "kv": "hbm", "activation": "sram"},
                        op_unit=np.full(len(trace.ops), "rdu", dtype=object))

    with pytest.raises(CapacityError, match="tier 'sram' holds"):
        simulate(res.hw, res.trace, res.scenario, AllInSram())


def _reference_lru(trace, slots: int):
    """Expert switches of a per-layer LRU of `slots` experts (0..slots-1 resident at the start)."""
    ops = trace.ops
    sel = ops[ops["expert"] >= 0]
    first = sel.groupby(["step", "layer", "expert"], sort=False)["op"].min().sort_values()
    L = int(trace.meta["model_spec"]["num_hidden_layers"])
    caches = [OrderedDict((e, None) for e in range(slots)) for _ in range(L)]
    out = []
    for (s, l, e), i in first.items():
        c = caches[l]
        if e in c:
            c.move_to_end(e)
            continue
        if len(c) >= slots:
            c.popitem(last=False)
        c[e] = None
        out.append((int(s), int(l), int(e), int(i)))
    return out


def test_expert_switching_follows_the_routing():
    hw = load_hw_config(SN40L)
    m = load_model("mixtral-8x7b")
    sc = Scenario(model=m, batch=1, prompt_tokens=4, generated_tokens=3, weight_dtype="bf16", act_dtype="bf16",
                  kv_dtype="bf16")
    trace = generate(m, sc)
    res = simulate(hw, trace, sc, get_policy("three-tier", {"hbm_experts": 3}))
    ref = _reference_lru(trace, 3)
    tr = res.transfers[res.transfers["name"].str.startswith("expert")]
    assert len(tr) == len(ref) == res.metrics()["policy_expert_switches"] > 0
    t = trace.tensors.set_index("tensor")["bytes"]
    eb = int(sum(t[f"L0.moe.e0.w_{p}"] for p in ("gate", "up", "down")))
    assert (tr["bytes"] == eb).all()
    assert sorted(tr["before_op"].tolist()) == sorted(i for *_, i in ref)
    ops = res.ops
    starts = ops["start_ps"].to_numpy()
    assert (tr["end_ps"].to_numpy() <= starts[tr["before_op"].to_numpy()]).all()
    # HBM holds 3 of 8 experts per layer (plus everything else); DDR the whole model
    tt = trace.tensors
    w = tt.loc[tt["kind"] == "weight", "bytes"].sum()
    kv = tt.loc[tt["kind"] == "kv", "bytes"].sum()
    assert res.occupancy["hbm"] == w + kv - 32 * 5 * eb  # activations are in SRAM
    assert res.occupancy["ddr"] == w
    full = get_policy("three-tier", {"hbm_experts": 8}).plan(trace, hw.section("system"))
    assert not any(x.name.startswith("expert") for x in full.transfers)
    sw = res.transfers[res.transfers["name"] == "model switch-in"].iloc[0]
    assert sw["bytes"] == w - 32 * 5 * eb  # the model minus the experts left in DDR
    with pytest.raises(ConfigError, match="policy.hbm_experts: .*exceeds the model's 8 experts"):
        get_policy("three-tier", {"hbm_experts": 9}).plan(trace, hw.section("system"))


def test_parameter_errors_name_the_parameter():
    sysc = load_hw_config(H100).section("system")
    m = load_model("gpt2")
    trace = generate(m, Scenario(model=m, prompt_tokens=4, generated_tokens=1))
    with pytest.raises(ConfigError, match="policy.fuse: .*has none"):
        get_policy("three-tier", {"fuse": True}).plan(trace, sysc)
    with pytest.raises(ConfigError, match="policy.ddr_tier: .*unknown tier 'ddr'"):
        get_policy("three-tier", {"ddr_tier": "ddr"}).plan(trace, sysc)
    with pytest.raises(ConfigError, match="policy.sram_tier: .*not sram"):
        get_policy("three-tier", {"sram_tier": "host"}).plan(trace, sysc)
    with pytest.raises(ConfigError, match="policy.models: expected a positive integer, got 0"):
        get_policy("three-tier", {"models": 0})
    with pytest.raises(ConfigError, match="policy.fuse: expected"):
        get_policy("three-tier", {"fuse": "maybe"})
    # DDR holds `models` models: too many is a capacity error
    with pytest.raises(CapacityError, match="tier 'host' holds 256.00 GiB"):
        run_point(H100, "gpt2", policy="three-tier", overrides={**SMALL, "policy.models": 2000})


def test_deterministic():
    a = run_point(SN40L, "gpt2", policy="three-tier", overrides=SMALL)
    b = run_point(SN40L, "gpt2", policy="three-tier", overrides=SMALL)
    fa, fb = a.files(), b.files()
    assert all(fa[k] == fb[k] for k in fa)


def test_cli_runs_the_shipped_configs(capsys):
    for hw in (SN40L, H100, A100):
        assert main(["run", hw, "gpt2", "--policy", "three-tier", "--set", "workload.prompt_tokens=8",
                     "--set", "workload.generated_tokens=1", "--no-save", "-q"]) == 0
        assert "model switch" in capsys.readouterr().out


def test_structural_checks_before_any_trace():
    from memsim.system.api import resolve_point

    with pytest.raises(ConfigError, match="policy.fuse: .*has none"):
        resolve_point(H100, "gpt2", policy="three-tier", overrides={"policy.fuse": True})
    with pytest.raises(ConfigError, match="policy.hbm_experts: .*exceeds the model's 8 experts"):
        resolve_point(SN40L, "mixtral-8x7b", policy="three-tier", overrides={"policy.hbm_experts": 9})
    assert resolve_point(SN40L, "gpt2")["policy"]["name"] == "three-tier"  # the config's policy: block
