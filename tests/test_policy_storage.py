"""attention-in-storage (InstInfer-like) and kv-offload-pcie (FlexGen-like): placements, units, transfers
that gate ops, KV bytes per step, closed forms, capacity, parameter errors, determinism, CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.policies import get_policy
from memsim.policies.attention_in_storage import ATTN_KINDS
from memsim.system.api import run_point
from memsim.system.simulator import CapacityError, tensor_tiers
from memsim.system.tiers import tier_model

REPO = Path(__file__).resolve().parents[1]
CSD = str(REPO / "hw_configs" / "csd_13b.yaml")
LONG = str(REPO / "workloads" / "llama2_13b_longctx.yaml")
SMALL = {"workload.batch": 4, "workload.prompt_tokens": 256, "workload.generated_tokens": 3}


@pytest.fixture(scope="module")
def offload():
    return run_point(CSD, "gpt2", policy="kv-offload-pcie", overrides=SMALL)


@pytest.fixture(scope="module")
def instorage():
    return run_point(CSD, "gpt2", policy="attention-in-storage", overrides=SMALL)


def _kv_on_ssd(res):
    place = tensor_tiers(res.trace, res.plan)
    t = res.trace.tensors
    assert {place[x] for x in t.loc[t["kind"] == "kv", "tensor"]} == {"ssd"}
    assert {place[x] for x in t.loc[t["kind"] == "weight", "tensor"]} == {"vram"}


def _gated(res):
    tr = res.transfers
    start = res.ops["start_ps"].to_numpy()[tr["before_op"].to_numpy()]
    assert len(tr) and (start >= tr["end_ps"].to_numpy()).all()


# ------------------------------------------------------------------------------------------ kv-offload-pcie
def test_offload_keeps_kv_on_the_ssd_and_moves_it_over_pcie_every_step(offload):
    _kv_on_ssd(offload)
    ops, o = offload.trace.ops, offload.ops
    assert set(o["unit"]) == {"gpu"}
    assert "bytes_ssd" not in o or (o["bytes_ssd"] == 0).all()  # the GPU never reads the flash directly
    tr = offload.transfers
    reads = tr[tr["name"].str.endswith("KV read")]
    step_of = ops["step"].to_numpy()[reads["before_op"].to_numpy()]
    dec = ops[ops["phase"] == "decode"]
    # per step: the KV read by attention minus the current token's K and V (already on the GPU)
    expect = dec.groupby("step")["kv_read_bytes"].sum() - dec.groupby("step")["kv_write_bytes"].sum()
    got = reads.groupby(step_of)["bytes"].sum()
    np.testing.assert_array_equal(got.to_numpy(), expect.to_numpy())
    assert set(reads["link"]) == {"pcie"} and set(reads["src"]) == {"ssd"}
    writes = tr[tr["name"].str.endswith("KV write")]
    assert writes["bytes"].sum() == dec["kv_write_bytes"].sum()  # every new K, V written back
    _gated(offload)
    assert offload.metrics()["policy_kv_bytes_over_pcie_per_step"] == pytest.approx(expect.mean())


def test_offload_step_time_is_at_least_the_pcie_time_and_prefetch_helps(offload):
    link = load_hw_config(CSD).section("system").links["pcie"]
    m = offload.metrics()
    assert m["tpot_s"] >= m["policy_kv_bytes_over_pcie_per_step"] / link.bandwidth_bytes_per_s
    slow = run_point(CSD, "gpt2", policy="kv-offload-pcie", overrides={**SMALL, "policy.prefetch": False}).metrics()
    assert slow["tpot_s"] > m["tpot_s"]


def test_prefill_kv_is_written_out_before_the_prefill_ends(offload):
    ops = offload.trace.ops
    tr = offload.transfers
    out = tr[tr["name"].str.startswith("prefill.")]
    pre = ops[ops["phase"] == "prefill"]
    assert len(out) == 12 and out["bytes"].sum() == pre["kv_write_bytes"].sum()
    assert (out["before_op"] == pre.index[-1]).all()
    assert offload.metrics()["ttft_s"] * 1e12 >= out["end_ps"].max()


# ------------------------------------------------------------------------------------------ attention-in-storage
def test_decode_attention_runs_in_storage_and_reads_kv_from_flash(instorage):
    _kv_on_ssd(instorage)
    ops, o = instorage.trace.ops, instorage.ops
    attn = (ops["phase"] == "decode").to_numpy() & ops["kind"].isin(ATTN_KINDS).to_numpy()
    assert (o["unit"].to_numpy()[attn] == "csd").all() and (o["unit"].to_numpy()[~attn] == "gpu").all()
    kv = ops["kv_read_bytes"].to_numpy() + ops["kv_write_bytes"].to_numpy()
    np.testing.assert_array_equal(o["bytes_ssd"].to_numpy()[attn], kv[attn])
    assert (o["bytes_ssd"].to_numpy()[~attn] == 0).all()
    # the engine's activations are in the CSD's DRAM (kv_append writes the arriving K, V straight to flash)
    assert (o["bytes_vram"].to_numpy()[attn] == 0).all()
    scores = attn & (ops["kind"] != "kv_append").to_numpy()
    assert (o["bytes_csd_dram"].to_numpy()[scores] > 0).all()
    assert (o["bytes_csd_dram"].to_numpy()[attn & ~scores] == 0).all()


def test_in_storage_kv_reads_run_at_the_flash_array_ceiling(instorage):
    """Closed form (analytical): an engine op's memory time is its KV bytes / (flash ceiling x engine efficiency)."""
    sysc = load_hw_config(CSD).section("system")
    flash = tier_model(sysc.tiers["ssd"])
    pcie = sysc.links["pcie"].bandwidth_bytes_per_s
    assert flash.peak_bandwidth > pcie  # the internal bandwidth beats the external link: the point of a CSD
    ops, o = instorage.trace.ops, instorage.ops
    score = ((ops["phase"] == "decode") & (ops["kind"] == "attn_score")).to_numpy()
    eff = sysc.units["csd"].memory_efficiency
    t_flash = ops["kv_read_bytes"].to_numpy()[score] / (flash.peak_bandwidth * eff) * 1e12
    np.testing.assert_allclose(o["memory_ps"].to_numpy()[score], t_flash, rtol=1e-9)


