"""Flash config section: presets, hardware files, and errors that name the file and YAML path."""
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from memsim.config import load_hw_config
from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.flash.config import get_preset, list_presets, load_flash_config, parse_section

ROOT = Path(__file__).resolve().parents[1]


def test_every_preset_loads_with_a_source():
    names = [n for n, _ in list_presets()]
    assert {"MQSim_default_MLC", "Samsung_990PRO_2TB", "Apple_M2_laptop_flash", "SimpleSSD_sample_MLC"} <= set(names)
    for n, src in list_presets():
        assert src
        cfg = get_preset(n)
        assert cfg.capacity_bytes > 0 and cfg.timing.tR_ps[0] > 0


@pytest.mark.parametrize("f", ["ssd_990pro.yaml", "ssd_mqsim.yaml", "ssd_simplessd.yaml", "laptop_flash_m2.yaml"])
def test_hw_configs_load(f):
    hw = load_hw_config(ROOT / "hw_configs" / f)
    assert hw.memory is None and hw.section("flash").name


def test_preset_values_in_internal_units():
    c = get_preset("MQSim_default_MLC")
    assert c.timing.tR_ps == (75_000_000,) and c.timing.tBERS_ps == 3_800_000_000
    assert c.timing.channel_rate_bps == 333_000_000 and c.organization.page_bytes == 8192
    s = get_preset("SimpleSSD_sample_MLC")
    assert s.timing.tPROG_ps == (500_000_000, 1_300_000_000)
    assert s.host.lane_rate_bps == 5_000_000_000 and s.host.encoding == (8, 10)
    p = get_preset("Samsung_990PRO_2TB")
    assert p.host.raw_bytes_per_s == pytest.approx(16e9 * 4 * 128 / 130 / 8)


def test_override_in_a_file(tmp_path):
    f = tmp_path / "x.yaml"
    f.write_text("flash:\n  preset: Samsung_990PRO_2TB\n  timing:\n    tR: [50us, 70us, 90us]\n"
                 "  host:\n    lanes: 2\n")
    c = load_flash_config(str(f))
    assert c.timing.tR_ps == (50_000_000, 70_000_000, 90_000_000) and c.host.lanes == 2


@pytest.mark.parametrize("body, path, words", [
    ("  timing:\n    tR: 75\n", "flash.timing.tR", "expected a duration"),
    ("  timing:\n    tRR: 75us\n", "flash.timing.tRR", "did you mean"),
    ("  organization:\n    channels: 0\n", "flash.organization.channels", "positive integer"),
    ("  organization:\n    read_granularity: 3000B\n", "flash.organization.read_granularity", "whole number"),
    ("  organization:\n    mapping: CWDX\n", "flash.organization.mapping", "permutation"),
    ("  timing:\n    tR: [1us, 2us, 3us, 4us, 5us]\n", "flash.timing.tR", "1 to 4"),
    ("  host:\n    lane_rate: 8GT/s\n", "flash.host.lane_rate", "not both"),
    ("  host:\n    pcie_gen: 7\n", "flash.host.pcie_gen", "generation"),
    ("  timing:\n    channel_rate: 1.6GB/s\n", "flash.timing.channel_rate", "unknown unit"),
    ("  features:\n    cache_read: yes please\n", "flash.features.cache_read", "true or false"),
    ("  energy:\n    read_per_bit: 5W\n", "flash.energy.read_per_bit", "unknown unit"),
    ("  colour: red\n", "flash.colour", "unknown key"),
])
def test_errors_name_file_and_path(tmp_path, body, path, words):
    f = tmp_path / "bad.yaml"
    f.write_text("flash:\n  preset: Samsung_990PRO_2TB\n" + body)
    with pytest.raises(ConfigError) as e:
        load_hw_config(f)
    msg = str(e.value)
    assert str(f) in msg and path in msg and words in msg, msg


def test_unknown_preset_suggests():
    with pytest.raises(ConfigError, match="did you mean 'Samsung_990PRO_2TB'"):
        yt.load_block({"preset": "Samsung_990PRO"}, parse_section, key="flash", file="x.yaml")


def test_missing_host_rate():
    with pytest.raises(ConfigError, match="flash.host.pcie_gen"):
        yt.load_block({"preset": "Samsung_990PRO_2TB", "host": {"pcie_gen": None}}, parse_section, key="flash",
                      file="x.yaml")


_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["75us", "16KiB", "1600MT/s", "0ns", "-3us", "4", "8GT/s"]),
                    st.lists(st.sampled_from(["40us", "3", "1KiB"]), max_size=6))
_keys = st.sampled_from([("organization", "channels"), ("organization", "page_size"), ("organization", "mapping"),
                         ("organization", "read_granularity"), ("timing", "tR"), ("timing", "tPROG"),
                         ("timing", "channel_rate"), ("timing", "command_overhead"), ("host", "pcie_gen"),
                         ("host", "lanes"), ("host", "lane_rate"), ("host", "max_payload"), ("host", "controller_time"),
                         ("features", "multi_plane"), ("energy", "static_power"), ("organization", "nope")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _values, max_size=4))
def test_any_input_gives_a_config_or_a_config_error(fields):
    block = {"preset": "MQSim_default_MLC"}
    for (section, key), value in fields.items():
        block.setdefault(section, {})[key] = value
    try:
        cfg = yt.load_block(block, parse_section, key="flash", file="fuzz.yaml")
    except ConfigError as e:
        assert "fuzz.yaml" in str(e)
    else:
        assert cfg.organization.channels > 0 and cfg.timing.tR_ps[0] > 0
