"""PIM operators: closed forms, command accounting, layouts, energy, determinism, input errors."""
from dataclasses import replace

import pytest

from memsim.errors import MemsimError
from memsim.pim import api
from memsim.pim.config import get_pim_preset
from memsim.pim.lowering import lower_gemv
from memsim.pim.validation import cases, idealised
from memsim.validate.catalogue import run_case

PRESETS = ["PIMSimulator_HBM2_64PC", "HBM_PIM_AquaboltXL", "GDDR6_AiM", "AttAcc_HBM3_PIM", "AttAcc_HBM3_PIM_NPC"]


@pytest.mark.parametrize("name", PRESETS)
def test_gemv_never_beats_the_bandwidth_or_compute_bound(name):
    cfg = get_pim_preset(name)
    for rows, cols in ((64, 64), (1000, 777), (4096, 2048)):
        res = api.gemv(cfg, rows, cols)
        cf = api.closed_forms(cfg, rows, cols)
        assert res.time_ps >= cf["bandwidth_bound_ps"]
        assert res.time_ps >= cf["compute_bound_ps"]


@pytest.mark.parametrize("name", PRESETS)
def test_long_gemv_approaches_the_schedule_bound(name):
    """With x in the global buffer and no refresh, time -> bytes / BW + row switches + load + read-out."""
    cfg = idealised(get_pim_preset(name), 1024)
    small = api.gemv(cfg, 512, 1024)
    big = api.gemv(cfg, 32768, 1024)
    cf_small, cf_big = api.closed_forms(cfg, 512, 1024), api.closed_forms(cfg, 32768, 1024)
    assert cf_big["schedule_bound_ps"] / big.time_ps == pytest.approx(1.0, abs=0.05)
    # the bandwidth-bound efficiency grows with W
    assert cf_big["bandwidth_bound_ps"] / big.time_ps > cf_small["bandwidth_bound_ps"] / small.time_ps


def test_compute_bound_with_few_lanes():
    base = idealised(get_pim_preset("AttAcc_HBM3_PIM_NPC"), 1024)
    cfg = replace(base, device=replace(base.device, lanes=1))
    res = api.gemv(cfg, 8192, 1024)
    cf = api.closed_forms(cfg, 8192, 1024)
    assert cf["compute_bound_ps"] > cf["bandwidth_bound_ps"]
    assert 0.9 < cf["compute_bound_ps"] / res.time_ps <= 1.0


def test_command_accounting_of_a_gemv():
    cfg = get_pim_preset("PIMSimulator_HBM2_64PC")
    res = api.gemv(cfg, 4096, 4096, layout="tile_per_bank")
    # every weight byte is read once by a unit: 32 MiB / (32 B per unit per MAC_AB x 8 units)
    assert res.commands["MAC_AB"] == 4096 * 4096 * 2 // (32 * 8)  # summed over the 64 PCs
    assert res.bytes_internal == 4096 * 4096 * 2
    # x is loaded 32 times per PC (256 B tiles of 4096 fp16) plus 4 instruction writes
    assert res.commands["WR_GB"] == 64 * (32 * 8 + 4)
    assert res.macs == 4096 * 4096
    assert res.host_adds == 4096 * 15  # 16 lanes per output are added on the host
    assert res.energy_pj["total"] == pytest.approx(sum(v for k, v in res.energy_pj.items() if k != "total"))
    assert all(v >= 0 for v in res.energy_pj.values())


def test_layouts_differ_as_designed():
    cfg = get_pim_preset("PIMSimulator_HBM2_64PC")
    a = api.gemv(cfg, 4096, 4096, layout="pimgpt")
    b = api.gemv(cfg, 4096, 4096, layout="tile_per_bank")
    c = api.gemv(cfg, 4096, 4096, layout="colsplit")
    assert a.commands["ACT_AB"] * 2 == b.commands["ACT_AB"]  # one ACT serves both banks of a unit
    assert a.time_ps < b.time_ps
    assert c.commands["WR_GB"] < a.commands["WR_GB"]  # each PC loads only its slice of x
    assert c.commands["RD_RES"] > a.commands["RD_RES"] and c.host_adds > a.host_adds


def test_reduction_orders():
    cfg = get_pim_preset("GDDR6_AiM")
    a = api.gemv(cfg, 2048, 4096, reduction="in_bank")
    h = api.gemv(cfg, 2048, 4096, reduction="host")
    auto = api.gemv(cfg, 2048, 4096)
    assert a.commands["WR_GB"] > h.commands["WR_GB"] and a.commands["RD_RES"] < h.commands["RD_RES"]
    assert auto.reduction == "host" and auto.time_ps == h.time_ps


