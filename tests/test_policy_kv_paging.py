"""kv-paging: batch-that-fits arithmetic, LRU swap bytes, eviction shrinking KV reads, TPOT vs contiguous,
parameter errors, determinism, CLI."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.policies import get_policy
from memsim.policies.kv_paging import compare_layouts
from memsim.system.api import run_point
from memsim.system.simulator import CapacityError, simulate, tensor_tiers, tier_capacity, tier_occupancy
from memsim.workload.model import load_model
from memsim.workload.scenario import Scenario
from memsim.workload.trace import generate

REPO = Path(__file__).resolve().parents[1]
H100 = str(REPO / "hw_configs" / "h100_host_ddr.yaml")
A100_NO_HOST = str(REPO / "hw_configs" / "a100_80gb.yaml")
P, G, B = 100, 4, 8
L, TOK = 12, 2 * 768 * 2  # GPT-2: 12 layers, K+V of 768 FP16 values per token and layer


@pytest.fixture(scope="module")
def setup():
    hw = load_hw_config(H100)
    system = hw.section("system")
    m = load_model("gpt2")
    sc = Scenario(model=m, batch=B, prompt_tokens=P, generated_tokens=G)
    trace = generate(m, sc)
    # everything but the KV cache, as hbm-baseline places it (weights + peak activations)
    base = get_policy("hbm-baseline").plan(trace, system)
    occ = tier_occupancy(trace, tensor_tiers(trace, base))["hbm"]
    kv = int(trace.tensors.loc[trace.tensors["kind"] == "kv", "bytes"].sum())
    return hw, system, sc, trace, occ - kv, tier_capacity(system, "hbm")


def _util(cap: int, other: int, pool: int) -> float:
    return (other + pool + 1) / cap  # a utilisation giving (at least) a pool of `pool` bytes


def test_batch_that_fits_paged_and_contiguous_exactly(setup):
    hw, system, sc, trace, other, cap = setup
    plan = get_policy("kv-paging", {"block_size": 16, "max_context": 1024}).plan(trace, system)
    pool = int(0.9 * cap) - other
    per_paged = L * math.ceil((P + G) / 16) * 16 * TOK
    per_contig = L * 1024 * TOK
    m = plan.metrics
    assert m["kv_pool_bytes"] == pool
    assert m["batch_fit_paged"] == pool // per_paged
    assert m["batch_fit_contiguous"] == pool // per_contig
    assert m["kv_fragmentation_bytes_paged"] == B * L * (112 - 104) * TOK
    assert m["kv_fragmentation_bytes_contiguous"] == B * L * (1024 - 104) * TOK
    assert m["kv_usage_paged"] == pytest.approx(104 / 112) and m["kv_usage_contiguous"] == pytest.approx(104 / 1024)
    assert m["swap_in_bytes"] == 0 and not plan.transfers
    # the HBM holds the block pool, not the trace's exact KV: weights + activations + B x L x 112 tokens
    res = simulate(hw, trace, sc, get_policy("kv-paging", {"block_size": 16, "max_context": 1024}))
    assert res.occupancy["hbm"] == other + B * L * 112 * TOK
    # a larger block wastes more (one partly filled block per sequence and layer)
    m64 = get_policy("kv-paging", {"block_size": 64}).plan(trace, system).metrics
    assert m64["kv_fragmentation_bytes_paged"] == B * L * (128 - 104) * TOK
    assert m64["batch_fit_paged"] == pool // (L * 128 * TOK)


def test_lru_swaps_the_whole_cache_every_step_when_it_does_not_fit(setup):
    """Decode touches every (sequence, layer) entry once per step in the same order: LRU over a cyclic working
    set larger than the pool misses on every access, so each step swaps in the whole (block-rounded) cache."""
    hw, system, sc, trace, other, cap = setup
    needed = B * L * 112 * TOK
    util = _util(cap, other, needed // 2)
    pol = get_policy("kv-paging", {"memory_utilization": util})
    plan = pol.plan(trace, system)
    expect_in = sum(B * L * math.ceil((P + s - 1) / 16) * 16 * TOK for s in range(1, G + 1))
    assert plan.metrics["swap_in_bytes"] == expect_in
    assert plan.metrics["kv_hit_rate"] == 0.0
    ins = [t for t in plan.transfers if t.name.startswith("swap-in")]
    assert sum(t.bytes for t in ins) == expect_in and all(t.src == "host" and t.dst == "hbm" for t in ins)
    outs = [t for t in plan.transfers if t.name.startswith("swap-out")]
    assert plan.metrics["swap_out_bytes"] == sum(t.bytes for t in outs) > 0
    res = simulate(hw, trace, sc, pol)
    m = res.metrics()
    assert m["bytes_link_pcie"] == plan.metrics["swap_in_bytes"] + plan.metrics["swap_out_bytes"]
    assert res.occupancy["hbm"] <= int(util * cap) and res.occupancy["host"] == plan.metrics["swap_host_peak_bytes"]
    # every swap-in lands before the attention that reads it
    tr = res.transfers
    starts = res.ops["start_ps"].to_numpy()
    assert (tr["end_ps"].to_numpy() <= starts[tr["before_op"].to_numpy()]).all()
    # and swapping costs time: the same run with room for everything is faster
    fits = simulate(hw, trace, sc, get_policy("kv-paging"))
    assert m["tpot_s"] > fits.metrics()["tpot_s"]


def test_a_pool_that_holds_everything_never_swaps(setup):
    hw, system, sc, trace, other, cap = setup
    util = _util(cap, other, B * L * 112 * TOK)
    plan = get_policy("kv-paging", {"memory_utilization": util}).plan(trace, system)
    assert plan.metrics["swap_in_bytes"] == 0 and plan.transfers == []


def test_sink_window_and_h2o_shrink_the_kv_read(setup):
    hw, system, sc, trace, other, cap = setup
    ops = trace.ops
    step = ops["step"].to_numpy()
    kinds = ops["kind"].to_numpy()
    att = np.isin(kinds, ["attn_score", "attn_av"])
    kvr = ops["kv_read_bytes"].to_numpy()
    keys = P + step
    plan = get_policy("kv-paging", {"eviction": "sink-window", "sink_tokens": 4, "window": 28}).plan(trace, system)
    got = plan.op_overrides["kv_read_bytes"]
    dec = att & (step > 0)
    np.testing.assert_array_equal(got[dec], np.ceil(kvr[dec] * 32 / keys[dec]))
    np.testing.assert_array_equal(got[att & (step == 0)], kvr[att & (step == 0)])  # prefill attends in full
    assert plan.metrics["kv_read_fraction"] == pytest.approx(kvr[dec].dot(32 / keys[dec]) / kvr[dec].sum())
    res = simulate(hw, trace, sc, get_policy("kv-paging", {"eviction": "sink-window", "sink_tokens": 4, "window": 28}))
    assert res.occupancy["hbm"] == other + B * L * 32 * TOK  # 32 kept tokens = 2 blocks per sequence and layer
    base = simulate(hw, trace, sc, get_policy("kv-paging"))
    assert res.metrics()["bytes_per_decode_step_hbm"] < base.metrics()["bytes_per_decode_step_hbm"]
    assert res.metrics()["tpot_s"] < base.metrics()["tpot_s"]
    # H2O keeps `budget` tokens and pays an fp32 accumulated score per kept token and head in the softmax
    h2o = get_policy("kv-paging", {"eviction": "h2o", "budget": 48}).plan(trace, system)
    np.testing.assert_array_equal(h2o.op_overrides["kv_read_bytes"][dec], np.ceil(kvr[dec] * 48 / keys[dec]))
    sm = (kinds == "softmax") & (step > 0)
    ar = ops["act_read_bytes"].to_numpy()
    np.testing.assert_array_equal(h2o.op_overrides["act_read_bytes"][sm],
                                  np.ceil(ar[sm] * 48 / keys[sm] + B * 12 * 48 * 4))
    assert h2o.metrics["batch_fit_paged"] == (int(0.9 * cap) - other) // (L * 48 * TOK + L * 12 * 48 * 4)


def test_tpot_paged_versus_contiguous_reservation(setup):
    hw, system, sc, trace, other, cap = setup
    # room for the paged cache (112 tokens per sequence) but not for 1,024-token reservations
    util = _util(cap, other, B * L * 112 * TOK)
    ov = {"workload.batch": B, "workload.prompt_tokens": P, "workload.generated_tokens": G,
          "policy.memory_utilization": util, "policy.max_context": 1024}
    cmp = compare_layouts(H100, "gpt2", overrides=ov)
    assert cmp["swap_in_bytes_paged"] == 0 and cmp["swap_in_bytes_contiguous"] > 0
    assert cmp["batch_fit_paged"] == B and cmp["batch_fit_contiguous"] == 0
    assert cmp["tpot_s_contiguous"] > cmp["tpot_s_paged"] and cmp["tpot_ratio_contiguous_over_paged"] > 1


@pytest.mark.parametrize("params, where", [
    ({"eviction": "fifo"}, "policy.eviction: expected one of lru, sink-window, h2o, got 'fifo'"),
    ({"block_size": 0}, "policy.block_size: expected a positive integer, got 0"),
    ({"memory_utilization": 1.5}, "policy.memory_utilization: expected a number between 0 and 1"),
    ({"layout": "pages"}, "policy.layout: expected one of paged, contiguous, got 'pages' (did you mean 'paged'?)"),
    ({"budgets": 3}, "policy.budgets: unknown parameter of kv-paging: 'budgets' (did you mean 'budget'?)"),
])
def test_parameter_errors_name_the_parameter(params, where):
    with pytest.raises(ConfigError) as ei:
        get_policy("kv-paging", params)
    assert where in str(ei.value), str(ei.value)


def test_plan_time_errors_name_the_parameter(setup):
    hw, system, sc, trace, other, cap = setup
    with pytest.raises(ConfigError, match="policy.max_context: .*reaches 104 tokens"):
        get_policy("kv-paging", {"layout": "contiguous", "max_context": 64}).plan(trace, system)
    with pytest.raises(ConfigError, match="policy.swap_tier: .*unknown tier 'cxl'"):
        get_policy("kv-paging", {"swap_tier": "cxl", "memory_utilization": _util(cap, other, 1 << 20)}).plan(trace, system)
    with pytest.raises(ConfigError, match="policy.kv_tier"):
        get_policy("kv-paging", {"kv_tier": "nowhere"}).plan(trace, system)
    # no tier to swap to: an explicit capacity error, never a silent overflow
    a100 = load_hw_config(A100_NO_HOST).section("system")
    with pytest.raises(CapacityError, match="no tier is linked to 'hbm' to swap to"):
        get_policy("kv-paging", {"memory_utilization": _util(tier_capacity(a100, "hbm"), other, 1 << 20)}).plan(trace, a100)


def test_deterministic_with_swapping(setup):
    hw, system, sc, trace, other, cap = setup
    ov = {"workload.batch": B, "workload.prompt_tokens": P, "workload.generated_tokens": G,
          "policy.memory_utilization": _util(cap, other, B * L * 56 * TOK)}
    a = run_point(H100, "gpt2", policy="kv-paging", overrides=ov)
    b = run_point(H100, "gpt2", policy="kv-paging", overrides=ov)
    assert a.metrics()["policy_swap_in_bytes"] > 0
    fa, fb = a.files(), b.files()
    assert fa.keys() == fb.keys() and all(fa[k] == fb[k] for k in fa)


def test_cli_runs_the_shipped_config_with_each_eviction(capsys):
    for ev in ("lru", "sink-window", "h2o"):
        rc = main(["run", H100, "gpt2", "--policy", "kv-paging", "--set", f"policy.eviction={ev}",
                   "--set", "workload.prompt_tokens=16", "--set", "workload.generated_tokens=2", "--no-save", "-q"])
        assert rc == 0
        assert f"eviction {ev}" in capsys.readouterr().out


def test_structural_checks_before_any_trace():
    from memsim.system.api import resolve_point

    with pytest.raises(ConfigError, match="policy.max_context: .*reaches 640 tokens"):
        resolve_point(H100, "gpt2", policy="kv-paging", overrides={"policy.layout": "contiguous",
                                                                   "policy.max_context": 64})
    with pytest.raises(ConfigError, match="policy.swap_tier: .*unknown tier 'host'; tiers: hbm"):
        resolve_point(A100_NO_HOST, "gpt2", policy="kv-paging", overrides={"policy.swap_tier": "host"})
    assert resolve_point(H100, "gpt2", policy="kv-paging")["policy"]["name"] == "kv-paging"


CXL_FLASH_HW = """
memory: {preset: HBM3_5200}
flash: {preset: Samsung_990PRO_2TB}
system:
  units:
    gpu: {preset: H100-SXM, memory: hbm}
  tiers:
    hbm: {device: memory, count: 5}
    cxl: {device: dram, preset: DDR5_4800, count: 4}
    ssd: {device: flash}
  links:
    cxl: {between: [hbm, cxl], preset: CXL2-x16}
    nvme: {between: [hbm, ssd], preset: PCIe4-x4}
