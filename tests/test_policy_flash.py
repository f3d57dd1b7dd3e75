"""flash-naive and flash-windowing: placements, transfers that gate ops, bytes per token, capacity,
parameter errors, determinism, the shipped configs and the CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.policies import get_policy
from memsim.policies.flash_windowing import chunk_throughput, new_fraction_rule, window_fraction
from memsim.system.api import run_point
from memsim.system.simulator import CapacityError, tensor_tiers, tier_occupancy

REPO = Path(__file__).resolve().parents[1]
M1 = str(REPO / "hw_configs" / "m1max_flash.yaml")
GPU = str(REPO / "hw_configs" / "gpu_flash.yaml")
SMALL = {"workload.prompt_tokens": 8, "workload.generated_tokens": 3}
# GPT-2 has no published sparsity: the windowing runs give one (and a predictor rank)
GPT2_WIN = {**SMALL, "policy.sparsity": 0.9, "policy.predictor_rank": 16, "policy.dram_budget": "1GB"}


@pytest.fixture(scope="module")
def naive():
    return run_point(M1, "gpt2", policy="flash-naive", overrides=SMALL)


@pytest.fixture(scope="module")
def windowed():
    return run_point(M1, "gpt2", policy="flash-windowing", overrides=GPT2_WIN)


def _transfer_end_before_op(res):
    tr = res.transfers
    start = res.ops["start_ps"].to_numpy()
    return tr, start[tr["before_op"].to_numpy()]


# ------------------------------------------------------------------------------------------ flash-naive
def test_naive_places_every_weight_on_flash_and_reads_it_only_over_the_link(naive):
    trace = naive.trace
    place = tensor_tiers(trace, naive.plan)
    t = trace.tensors
    weights = t.loc[t["kind"] == "weight", "tensor"].tolist()
    assert {place[w] for w in weights} == {"ssd"}
    assert {place[x] for x in t.loc[t["kind"] != "weight", "tensor"]} == {"dram"}
    # no op reads the flash tier itself: its bytes come in over the link, into the DRAM staging buffer
    assert "bytes_ssd" not in naive.ops or (naive.ops["bytes_ssd"] == 0).all()
    ops = trace.ops
    dec = (ops["phase"] == "decode").to_numpy()
    assert naive.ops["bytes_dram"].to_numpy()[dec].sum() == pytest.approx(
        ops.loc[dec, ["weight_bytes", "kv_read_bytes", "kv_write_bytes", "act_read_bytes",
                      "act_write_bytes"]].to_numpy().sum())


def test_naive_loads_every_layer_every_token_exactly(naive):
    trace = naive.trace
    ops, tb = trace.ops, trace.tensors.set_index("tensor")["bytes"]
    block = trace.tensors[(trace.tensors["kind"] == "weight") & (trace.tensors["layer"] >= 0)]["bytes"].sum()
    rows = ops.loc[(ops["step"] == 1) & (ops["kind"] == "embedding"), "weight_bytes"].sum()
    # blocks in full, the token/position rows gathered, the tied LM head's table and the final norm in full
    expect = int(block + rows + tb["embed_tokens"] + tb["final_norm"])
    tr = naive.transfers
    step_of = ops["step"].to_numpy()[tr["before_op"].to_numpy()]
    per_step = tr.groupby(step_of)["bytes"].sum()
    assert (per_step.loc[1:] == expect).all()
    assert naive.metrics()["policy_flash_bytes_per_token"] == expect
    # one load per block per step (12 blocks), all over the flash<->DRAM link
    assert (tr.groupby(step_of)["name"].apply(lambda s: s.str.contains(r"\.L\d+ weights").sum()) == 12).all()
    assert set(tr["link"]) == {"nvme"} and set(tr["src"]) == {"ssd"} and set(tr["dst"]) == {"dram"}


def test_naive_transfers_gate_the_layer_and_load_then_compute(naive):
    tr, op_start = _transfer_end_before_op(naive)
    assert (op_start >= tr["end_ps"].to_numpy()).all()
    ends = naive.ops["end_ps"].to_numpy()
    # without prefetch each load starts after the op before the layer has finished: no overlap
    after = np.array([t.after for t in sorted(naive.plan.transfers, key=lambda t: (t.after, t.before))])
    ok = after >= 0
    assert (tr["start_ps"].to_numpy()[ok] >= ends[after[ok]]).all()
    # so a decode step is at least its flash time: bytes / the link's rate
    link = load_hw_config(M1).section("system").links["nvme"]
    step_s = naive.metrics()["tpot_s"]
    assert step_s >= naive.metrics()["policy_flash_bytes_per_token"] / link.bandwidth_bytes_per_s


def test_naive_prefetch_overlaps_and_doubles_the_staging_buffer(naive):
    pf = run_point(M1, "gpt2", policy="flash-naive", overrides={**SMALL, "policy.prefetch": True})
    tr, op_start = _transfer_end_before_op(pf)
    assert (op_start >= tr["end_ps"].to_numpy()).all()
    assert pf.metrics()["tpot_s"] < naive.metrics()["tpot_s"]
    assert pf.plan.capacity_extra["dram"] == 2 * naive.plan.capacity_extra["dram"]
    place = tensor_tiers(naive.trace, naive.plan)
    assert naive.occupancy["dram"] == tier_occupancy(naive.trace, place)["dram"] + naive.plan.capacity_extra["dram"]


def test_naive_resident_groups_stay_in_dram():
    res = run_point(M1, "gpt2", policy="flash-naive",
                    overrides={**SMALL, "policy.resident": "[attention, embeddings]"})
    place = tensor_tiers(res.trace, res.plan)
    t = res.trace.tensors
    w = t[t["kind"] == "weight"]
    ffn = w["tensor"].str.contains(r"\.mlp\.")
    assert {place[x] for x in w.loc[ffn, "tensor"]} == {"ssd"}
    assert {place[x] for x in w.loc[~ffn, "tensor"]} == {"dram"}
    assert res.metrics()["policy_flash_bytes_per_token"] == w.loc[ffn, "bytes"].sum()


def test_naive_dram_budget_and_tier_capacity_are_enforced(tmp_path):
    with pytest.raises(ConfigError, match=r"policy\.dram_budget: flash-naive: the plan needs .* GB of DRAM"):
        run_point(M1, "gpt2", policy="flash-naive", overrides={**SMALL, "policy.dram_budget": "10MB"})
    # a DRAM tier too small for the staging buffer: the system's capacity check rejects the plan
    p = tmp_path / "tiny.yaml"
    p.write_text(Path(M1).read_text().replace("dram: {device: memory, count: 8}",
                                              "dram: {device: memory, count: 1}")
                 .replace("preset: LPDDR5_6400", "preset: LPDDR5_6400\n  organization: {rows: 1024}"))
    with pytest.raises(CapacityError, match="tier 'dram'"):
        run_point(str(p), "opt-6.7b", policy="flash-naive", overrides=SMALL)


# ------------------------------------------------------------------------------------------ flash-windowing
def test_new_neuron_rule_and_window_fraction():
    assert new_fraction_rule(0.03, 5) == pytest.approx(0.03 * 0.97 ** 4)
    assert new_fraction_rule(0.1, 1) == pytest.approx(0.1)  # window 1: every active neuron is loaded
    assert window_fraction(0.0953, 4) == pytest.approx(0.33, abs=1e-3)  # Falcon-7B's 33 % at k=4
    f = [new_fraction_rule(0.05, k) for k in range(1, 9)]
    assert all(a > b for a, b in zip(f, f[1:]))


def test_windowing_placement_and_ffn_bytes(windowed):
    trace, ops = windowed.trace, windowed.trace.ops
    place = tensor_tiers(trace, windowed.plan)
    t = trace.tensors
    w = t[t["kind"] == "weight"]
    ffn = w["tensor"].str.contains(r"\.mlp\.")
    assert {place[x] for x in w.loc[ffn, "tensor"]} == {"ssd"}
    assert {place[x] for x in w.loc[~ffn, "tensor"]} == {"dram"}
    a = 0.1
    up = (ops["name"].str.endswith(".mlp.up") & (ops["phase"] == "decode")).to_numpy()
    down = (ops["name"].str.endswith(".mlp.down") & (ops["phase"] == "decode")).to_numpy()
    o = windowed.ops
    d_model, d_ffn, rank = 768, 3072, 16
    pred = rank * (d_model + d_ffn) * 2
    # the active rows (and the predictor, on the first FFN op) are read from DRAM; FLOPs scale too
    np.testing.assert_allclose(o["bytes_dram"].to_numpy()[down],
                               a * ops["weight_bytes"].to_numpy()[down] + ops["act_read_bytes"].to_numpy()[down]
                               + ops["act_write_bytes"].to_numpy()[down], atol=1)
    np.testing.assert_allclose(o["bytes_dram"].to_numpy()[up],
                               a * ops["weight_bytes"].to_numpy()[up] + pred + ops["act_read_bytes"].to_numpy()[up]
                               + ops["act_write_bytes"].to_numpy()[up], atol=1)
    np.testing.assert_allclose(o["flops"].to_numpy()[down], np.floor(a * ops["flops"].to_numpy()[down]), atol=1)


def test_windowing_flash_bytes_per_token_are_the_new_neurons(windowed):
    m = windowed.metrics()
    new = new_fraction_rule(0.1, 5)
    layer_ffn = 2 * 768 * 3072 * 2 + (3072 + 768) * 2  # up + down weights and biases, fp16
    expect = 12 * round(round(new * 3072) * layer_ffn / 3072)
    assert m["policy_new_fraction"] == pytest.approx(new)
    assert m["policy_flash_bytes_per_token"] == pytest.approx(expect, abs=12)
    tr = windowed.transfers
    step_of = windowed.trace.ops["step"].to_numpy()[tr["before_op"].to_numpy()]
    assert tr.loc[step_of > 0].groupby(step_of[step_of > 0])["bytes"].sum().to_numpy() == pytest.approx(expect, abs=12)
    assert m["policy_chunk_bytes"] == 2 * 768 * 2  # bundled up row + down column


def test_windowing_load_is_timed_by_the_chunked_reads_and_gates_the_first_ffn_op(windowed):
    tr, op_start = _transfer_end_before_op(windowed)
    assert (op_start >= tr["end_ps"].to_numpy()).all()
    names = windowed.ops["name"].to_numpy()[tr["before_op"].to_numpy()]
    assert all(n.endswith(".mlp.up") for n in names)
    # the transfer itself lasts the chunked random reads' time: bytes / their throughput (its service_ps),
    # far longer than the link's sequential rule would give
    flash = load_hw_config(M1).section("system").tiers["ssd"].other
    bw = chunk_throughput(flash, 2 * 768 * 2, 8)
    t_chunk = tr["bytes"].to_numpy() / bw * 1e12
    np.testing.assert_allclose((tr["end_ps"] - tr["start_ps"]).to_numpy(), t_chunk, rtol=0, atol=2)
    plan_tr = windowed.plan.transfers
    assert all(t.service_ps is not None and t.after_transfer == -1 for t in plan_tr)  # one hop on the M1 Max
    link = load_hw_config(M1).section("system").links["nvme"]
    assert (t_chunk > link.latency_ps + tr["bytes"].to_numpy() / link.bandwidth_bytes_per_s * 1e12).all()
    assert bw < flash.limits()["host_link"]  # 3 KiB random reads are far below the sequential ceiling
    # nothing is folded into the FFN op any more: every op keeps the unit's kernel overhead
    assert "overhead_ps" not in windowed.plan.op_overrides
    m = windowed.metrics()
    assert m["policy_flash_chunked_excess_s_per_token"] > 0
    # the flash reads are counted on the flash tier (traffic and read energy), the op's DRAM reads apart
    assert m["bytes_ssd"] == pytest.approx(tr.loc[tr["src"] == "ssd", "bytes"].sum())
    assert (tr.loc[tr["src"] == "ssd", "src_energy_pj"] > 0).all()


def test_the_gpu_config_reads_flash_through_host_memory_in_two_chained_hops():
    """gpu_flash.yaml: SSD -> host DRAM -> GPU memory, the copy to the GPU after the read from flash."""
    for policy, ov in (("flash-naive", SMALL), ("flash-windowing", GPT2_WIN)):
        res = run_point(GPU, "gpt2", policy=policy, overrides=ov)
        plan_tr, tr = res.plan.transfers, res.transfers
        first = [k for k, t in enumerate(plan_tr) if t.src == "ssd"]
        assert first and len(plan_tr) == 2 * len(first)
        for k in first:
            a, b = plan_tr[k], plan_tr[k + 1]
            assert (a.dst, b.src, b.dst) == ("host", "host", "vram") and b.after_transfer == k
            assert a.bytes == b.bytes and a.before == b.before
            assert b.service_ps is None and (a.service_ps is not None) == (policy == "flash-windowing")
        by_name = tr.set_index("name")
        for k in first:
            a, b = plan_tr[k], plan_tr[k + 1]
            assert by_name.at[b.name, "start_ps"] >= by_name.at[a.name, "end_ps"]
            assert by_name.at[a.name, "link"] == "nvme" and by_name.at[b.name, "link"] == "pcie"
        _, op_start = _transfer_end_before_op(res)
        assert (op_start >= tr["end_ps"].to_numpy()).all()
        # the host holds a bounce buffer as large as the biggest load
        assert res.plan.capacity_extra["host"] == max(plan_tr[k].bytes for k in first)
        m = res.metrics()
        assert m["bytes_link_nvme"] == m["bytes_link_pcie"] == m["bytes_ssd"]


def test_check_rejects_a_mismatched_system_before_any_trace_is_made(tmp_path, monkeypatch):
    from memsim.system import api
    from memsim.workload import trace as trace_mod

    def no_trace(*a, **k):
        raise AssertionError("a trace was generated")

    monkeypatch.setattr(trace_mod, "generate", no_trace)
    noflash = tmp_path / "noflash.yaml"
    noflash.write_text("memory: {preset: LPDDR5_6400}\nsystem:\n  units:\n    cpu: {preset: Apple-M1-Max-CPU, memory: dram}\n"
                       "  tiers:\n    dram: {device: memory, count: 8}\n")
    for policy in ("flash-naive", "flash-windowing"):
        with pytest.raises(ConfigError, match=rf"policy\.flash: {policy}: the system has no 'flash' tier"):
            api.resolve_point(str(noflash), "gpt2", policy=policy, overrides=GPT2_WIN if "win" in policy else SMALL)
    # a flash tier with no route to the unit's memory (neither direct nor through one host tier)
    unlinked = tmp_path / "unlinked.yaml"
    unlinked.write_text(Path(M1).read_text().replace("    nvme: {between: [ssd, dram], preset: PCIe4-x4}\n", "")
                        .replace("  links:\n", ""))
    with pytest.raises(ConfigError, match="no link joins tiers 'ssd' and 'dram', directly or through one host"):
        api.run_point(str(unlinked), "gpt2", policy="flash-naive", overrides=SMALL)
    # a named flash tier that is not flash; a named host tier that does not exist
    with pytest.raises(ConfigError, match=r"policy\.flash: flash-naive: tier 'dram' is not a flash tier"):
        api.resolve_point(M1, "gpt2", policy="flash-naive", overrides={**SMALL, "policy.flash": "dram"})
    with pytest.raises(ConfigError, match=r"policy\.host: flash-windowing: unknown tier 'cpu_ram'"):
        api.resolve_point(GPU, "gpt2", policy="flash-windowing", overrides={**GPT2_WIN, "policy.host": "cpu_ram"})
    # the model's sparsity is checked up front too
    with pytest.raises(ConfigError, match=r"policy\.sparsity: flash-windowing: no default FFN sparsity"):
        api.resolve_point(M1, "gpt2", policy="flash-windowing", overrides=SMALL)
    # and a matching point resolves
    assert api.resolve_point(GPU, "opt-6.7b", policy="flash-windowing")["policy"]["name"] == "flash-windowing"


def test_bundling_window_and_sparsity_move_the_result_the_right_way(windowed):
    base = windowed.metrics()
    unb = run_point(M1, "gpt2", policy="flash-windowing", overrides={**GPT2_WIN, "policy.bundling": False}).metrics()
    assert unb["policy_chunk_bytes"] == 768 * 2
    assert unb["policy_flash_bytes_per_token"] == base["policy_flash_bytes_per_token"]
    assert unb["policy_chunk_throughput_GBps"] < base["policy_chunk_throughput_GBps"]
    assert unb["tpot_s"] > base["tpot_s"]
    wide = run_point(M1, "gpt2", policy="flash-windowing", overrides={**GPT2_WIN, "policy.window": 10}).metrics()
    assert wide["policy_flash_bytes_per_token"] < base["policy_flash_bytes_per_token"]
    assert wide["policy_neuron_cache_bytes"] > base["policy_neuron_cache_bytes"]
    given = run_point(M1, "gpt2", policy="flash-windowing", overrides={**GPT2_WIN, "policy.new_fraction": 0.02}).metrics()
    assert given["policy_new_fraction"] == 0.02


def test_windowing_budget_errors_name_the_parameter():
    with pytest.raises(ConfigError, match=r"policy\.dram_budget: flash-windowing: the plan needs .* neuron cache"):
        run_point(M1, "gpt2", policy="flash-windowing", overrides={**GPT2_WIN, "policy.dram_budget": "100MB"})
    with pytest.raises(ConfigError, match=r"policy\.sparsity: flash-windowing: no default FFN sparsity for "
                                          r"model 'gpt2'"):
        run_point(M1, "gpt2", policy="flash-windowing", overrides=SMALL)


@pytest.mark.parametrize("param, value, message", [
    ("window", 0, "policy.window: expected a positive integer, got 0"),
    ("sparsity", 1.5, "policy.sparsity: expected a number between 0 and 1, got 1.5"),
    ("sparsity", 1.0, "policy.sparsity: expected a sparsity below 1"),
    ("bundling", "yes", "policy.bundling: expected true or false"),
    ("dram_budget", "6 apples", "policy.dram_budget:"),
    ("queue_depth", -1, "policy.queue_depth: expected a positive integer"),
    ("windwo", 5, "policy.windwo: unknown parameter of flash-windowing: 'windwo' (did you mean 'window'?)"),
])
def test_windowing_parameter_errors_name_the_path(param, value, message):
    with pytest.raises(ConfigError) as ei:
        get_policy("flash-windowing", {param: value})
    assert message in str(ei.value), str(ei.value)


@pytest.mark.parametrize("param, value, message", [
    ("resident", "[attention, embedings]", "policy.resident[1]: expected one of embeddings, attention, got 'embedings'"),
    ("resident", 3, "policy.resident: expected a list of weight groups"),
    ("prefetch", 1, "policy.prefetch: expected true or false"),
])
def test_naive_parameter_errors_name_the_path(param, value, message):
    from memsim.system.api import parse_override_value as _parse_text

    with pytest.raises(ConfigError) as ei:
        get_policy("flash-naive", {param: _parse_text(value) if isinstance(value, str) else value})
    assert message in str(ei.value), str(ei.value)


def test_unknown_tiers_and_missing_flash_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"policy\.flash: flash-naive: unknown tier 'nand'"):
        run_point(M1, "gpt2", policy="flash-naive", overrides={**SMALL, "policy.flash": "nand"})
    p = tmp_path / "noflash.yaml"
    p.write_text("memory: {preset: LPDDR5_6400}\nsystem:\n  units:\n    cpu: {preset: Apple-M1-Max-CPU, memory: dram}\n"
                 "  tiers:\n    dram: {device: memory, count: 8}\n")
    with pytest.raises(ConfigError, match=r"policy\.flash: flash-windowing: the system has no 'flash' tier"):
        run_point(str(p), "gpt2", policy="flash-windowing", overrides=GPT2_WIN)


def test_runs_are_deterministic(windowed):
    again = run_point(M1, "gpt2", policy="flash-windowing", overrides=GPT2_WIN)
    a, b = windowed.files(), again.files()
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_shipped_configs_select_the_policy_and_run_from_the_cli(capsys):
    for hw in (M1, GPU):
        choice = load_hw_config(hw).sections["policy"]
        assert choice.name == "flash-windowing" and choice.params == {"window": 5}
    rc = main(["run", M1, "gpt2", "--set", "workload.prompt_tokens=8", "--set", "workload.generated_tokens=2",
               "--set", "policy.sparsity=0.9", "--set", "policy.predictor_rank=16", "--set", "policy.window=5",
               "--set", "policy.dram_budget=1GB",
               "--no-save", "-q"])
    out = capsys.readouterr().out
    assert rc == 0 and "flash-windowing" in out and "TPOT" in out and "neurons loaded per token" in out
    rc = main(["run", GPU, "gpt2", "--policy", "flash-naive", "--set", "workload.generated_tokens=2",
               "--set", "workload.prompt_tokens=8", "--no-save", "-q"])
    out = capsys.readouterr().out
    assert rc == 0 and "flash-naive" in out and "staging buffer" in out and "ssd -> host -> vram" in out


def test_windowing_beats_naive_on_the_shipped_opt_workload():
    """The headline direction on the real model (the band itself is the validation case's business)."""
    wl = str(REPO / "workloads" / "opt_6.7b_flash.yaml")
    ov = {"workload.generated_tokens": 2}
    naive = run_point(M1, wl, policy="flash-naive", overrides=ov).metrics()
    win = run_point(M1, wl, policy="flash-windowing", overrides=ov).metrics()
    assert naive["policy_flash_bytes_per_token"] == pytest.approx(13.30e9, rel=0.01)  # the whole FP16 model
    assert win["policy_flash_fraction_of_ffn_per_token"] == pytest.approx(new_fraction_rule(0.03, 5), rel=1e-3)
    assert naive["tpot_s"] / win["tpot_s"] > 4