def test_results_are_deterministic_and_memoised():
    cfg = get_pim_preset("AttAcc_HBM3_PIM")
    r1 = api.gemv(cfg, 1234, 567)
    api.gemv.cache_clear()
    r2 = api.gemv(cfg, 1234, 567)
    assert r1 == r2 and r1 is not r2
    assert api.gemv(cfg, 1234, 567) is r2
    with pytest.raises(TypeError):
        r2.energy_pj["total"] = 0  # read-only


def test_power_limit_slows_attacc():
    pc, npc = get_pim_preset("AttAcc_HBM3_PIM"), get_pim_preset("AttAcc_HBM3_PIM_NPC")
    t_pc, t_npc = api.gemv(pc, 8192, 4096).time_ps, api.gemv(npc, 8192, 4096).time_ps
    assert 1.2 < t_pc / t_npc < 7 / 4 + 1e-9


def test_speedup_grows_with_units_per_bank():
    from memsim.pim.sweep import gemv_speedup_sweep

    df = gemv_speedup_sweep(get_pim_preset("HBM_PIM_AquaboltXL"), sizes=(256, 1024), banks_per_unit=(1, 2, 4))
    assert list(df.columns)[:5] == ["config", "rows", "cols", "banks_per_unit", "units_per_bank"]
    assert len(df) == 6
    big = df[df.rows == 1024].sort_values("units_per_bank")
    assert big.speedup.is_monotonic_increasing
    assert (df.speedup <= df.bw_ratio * 1.05).all()


def test_elementwise_and_attention():
    cfg = get_pim_preset("PIMSimulator_HBM2_64PC")
    sep = api.elementwise(cfg, 1 << 18, "add")
    same = api.elementwise(cfg, 1 << 18, "add", layout="same_row")
    assert same.time_ps < sep.time_ps and same.commands["ACT_AB"] < sep.commands["ACT_AB"]
    relu = api.elementwise(cfg, 1 << 18, "relu")
    assert relu.commands["MAC_AB"] * 2 == sep.commands["MAC_AB"]
    att = get_pim_preset("AttAcc_HBM3_PIM")
    s = api.attention_score(att, 2048, 128, heads=32)
    v = api.attention_av(att, 2048, 128, heads=32)
    assert s.macs == v.macs == 32 * 2048 * 128
    assert s.bytes_internal == v.bytes_internal == 32 * 2048 * 128 * 2
    few = api.attention_score(att, 2048, 128, heads=4)  # heads spread over 8 PCs each
    assert few.time_ps < s.time_ps


@pytest.mark.parametrize("call", [
    lambda c: api.gemv(c, 0, 16), lambda c: api.gemv(c, 16, 16, "int8"), lambda c: api.gemv(c, 16, 16, layout="x"),
    lambda c: api.elementwise(c, 16, "sub"), lambda c: api.host_gemv(c, 10**6, 10**6),
    lambda c: api.gemv(c, 16, 16, reduction="tree"),
])
def test_bad_inputs_raise_memsim_errors(call):
    with pytest.raises(MemsimError):
        call(get_pim_preset("GDDR6_AiM"))


def test_host_path_streams_near_peak():
    cfg = get_pim_preset("AttAcc_HBM3_PIM_NPC")
    h = api.host_gemv(cfg, 2048, 2048)
    bw = h.bytes_external / (h.time_ps * 1e-12)
    assert 0.6 * cfg.external_bandwidth_bytes_per_s < bw < cfg.external_bandwidth_bytes_per_s
    assert h.commands["RD"] * 32 >= 2048 * 2048 * 2


def test_lowering_splits_uneven_rows_into_two_classes():
    cfg = get_pim_preset("GDDR6_AiM")
    prog = lower_gemv(cfg, 33, 64, dtype="bf16")  # 17 and 16 rows: 2 and 1 per unit
    assert sorted(prog.multiplicity) == [1, 1] and prog.n_streams == 2


def test_fast_validation_cases_pass():
    fast = [c for c in cases() if c.fast]
    assert len(fast) >= 10
    for c in fast:
        for r in run_case(c).checks:
            assert r.passed or r.known_miss, (r.id, r.simulated)