"""


def test_swap_to_cxl_memory_or_flash(tmp_path, setup):
    hw, system, sc, trace, other, cap = setup
    p = tmp_path / "hw.yaml"
    p.write_text(CXL_FLASH_HW)
    ov = {"workload.batch": B, "workload.prompt_tokens": P, "workload.generated_tokens": G,
          "policy.memory_utilization": _util(cap, other, B * L * 56 * TOK)}
    runs = {t: run_point(str(p), "gpt2", policy="kv-paging", overrides={**ov, "policy.swap_tier": t})
            for t in ("cxl", "ssd")}
    auto = run_point(str(p), "gpt2", policy="kv-paging", overrides=ov)
    assert set(auto.transfers["link"]) == {"cxl"}  # the first tier linked to HBM
    m = {t: r.metrics() for t, r in runs.items()}
    assert m["cxl"]["policy_swap_in_bytes"] == m["ssd"]["policy_swap_in_bytes"] > 0
    assert m["ssd"]["bytes_link_nvme"] == m["cxl"]["bytes_link_cxl"]
    assert runs["ssd"].occupancy["ssd"] == m["ssd"]["policy_swap_host_peak_bytes"] > 0
    assert m["ssd"]["tpot_s"] > m["cxl"]["tpot_s"]  # 7.88 GB/s NVMe vs 63 GB/s CXL