def test_activations_cross_the_p2p_link_exactly_and_gate_their_consumers(instorage):
    ops = instorage.trace.ops
    on_eng = instorage.ops["unit"].to_numpy() == "csd"
    actw = ops["act_write_bytes"].to_numpy()
    expect = 0
    produced = set()
    for i, deps in enumerate(ops["deps"].tolist()):
        for d in deps:
            if on_eng[d] != on_eng[i] and d not in produced and actw[d] > 0:
                produced.add(int(d))
                expect += int(actw[d])
    tr = instorage.transfers
    p2p = tr[tr["link"] == "p2p"]
    assert p2p["bytes"].sum() == expect and len(p2p) == len(produced)
    _gated(instorage)
    # the output projection waits for the attention output to come back from the engine
    oproj = (ops["name"].str.endswith("attn.o_proj") & (ops["phase"] == "decode")).to_numpy()
    back = p2p[p2p["dst"] == "vram"]
    assert set(back["before_op"]) == set(np.flatnonzero(oproj))


def test_sparse_kv_reads_scale_the_flash_traffic(instorage):
    half = run_point(CSD, "gpt2", policy="attention-in-storage", overrides={**SMALL, "policy.kv_fraction": 0.5})
    ops = instorage.trace.ops
    reads = ((ops["phase"] == "decode") & ops["kind"].isin(["attn_score", "attn_av"])).to_numpy()
    np.testing.assert_allclose(half.ops["bytes_ssd"].to_numpy()[reads],
                               0.5 * instorage.ops["bytes_ssd"].to_numpy()[reads], atol=1)


def test_in_storage_beats_pcie_offload_when_kv_bound_and_the_gain_grows_with_internal_bandwidth():
    ov = {"workload.generated_tokens": 2}
    base = run_point(CSD, LONG, policy="kv-offload-pcie", overrides=ov).metrics()["tokens_per_s"]
    ins = run_point(CSD, LONG, policy="attention-in-storage", overrides=ov).metrics()["tokens_per_s"]
    wide = run_point(CSD, LONG, policy="attention-in-storage",
                     overrides={**ov, "flash.organization.channels": 16}).metrics()["tokens_per_s"]
    assert base < ins < wide
    # the KV cache (27 GB) plus the weights (26 GB) overflow the 48 GB GPU: GPU-only placement is refused
    with pytest.raises(CapacityError, match="tier 'vram' holds 48.00 GiB"):
        run_point(CSD, LONG, policy="hbm-baseline", overrides=ov)


# ------------------------------------------------------------------------------------------ errors, determinism, CLI
@pytest.mark.parametrize("name, param, value, message", [
    ("attention-in-storage", "kv_fraction", 0, "policy.kv_fraction: expected a fraction in (0, 1]"),
    ("attention-in-storage", "kv_fraction", 2, "policy.kv_fraction: expected a number between 0 and 1"),
    ("attention-in-storage", "engin", "csd", "policy.engin: unknown parameter of attention-in-storage: 'engin' "
                                            "(did you mean 'engine'?)"),
    ("kv-offload-pcie", "prefetch", "yes", "policy.prefetch: expected true or false"),
])
def test_parameter_errors_name_the_path(name, param, value, message):
    with pytest.raises(ConfigError) as ei:
        get_policy(name, {param: value})
    assert message in str(ei.value), str(ei.value)


