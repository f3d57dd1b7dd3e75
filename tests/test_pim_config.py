"""The pim: config section: presets, layering, and errors that name the file and YAML path."""
import pytest

from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.pim.config import get_pim_preset, list_pim_presets


def _write(tmp_path, text):
    p = tmp_path / "hw.yaml"
    p.write_text(text)
    return str(p)


def test_every_preset_loads_with_a_source():
    names = [n for n, _ in list_pim_presets()]
    assert {"HBM_PIM_AquaboltXL", "GDDR6_AiM", "AttAcc_HBM3_PIM", "AttAcc_HBM3_PIM_NPC",
            "PIMSimulator_HBM2_64PC"} <= set(names)
    for name, source in list_pim_presets():
        cfg = get_pim_preset(name)
        assert source and cfg.source == source
        assert cfg.units_per_pc * cfg.device.banks_per_unit == cfg.banks_per_pc


def test_preset_figures():
    hbm = get_pim_preset("HBM_PIM_AquaboltXL")
    assert (hbm.device.banks_per_unit, hbm.device.lanes, hbm.device.clock_hz) == (2, 16, 300_000_000)
    assert hbm.internal_bandwidth_bytes_per_s / hbm.external_bandwidth_bytes_per_s == pytest.approx(4.0, rel=1e-3)
    aim = get_pim_preset("GDDR6_AiM")
    assert aim.device.global_buffer_bytes == 2048 and aim.device.clock_hz == 10**9
    flops = 2 * aim.n_pcs * aim.units_per_pc * aim.device.lanes * aim.device.clock_hz
    assert flops == pytest.approx(1.024e12)
    pc = get_pim_preset("AttAcc_HBM3_PIM")
    npc = get_pim_preset("AttAcc_HBM3_PIM_NPC")
    ratio = lambda c: c.internal_bandwidth_bytes_per_s / c.external_bandwidth_bytes_per_s  # noqa: E731
    assert ratio(npc) == pytest.approx(16.0) and ratio(pc) == pytest.approx(32 * 32 / 7 / 16)
    ps = get_pim_preset("PIMSimulator_HBM2_64PC")
    assert ps.n_pcs == 64 and ps.memory.peak_bandwidth_bytes_per_s == pytest.approx(1.024e12)


def test_overrides_and_shared_memory(tmp_path):
    f = _write(tmp_path, "memory:\n  preset: HBM3_6400\npim:\n  preset: AttAcc_HBM3_PIM\n  memory: shared\n"
                         "  device: {lanes: 8}\n  timing: {tCCD_AB: 5ns}\n")
    cfg = load_hw_config(f).section("pim")
    assert cfg.device.lanes == 8 and cfg.timing.t_ccd_ab_ps == 5000
    assert cfg.memory == load_hw_config(f).memory
    cfg2 = load_hw_config(f, overrides={"pim.timing.tCCD_AB": "{nCK: 4}"}).section("pim")
    assert cfg2.timing.t_ccd_ab_ps == 4 * cfg2.memory.timing.t_ck_ps


@pytest.mark.parametrize("body, path, words", [
    ("pim:\n  preset: GDDR6_AiM\n  device: {lanez: 4}\n", "pim.device.lanez", "did you mean 'lanes'"),
    ("pim:\n  preset: GDDR6_AiM\n  device: {clock: 1000}\n", "pim.device.clock", "frequency"),
    ("pim:\n  preset: GDDR6_AiM\n  device: {banks_per_unit: 3}\n", "pim.device.banks_per_unit", "power of two"),
    ("pim:\n  preset: GDDR6_AiM\n  device: {global_buffer: 100B}\n", "pim.device.global_buffer", "column"),
    ("pim:\n  preset: GDDR6_AiM\n  timing: {tCCD_AB: 14}\n", "pim.timing.tCCD_AB", "duration"),
    ("pim:\n  preset: GDDR6_AiM\n  timing: {tCCD_AB: 0.1ns}\n", "pim.timing.tCCD_AB", "tCCD_S"),
    ("pim:\n  preset: GDDR6_AiM\n  device: {dtypes: [fp32]}\n", "pim.device.dtypes[0]", "fp16"),
    ("pim:\n  preset: GDDR6_AIM\n", "pim.preset", "did you mean 'GDDR6_AiM'"),
    ("pim:\n  device: {lanes: 4}\n", "pim.preset", "preset name"),
    ("pim:\n  preset: GDDR6_AiM\n  memory: shared\n", "pim.memory", "no 'memory:' block"),
    ("pim:\n  preset: GDDR6_AiM\n  memory: 3\n", "pim.memory", "memory block"),
    ("pim:\n  preset: GDDR6_AiM\n  memory: {preset: GDDR6_16, timing: {tRP: -3}}\n", "pim.memory.timing.tRP", ""),
    ("pim:\n  preset: GDDR6_AiM\n  bogus: 1\n", "pim.bogus", "unknown key"),
])
def test_errors_name_file_and_yaml_path(tmp_path, body, path, words):
    f = _write(tmp_path, body)
    with pytest.raises(ConfigError) as ei:
        load_hw_config(f)
    assert ei.value.file == f and ei.value.path == path
    assert words in str(ei.value)
