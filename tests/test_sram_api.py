"""SRAM: presets, config errors, the scaling rule, capacity enforcement, closed forms, CLI."""
import json
from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.config import load_hw_config
from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.sram import api
from memsim.sram.config import get_preset, list_presets, parse_section, scale_factors
from memsim.traces import write_trace
from memsim.validate.catalogue import run_case

ROOT = Path(__file__).resolve().parents[1]


def _cfg(**block):
    block.setdefault("preset", "CACTI7_128KiB_22nm")
    return yt.load_block(block, parse_section, key="sram", file="t.yaml")


def test_presets_and_hw_configs():
    names = [n for n, _ in list_presets()]
    assert len(names) == 8 and all(src for _, src in list_presets())
    c = get_preset("CACTI7_2MiB_22nm")
    assert (c.capacity_bytes, c.access_time_ps, c.cycle_time_ps, c.read_pj, c.leakage_mw) == (2 << 20, 1600, 610, 181.0, 620.0)
    for f in ("sram_2mib_22nm", "sram_16x128kib_22nm", "sram_16x128kib_7nm"):
        assert load_hw_config(ROOT / f"hw_configs/{f}.yaml").section("sram").capacity_bytes == 2 << 20


def test_scaling_rule():
    assert scale_factors(22, 7) == pytest.approx((0.45, 0.5))
    fe, ft = scale_factors(22, 12)
    assert 0.45 < fe < 1 and 0.5 < ft < 1
    base, s7 = _cfg(), _cfg(technology={"scale_to": "7nm"})
    assert s7.read_pj == pytest.approx(base.read_pj * 0.45) and s7.cycle_time_ps == round(base.cycle_time_ps * 0.5)
    assert s7.leakage_mw == base.leakage_mw and s7.node_nm == 7 and s7.scaled_from_nm == 22


@pytest.mark.parametrize("block, path, words", [
    ({"technology": {"scale_to": "5nm"}}, "sram.technology.scale_to", "7 to 22 nm"),
    ({"preset": "CACTI7_32KiB_32nm", "technology": {"scale_to": "7nm"}}, "sram.technology.scale_to", "22 nm"),
    ({"organization": {"banks": 3}}, "sram.organization.banks", "whole number of banks"),
    ({"organization": {"interleave": "96B"}}, "sram.organization.interleave", "access widths"),
    ({"timing": {"cycle_time": 5}}, "sram.timing.cycle_time", "expected a duration"),
    ({"energy": {"reed": "1pJ"}}, "sram.energy.reed", "did you mean 'read'"),
    ({"technology": {"node": "22"}}, "sram.technology.node", "process node"),
])
def test_config_errors_name_file_and_path(block, path, words):
    with pytest.raises(ConfigError) as e:
        _cfg(**block)
    assert "t.yaml" in str(e.value) and path in str(e.value) and words in str(e.value), str(e.value)


def test_clock_rounds_times_up_to_cycles():
    c = _cfg(timing={"clock": "1GHz"})  # 0.43 ns access, 0.51 ns cycle -> 1 cycle each at 1 GHz
    assert (c.clock_period_ps, c.latency_cycles, c.busy_cycles) == (1000, 1, 1)
    c = _cfg(timing={"clock": "4GHz"})
    assert (c.latency_cycles, c.busy_cycles) == (2, 3)
    assert c.peak_bandwidth_bytes_per_s == pytest.approx(64 * 4e9 / 3)