def test_system_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match=r"policy\.engine: attention-in-storage: unknown unit 'fpga'"):
        run_point(CSD, "gpt2", policy="attention-in-storage", overrides={**SMALL, "policy.engine": "fpga"})
    text = Path(CSD).read_text()
    p = tmp_path / "noengine.yaml"
    p.write_text(text.replace("    csd: {preset: InstInfer-CSD-engine, memory: csd_dram}\n", "")
                 .replace("policy: {name: attention-in-storage}", ""))
    with pytest.raises(ConfigError, match=r"policy\.engine: attention-in-storage: the system has no in-storage engine"):
        run_point(str(p), "gpt2", policy="attention-in-storage", overrides=SMALL)
    p.write_text(text.replace("    p2p: {between: [vram, csd_dram], preset: PCIe4-x4}\n", ""))
    with pytest.raises(ConfigError, match="no link joins tiers 'vram' and 'csd_dram'"):
        run_point(str(p), "gpt2", policy="attention-in-storage", overrides=SMALL)


def test_runs_are_deterministic(instorage):
    again = run_point(CSD, "gpt2", policy="attention-in-storage", overrides=SMALL)
    a, b = instorage.files(), again.files()
    assert a.keys() == b.keys() and all(a[k] == b[k] for k in a)


def test_shipped_config_selects_attention_in_storage_and_runs_from_the_cli(capsys):
    assert load_hw_config(CSD).sections["policy"].name == "attention-in-storage"
    args = ["--set", "workload.batch=2", "--set", "workload.prompt_tokens=64", "--set", "workload.generated_tokens=2",
            "--no-save", "-q"]
    assert main(["run", CSD, "gpt2", *args]) == 0
    out = capsys.readouterr().out
    assert "attention-in-storage" in out and "decode attention on 'csd'" in out and "TPOT" in out
    assert main(["run", CSD, "gpt2", "--policy", "kv-offload-pcie", *args]) == 0
    assert "KV cache on 'ssd'" in capsys.readouterr().out


def test_check_rejects_a_mismatched_system_before_any_trace_is_made(tmp_path, monkeypatch):
    from memsim.system import api
    from memsim.workload import trace as trace_mod

    def no_trace(*a, **k):
        raise AssertionError("a trace was generated")

    monkeypatch.setattr(trace_mod, "generate", no_trace)
    text = Path(CSD).read_text()
    # no flash tier at all: both policies say so up front
    p = tmp_path / "noflash.yaml"
    p.write_text(text.replace("    ssd: {device: flash}\n", "").replace(
        "    pcie: {between: [ssd, vram], preset: PCIe4-x4}\n", ""))
    for policy in ("kv-offload-pcie", "attention-in-storage"):
        with pytest.raises(ConfigError, match=rf"policy\.flash: {policy}: the system has no 'flash' tier"):
            api.resolve_point(str(p), "gpt2", policy=policy, overrides=SMALL)
    # a named flash tier that is another kind of memory
    with pytest.raises(ConfigError, match=r"policy\.flash: kv-offload-pcie: tier 'csd_dram' is not a flash tier"):
        api.resolve_point(CSD, "gpt2", policy="kv-offload-pcie", overrides={**SMALL, "policy.flash": "csd_dram"})
    # the in-storage engine, its own memory and the GPU-engine link are checked by attention-in-storage only
    p.write_text(text.replace("    p2p: {between: [vram, csd_dram], preset: PCIe4-x4}\n", ""))
    with pytest.raises(ConfigError, match="no link joins tiers 'vram' and 'csd_dram'"):
        api.resolve_point(str(p), "gpt2", policy="attention-in-storage", overrides=SMALL)
    assert api.resolve_point(str(p), "gpt2", policy="kv-offload-pcie", overrides=SMALL)["policy"]["name"] == \
        "kv-offload-pcie"
    p.write_text(text.replace("memory: csd_dram}", "memory: vram}"))
    with pytest.raises(ConfigError, match=r"system\.units\.csd\.memory: attention-in-storage: the engine's memory "
                                          r"must be its own tier"):
        api.resolve_point(str(p), "gpt2", policy="attention-in-storage", overrides=SMALL)
    with pytest.raises(ConfigError, match=r"policy\.engine: attention-in-storage: unknown unit 'fpga'"):
        api.resolve_point(CSD, "gpt2", policy="attention-in-storage", overrides={**SMALL, "policy.engine": "fpga"})