def test_stream_is_banks_width_clock():
    c = _cfg(organization={"capacity": "2MiB", "banks": 16})
    n = 1 << 20
    t = api.stream_time(c, n)
    words = n // 64
    assert t == ((words // 16 - 1) * c.busy_cycles + c.latency_cycles) * c.clock_period_ps
    r = api.stream(c, n)
    assert r.conflicted_accesses == 0 and r.bandwidth_gbps == pytest.approx(16 * 64 / 0.51, rel=1e-3)


def test_conflicts_and_multi_word_accesses():
    c = _cfg(organization={"capacity": "2MiB", "banks": 16, "ports": 2})
    same = api.access(c, np.arange(320) * 16 * 64)  # every access in bank 0, two ports
    assert same.cycles == (320 // 2 - 1) + c.latency_cycles and same.conflicted_accesses > 0
    r = api.access(c, [10], nbytes=200)  # bytes 10..209 touch words 0..3
    assert r.accesses == 4 and r.bytes_transferred == 256
    e = api.access(c, [0, 64], is_write=[False, True])
    assert e.energy_pj["read"] == c.read_pj and e.energy_pj["write"] == c.write_pj


def test_capacity_is_enforced():
    c = _cfg()  # 128 KiB
    with pytest.raises(api.SramCapacityError, match="outside"):
        api.access(c, [c.capacity_bytes])
    with pytest.raises(api.SramCapacityError, match="outside"):
        api.access(c, [c.capacity_bytes - 64], nbytes=128)
    sp = api.Scratchpad(c)
    assert sp.fits(100 * 1024) and not sp.fits(129 * 1024)
    a = sp.allocate("weights", 100 * 1024)
    assert a.offset == 0 and a.spilled == 0
    with pytest.raises(api.SramCapacityError, match=r"'kv' of 40960 B does not fit: 28672 B free .*weights 102400 B"):
        sp.allocate("kv", 40 * 1024)
    b = sp.allocate("kv", 40 * 1024, allow_spill=True)
    assert (b.offset, b.resident, b.spilled) == (100 * 1024, 28 * 1024, 12 * 1024) and sp.free == 0
    sp.release("kv")
    assert sp.free == 28 * 1024
    sp.release("weights")
    assert sp.free == c.capacity_bytes
    with pytest.raises(ValueError, match="already"):
        sp.allocate("x", 1) and sp.allocate("x", 1)


def test_sram_validation_cases_pass():
    from memsim.sram.validation import cases

    for case in cases():
        for r in run_case(case).checks:
            assert r.passed, (r.id, r.simulated, r.check.expected)


def test_cli(tmp_path, capsys):
    tr = tmp_path / "t.ramulator2.trace"
    write_trace(tr, np.arange(1000, dtype=np.uint64) * 64, np.arange(1000) % 2 == 1)
    out = tmp_path / "r.json"
    cfg = str(ROOT / "hw_configs/sram_16x128kib_22nm.yaml")
    assert main(["sram", str(tr), "-c", cfg, "--json", str(out)]) == 0
    assert "conflicts" in capsys.readouterr().out
    d = json.loads(out.read_text())
    assert d["accesses"] == 1000 and d["writes"] == 500 and d["fraction_of_peak"] > 0.95
    bad = tmp_path / "b.ramulator1.trace"
    bad.write_text("0x0 R\n0x300000 W\n")
    assert main(["sram", str(bad), "-c", cfg]) == 2
    assert "b.ramulator1.trace:2" in capsys.readouterr().err


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

_vals = st.one_of(st.none(), st.booleans(), st.integers(-3, 4096), st.floats(allow_nan=True), st.text(max_size=6),
                  st.sampled_from(["64B", "2MiB", "0.5ns", "0ns", "1GHz", "7nm", "30nm", "5pJ", "3mW", "96B"]))
_keys = st.sampled_from([("organization", "capacity"), ("organization", "banks"), ("organization", "ports"),
                         ("organization", "width"), ("organization", "interleave"), ("timing", "access_time"),
                         ("timing", "cycle_time"), ("timing", "clock"), ("energy", "read"), ("energy", "leakage"),
                         ("technology", "node"), ("technology", "scale_to"), ("technology", "area_mm2")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _vals, max_size=4))
def test_any_input_gives_a_config_or_a_config_error(fields):
    block = {"preset": "CACTI7_32KiB_22nm"}
    for (section, key), value in fields.items():
        block.setdefault(section, {})[key] = value
    try:
        cfg = yt.load_block(block, parse_section, key="sram", file="fuzz.yaml")
    except ConfigError as e:
        assert "fuzz.yaml" in str(e)
    else:
        assert cfg.banks > 0 and cfg.busy_cycles >= 1 and cfg.peak_bandwidth_bytes_per_s > 0
