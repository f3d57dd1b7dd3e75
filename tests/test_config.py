"""Tests for the hardware-config loader and the shipped DRAM presets."""
from __future__ import annotations

import copy
import dataclasses
import glob
import math
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memsim.config import (
    TIMING_YAML_NAMES,
    DramConfig,
    HardwareConfig,
    get_preset,
    list_presets,
    load_dram_config,
    load_hw_config,
)
from memsim.config.loader import _PresetLibrary
from memsim.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

GENERAL_PRESETS = ["HBM2_2000", "HBM2E_3200", "HBM3_6400", "HBM3E_9600", "DDR4_3200", "DDR5_4800", "GDDR6_16",
                   "LPDDR5_6400"]
REFERENCE_PRESETS = ["DRAMSim3_HBM2_8Gb_x128", "DRAMSim3_DDR4_8Gb_x8_2400", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                     "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch", "Ramulator2_DDR4_8Gb_x8_2400U",
                     "Ramulator1_DDR4_8Gb_x8_2400U", "Ramulator2_HBM2_4Gb_2000Mbps_8ch_RoBaRaCoCh",
                     "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch_RoBaRaCoCh"]


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def config_error(fn, *args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    return err.value


# A complete preset used to test the library on its own (timings from the Ramulator 2.1 HBM3 reference).
# tRC and tRTW are omitted on purpose so their defaults are exercised.
BASE_PRESET = """
BASE:
  standard: HBM3
  source: test
  organization: {channels: 16, pseudo_channels: 2, ranks: 2, bank_groups: 4, banks_per_group: 4, rows: 8192,
                 columns: 256, bus_width_bits: 32, burst_length: 8, data_rate: 6.4Gbps}
  timing: {tCK: 0.625ns, CL: {nCK: 20}, CWL: {nCK: 10}, tRCDRD: {nCK: 31}, tRCDWR: {nCK: 15}, tRP: {nCK: 26},
           tRAS: {nCK: 45}, tCCD_S: {nCK: 2}, tCCD_L: {nCK: 4}, tRRD_S: {nCK: 4}, tRRD_L: {nCK: 5},
           tFAW: {nCK: 24}, tWR: {nCK: 33}, tWTR_S: {nCK: 7}, tWTR_L: {nCK: 10}, tRTP: {nCK: 9},
           tRFC: {nCK: 416}, tREFI: {nCK: 6240}}
  mapping: {scheme: mop4clxor}
"""


# ---------------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------------


def test_list_presets_names_and_sources() -> None:
    presets = list_presets()
    names = [p[0] for p in presets]
    assert names == sorted(names)
    for required in GENERAL_PRESETS + REFERENCE_PRESETS:
        assert required in names
    for name, standard, source in presets:
        assert standard and source, name


@pytest.mark.parametrize("name", [p[0] for p in list_presets()])
def test_every_preset_loads_and_is_consistent(name: str) -> None:
    cfg = get_preset(name)
    assert isinstance(cfg, DramConfig)
    assert cfg.name == name
    org, t = cfg.organization, cfg.timing
    for count in (org.channels, org.pseudo_channels, org.ranks, org.bank_groups, org.banks_per_group, org.rows,
                  org.columns):
        assert count > 0 and count & (count - 1) == 0
    assert org.row_bytes % org.transaction_bytes == 0
    assert all(isinstance(getattr(t, f), int) for f in TIMING_YAML_NAMES.values())
    assert t.t_ras_ps >= t.t_rcdrd_ps
    assert t.t_rc_ps >= t.t_ras_ps + t.t_rp_ps - t.t_ck_ps
    assert t.t_refi_ps > t.t_rfc_ps
    assert cfg.energy.source
    assert hash(cfg) == hash(get_preset(name))  # frozen and hashable, usable as a cache key
    assert get_preset(name) is cfg  # cached


def test_reference_dramsim3_hbm2_exact() -> None:
    c = get_preset("DRAMSim3_HBM2_8Gb_x128")
    o, t, k = c.organization, c.timing, c.controller
    assert (o.channels, o.pseudo_channels, o.bus_width_bits, o.burst_length) == (8, 1, 128, 4)
    assert (o.rows, o.row_bytes, o.transaction_bytes, o.bursts_per_row) == (32768, 2048, 64, 32)
    assert o.capacity_bytes == 8 * 1024**3
    assert t.t_ck_ps == 1000 and t.cl_ps == 14_000 and t.cwl_ps == 4000
    assert (t.t_ccd_s_ps, t.t_ccd_l_ps, t.t_rrd_s_ps, t.t_rrd_l_ps, t.t_faw_ps) == (1000, 2000, 4000, 6000, 30_000)
    assert (t.t_rtp_ps, t.t_rfc_ps, t.t_refi_ps, t.t_rc_ps) == (5000, 260_000, 3_900_000, 48_000)
    assert (k.read_queue, k.write_queue, k.posted_writes, k.separate_row_column_bus) == (32, 16, True, False)
    assert (k.bank_queue_depth, k.frfcfs_cap) == (8, 4)
    assert (k.refresh, k.refresh_level, k.refresh_stagger) == ("all-bank", "rank", True)
    assert c.mapping.scheme == "rorabgbachco"


def test_reference_dramsim3_ddr4_exact() -> None:
    c = get_preset("DRAMSim3_DDR4_8Gb_x8_2400")
    t = c.timing
    assert t.t_ck_ps == 830  # "0.83ns" exactly as DRAMSim3 says
    assert t.cl_ps == 17 * 830 and t.t_rfc_ps == 420 * 830 and t.t_refi_ps == 9360 * 830
    assert t.t_rc_ps == (39 + 17) * 830  # default tRAS + tRP
    assert t.t_rtw_ps == 11 * 830
    assert c.organization.row_bytes == 8192
    assert c.mapping.scheme == "rochrababgco"
    assert (c.controller.separate_row_column_bus, c.controller.posted_writes, c.controller.write_queue) == \
        (False, True, 16)


def test_reference_ramulator2_hbm_exact() -> None:
    h2 = get_preset("Ramulator2_HBM2_4Gb_2000Mbps_8ch")
    assert h2.organization.transaction_bytes == 32 and h2.organization.row_bytes == 1024
    assert h2.timing.t_rfcpb_ps == 160_000 and h2.timing.t_refipb_ps == 122_000
    k = h2.controller
    assert (k.read_queue, k.write_queue, k.write_high_watermark, k.write_low_watermark) == (32, 32, 0.8, 0.2)
    assert (k.posted_writes, k.refresh_level, k.refresh_stagger, k.separate_row_column_bus) == \
        (False, "pseudo_channel", False, False)
    assert (k.scheduler, k.active_buffer, k.precharge_guard) == ("first-ready", 32, False)
    assert (h2.mapping.scheme, h2.mapping.channel_interleave_bits) == ("mop4clxor", 1)

    h3 = get_preset("Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch")
    o, t = h3.organization, h3.timing
    assert (o.channels, o.pseudo_channels, o.ranks, o.rows, o.columns, o.bus_width_bits) == (16, 2, 2, 8192, 256, 32)
    assert h3.peak_bandwidth_bytes_per_s == pytest.approx(819.2e9)
    assert t.t_ck_ps == 625 and t.t_rcdrd_ps == 31 * 625 and t.t_ccd_r_ps == 3 * 625 and t.t_rtw_ps == 20 * 625
    assert t.t_rfc_ps == 416 * 625 and t.t_refipb_ps == 195 * 625
    assert h3.controller.refresh_level == "pseudo_channel"


def test_reference_ddr4_ramulator_versions() -> None:
    r2 = get_preset("Ramulator2_DDR4_8Gb_x8_2400U")
    r1 = get_preset("Ramulator1_DDR4_8Gb_x8_2400U")
    assert r2.timing.cl_ps == 17 * 833 and r2.timing.t_rfc_ps == 433 * 833 and r2.timing.t_refi_ps == 9364 * 833
    assert r1.timing.cl_ps == 18 * 833 and r1.timing.t_rc_ps == 57 * 833 and r1.timing.t_refi_ps == 9360 * 833
    assert r1.timing.t_wr_ps == r2.timing.t_wr_ps  # inherited
    assert r1.mapping.scheme == r2.mapping.scheme == "RoBaRaCoCh"
    assert r2.controller.separate_row_column_bus is False


@pytest.mark.parametrize("base", ["Ramulator2_HBM2_4Gb_2000Mbps_8ch", "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch"])
def test_robaracoch_variants_differ_only_in_mapping(base: str) -> None:
    parent, child = get_preset(base), get_preset(base + "_RoBaRaCoCh")
    assert child.mapping.scheme == "RoBaRaCoCh"
    same = dataclasses.replace(child, name=parent.name, source=parent.source, mapping=parent.mapping)
    assert same == parent


def test_general_presets_spot_values() -> None:
    assert get_preset("HBM3_6400").timing.t_rtw_ps == 20 * 625
    assert get_preset("HBM2E_3200").timing.t_ck_ps == 625
    assert get_preset("HBM2E_3200").timing.t_rrd_s_ps == 4000  # ns-defined value kept
    assert get_preset("HBM3E_9600").peak_bandwidth_bytes_per_s == pytest.approx(1228.8e9)
    assert get_preset("DDR4_3200").timing.t_rc_ps == 74 * 625  # default tRAS + tRP
    assert get_preset("DDR4_3200").timing.t_ccd_r_ps == get_preset("DDR4_3200").timing.t_ccd_s_ps
    assert get_preset("DDR4_3200").timing.t_rfcpb_ps == 0
    # GDDR6: tRC is one tCK short of tRAS + tRP after rounding (as in Ramulator 2.1) and is accepted.
    g = get_preset("GDDR6_16").timing
    assert g.t_rc_ps == g.t_ras_ps + g.t_rp_ps - g.t_ck_ps
    e = get_preset("HBM3_6400").energy
    assert e.read_pj_per_bit == pytest.approx(0.44 + 1.01 + 1.23 + 0.5 + 0.3)
    assert e.act_pj == pytest.approx(0.11 * 8192)
    assert "[U]" in get_preset("DDR5_4800").energy.source


def test_default_trtw_and_trc() -> None:
    lib = _PresetLibrary([("t.yaml", BASE_PRESET)])
    t = lib.get("BASE").timing
    # CL + burst (8 beats at 6.4 Gb/s = 1250 ps) + 2 tCK - CWL
    assert t.t_rtw_ps == 20 * 625 + 1250 + 2 * 625 - 10 * 625
    assert t.t_rc_ps == (45 + 26) * 625
    assert t.t_ccd_r_ps == t.t_ccd_s_ps
    assert (t.t_rfcpb_ps, t.t_refipb_ps) == (0, 0)


# ---------------------------------------------------------------------------------------------------
# Inheritance, duplicates
# ---------------------------------------------------------------------------------------------------


def test_inheritance_merges_per_field_child_wins() -> None:
    child = """
    CHILD:
      inherits: BASE
      source: child source
      organization: {channels: 8}
      timing: {tRP: 20ns}
      controller: {row_policy: closed}
    GRANDCHILD:
      inherits: CHILD
      source: grandchild
      timing: {tCK: 1ns}
    """
    lib = _PresetLibrary([("a.yaml", BASE_PRESET), ("b.yaml", textwrap.dedent(child))])
    base, c, g = lib.get("BASE"), lib.get("CHILD"), lib.get("GRANDCHILD")
    assert c.organization.channels == 8 and c.organization.rows == base.organization.rows
    assert c.timing.t_rp_ps == 20_000 and c.timing.cl_ps == base.timing.cl_ps
    assert c.controller.row_policy == "closed" and c.standard == "HBM3" and c.source == "child source"
    # tCK changed: nCK-defined values rescale, ns-defined ones stay.
    assert g.timing.cl_ps == 20 * 1000 and g.timing.t_rp_ps == 20_000
    assert lib.describe("GRANDCHILD") == ("GRANDCHILD", "HBM3", "grandchild")


def test_inheritance_cycle_detected() -> None:
    text = """
    A: {inherits: B, source: a}
    B: {inherits: C, source: b}
    C: {inherits: A, source: c}
    SELF: {inherits: SELF, source: s}
    """
    lib = _PresetLibrary([("cyc.yaml", textwrap.dedent(text))])
    err = config_error(lib.get, "A")
    assert "inheritance cycle: A -> B -> C -> A" in str(err)
    assert str(err).startswith("cyc.yaml: C.inherits: ")
    assert "inheritance cycle: SELF -> SELF" in str(config_error(lib.get, "SELF"))


def test_unknown_parent() -> None:
    lib = _PresetLibrary([("p.yaml", BASE_PRESET + "\nKID: {inherits: BAES, source: k}\n")])
    err = config_error(lib.get, "KID")
    assert str(err).startswith("p.yaml: KID.inherits: unknown preset 'BAES' (did you mean 'BASE'?)")


def test_duplicate_preset_across_files() -> None:
    err = config_error(_PresetLibrary, [("a.yaml", BASE_PRESET), ("b.yaml", BASE_PRESET)])
    assert "b.yaml: BASE: duplicate preset name 'BASE' (also defined in a.yaml)" in str(err)


def test_preset_missing_field_and_unknown_key() -> None:
    lib = _PresetLibrary([("m.yaml", BASE_PRESET.replace("  source: test\n", ""))])
    assert str(config_error(lib.get, "BASE")) == "m.yaml: BASE.source: required field missing (preset 'BASE' " \
                                                  "does not set it either)"
    lib = _PresetLibrary([("m.yaml", BASE_PRESET.replace("tCK: 0.625ns, ", ""))])
    assert "m.yaml: BASE.timing.tCK: required field missing" in str(config_error(lib.get, "BASE"))
    lib = _PresetLibrary([("m.yaml", BASE_PRESET + "  colour: blue\n")])
    assert "m.yaml: BASE.colour: unknown key 'colour'" in str(config_error(lib.get, "BASE"))


def test_shipped_preset_files_have_no_duplicates() -> None:
    folder = REPO / "memsim" / "presets" / "dram"
    lib = _PresetLibrary.from_directory(folder)
    assert sorted(lib.names()) == [p[0] for p in list_presets()]


# ---------------------------------------------------------------------------------------------------
# Hardware configs, overrides
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(glob.glob(str(REPO / "hw_configs" / "*.yaml"))))
def test_shipped_hw_configs_load(path: str) -> None:
    hw = load_hw_config(path)
    assert isinstance(hw, HardwareConfig) and hw.source_file == path and hw.name


def test_default_hbm3_config() -> None:
    hw = load_hw_config(REPO / "hw_configs" / "hbm3.yaml")
    assert hw.memory == get_preset("Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch")
    closed = load_hw_config(REPO / "hw_configs" / "hbm3_closed_page.yaml")
    assert closed.memory.controller.row_policy == "closed"


def test_name_defaults_to_stem(tmp_path: Path) -> None:
    hw = load_hw_config(write(tmp_path, "memory: {preset: HBM3_6400}\n", "my_stack.yaml"))
    assert hw.name == "my_stack"


def test_override_precedence(tmp_path: Path) -> None:
    path = write(tmp_path, """
        memory:
          preset: HBM3_6400
          timing: {tRP: 20ns, tRCDRD: {nCK: 30}, tRC: 50ns}
          organization: {channels: 8}
        """)
    hw = load_hw_config(path)
    assert hw.memory.timing.t_rp_ps == 20_000  # file beats preset
    assert hw.memory.organization.channels == 8
    hw = load_hw_config(path, {"memory.timing.tRP": "15ns", "memory.organization.channels": "4",
                               "memory.controller.read_from_write_queue": "false"})
    assert hw.memory.timing.t_rp_ps == 15_000  # override beats file
    assert hw.memory.organization.channels == 4  # CLI text "4" read as YAML
    assert hw.memory.controller.read_from_write_queue is False
    assert hw.memory.timing.t_rcdrd_ps == 30 * 625


def test_tck_override_rescales_nck_keeps_ns(tmp_path: Path) -> None:
    path = write(tmp_path, "memory: {preset: HBM2_2000, timing: {tWR: {nCK: 20}, tRTP: 6ns}}\n")
    hw = load_hw_config(path, {"memory.timing.tCK": "0.5ns"})
    t = hw.memory.timing
    assert t.t_ck_ps == 500
    assert t.cl_ps == 14 * 500  # preset nCK value rescaled by the final tCK
    assert t.t_wr_ps == 20 * 500  # file nCK value rescaled
    assert t.t_rrd_s_ps == 4000  # preset ns value kept
    assert t.t_rtp_ps == 6000  # file ns value kept
    # nCK given as a mapping through an override, and as "14nCK" text
    hw = load_hw_config(path, {"memory.timing.CL": "{nCK: 16}", "memory.timing.CWL": "6nCK"})
    assert hw.memory.timing.cl_ps == 16_000 and hw.memory.timing.cwl_ps == 6000


def test_loading_has_no_side_effects(tmp_path: Path) -> None:
    before = get_preset("HBM3_6400")
    path = write(tmp_path, "memory: {preset: HBM3_6400}\n")
    load_hw_config(path, {"memory.timing.tRP": "17ns", "memory.controller.read_queue": 7})
    assert get_preset("HBM3_6400") == before
    assert load_hw_config(path).memory == before
    assert load_hw_config(path) == load_hw_config(path)


def test_load_dram_config_mapping_and_prefix() -> None:
    cfg = load_dram_config({"preset": "DDR4_3200", "controller": {"row_policy": "timeout", "row_timeout": "100ns"}})
    assert cfg.controller.row_timeout_ps == 100_000
    err = config_error(load_dram_config, {"preset": "DDR4_3200", "timing": {"tRP": 14}}, file="sys.yaml",
                       prefix="tiers[1]")
    assert str(err) == ("sys.yaml: tiers[1].timing.tRP: expected a duration like '14ns' or cycles like {nCK: 14}, "
                        "got 14")
    assert (err.file, err.path) == ("sys.yaml", "tiers[1].timing.tRP")


def test_load_dram_config_from_file(tmp_path: Path) -> None:
    path = write(tmp_path, "preset: LPDDR5_6400\nline_bytes: 128B\n")
    assert load_dram_config(path).line_bytes == 128


# ---------------------------------------------------------------------------------------------------
# Error messages: every kind names the file and YAML path
# ---------------------------------------------------------------------------------------------------


ERROR_CASES = [
    # (memory block YAML, expected path, expected message fragment)
    ("{preset: HBM3_6400, timing: {tRCDRD: 14}}", "memory.timing.tRCDRD",
     "expected a duration like '14ns' or cycles like {nCK: 14}, got 14"),
    ("{preset: HBM3_6400, timing: {tRCD: 14ns}}", "memory.timing.tRCD",
     "unknown timing 'tRCD' (did you mean 'tRCDRD' or 'tRCDWR'?); allowed: tCK, CL,"),
    ("{preset: HBM3_6400, controler: {}}", "memory.controler", "unknown key 'controler' (did you mean 'controller'?)"),
    ("{preset: HBM3_6400, controller: {row_polcy: open}}", "memory.controller.row_polcy",
     "did you mean 'row_policy'?"),
    ("{timing: {}}", "memory.preset", "required key missing; expected a preset name, one of: DDR4_3200"),
    ("{preset: HBM4}", "memory.preset", "unknown preset 'HBM4'"),
    ("{preset: HBM3_6400, organization: {channels: 12}}", "memory.organization.channels", "must be a power of two"),
    ("{preset: HBM3_6400, organization: {banks_per_group: 0}}", "memory.organization.banks_per_group",
     "expected a positive integer, got 0"),
    ("{preset: HBM3_6400, organization: {rows: 8192.0}}", "memory.organization.rows",
     "expected a positive integer, got 8192.0"),
    ("{preset: HBM3_6400, organization: {data_rate: 6.4}}", "memory.organization.data_rate",
     "expected a bit rate like '6.4Gbps', got 6.4"),
    ("{preset: HBM3_6400, organization: {columns: 4}}", "memory.organization.columns",
     "must be a multiple of transaction_bytes"),
    ("{preset: HBM3_6400, timing: {tRAS: 10ns}}", "memory.timing.tRAS", "tRAS (10 ns) must be >= tRCDRD (19.375 ns)"),
    ("{preset: HBM3_6400, timing: {tRC: {nCK: 69}}}", "memory.timing.tRC", "must be >= tRAS + tRP - 1 tCK"),
    ("{preset: HBM3_6400, timing: {tREFI: 350ns}}", "memory.timing.tREFI", "must be > tRFC"),
    ("{preset: HBM3_6400, timing: {tCCD_L: 1nCK}}", "memory.timing.tCCD_L", "must be >= tCCD_S"),
    ("{preset: HBM3_6400, timing: {tRP: 0.1ps}}", "memory.timing.tRP", "not a whole number of picoseconds"),
    ("{preset: HBM3_6400, timing: {tRP: -3ns}}", "memory.timing.tRP", "expected a non-negative duration"),
    ("{preset: HBM3_6400, timing: {tCK: {nCK: 2}}}", "memory.timing.tCK", "tCK must be a duration"),
    ("{preset: HBM3_6400, timing: {tRP: {nCK: 2.5}}}", "memory.timing.tRP", "expected cycles like {nCK: 14}"),
    ("{preset: HBM3_6400, controller: {write_low_watermark: 0.9}}", "memory.controller.write_low_watermark",
     "0 <= write_low_watermark < write_high_watermark <= 1"),
    ("{preset: HBM3_6400, controller: {write_high_watermark: 1.5}}", "memory.controller.write_high_watermark",
     "expected a number between 0 and 1, got 1.5"),
    ("{preset: HBM3_6400, controller: {read_queue: 1}}", "memory.controller.read_queue",
     "must hold at least one line"),
    ("{preset: HBM3_6400, controller: {row_policy: shut}}", "memory.controller.row_policy",
     "expected one of open, closed, timeout, got 'shut'"),
    ("{preset: HBM3_6400, controller: {posted_writes: 'yes please'}}", "memory.controller.posted_writes",
     "expected true or false"),
    ("{preset: DDR4_3200, controller: {refresh: per-bank}}", "memory.controller.refresh",
     "per-bank refresh needs tRFCpb and tREFIpb"),
    ("{preset: HBM3_6400, controller: {row_policy: timeout}}", "memory.controller.row_timeout",
     "needs a positive row_timeout"),
    ("{preset: HBM3_6400, mapping: {scheme: rorabgbachco}}", "memory.mapping.scheme", "has no 'pc' field"),
    ("{preset: HBM3_6400, mapping: {scheme: RoBaXyCo}}", "memory.mapping.scheme", "unknown level 'Xy'"),
    ("{preset: HBM3_6400, mapping: {scheme: custom, bit_order: [co, ch]}}", "memory.mapping.bit_order",
     "field 'ch' needs 4 bits for this organisation, got 1"),
    ("{preset: HBM3_6400, mapping: {bit_order: [co, zz]}}", "memory.mapping.bit_order[1]",
     "unknown address field 'zz'"),
    ("{preset: HBM3_6400, energy: {act: 900}}", "memory.energy.act", "expected an energy like '3.5pJ', got 900"),
    ("{preset: HBM3_6400, energy: {read_per_bit: 3W}}", "memory.energy.read_per_bit",
     "expected an energy per bit like '3.48pJ'"),
    ("{preset: HBM3_6400, line_bytes: 64}", "memory.line_bytes", "expected a size like '2KiB', got 64"),
    ("{preset: HBM3_6400, line_bytes: 48B}", "memory.line_bytes", "must be a power of two"),
    ("{preset: HBM3_6400, timing: [1, 2]}", "memory.timing", "expected a mapping of timing fields"),
    ("{preset: HBM3_6400, timing: {1: 2ns}}", "memory.timing.1", "keys must be strings, got 1"),
]


@pytest.mark.parametrize(("block", "path", "fragment"), ERROR_CASES)
def test_error_names_file_path_and_expectation(tmp_path: Path, block: str, path: str, fragment: str) -> None:
    file = write(tmp_path, f"name: t\nmemory: {block}\n")
    err = config_error(load_hw_config, file)
    assert err.file == str(file)
    assert err.path == path
    assert str(err).startswith(f"{file}: {path}: ")
    assert fragment in str(err)


def test_cross_field_error_blames_the_value_that_changed(tmp_path: Path) -> None:
    # The file raises tRP; the preset's tRC then violates tRC >= tRAS + tRP - tCK: blame the file's tRP.
    file = write(tmp_path, "memory: {preset: HBM3_6400, timing: {tRP: 20ns}}\n")
    err = config_error(load_hw_config, file)
    assert (err.file, err.path) == (str(file), "memory.timing.tRP")
    assert "tRC (45 ns) must be >= tRAS + tRP - 1 tCK (47.5 ns)" in str(err)
    # An override beats the file.
    err = config_error(load_hw_config, file, {"memory.timing.tRAS": "40ns", "memory.timing.tRP": "14ns"})
    assert (err.file, err.path) == ("<overrides>", "memory.timing.tRAS")


def test_tRC_allows_exactly_one_tck_short(tmp_path: Path) -> None:
    # HBM3_6400: tRAS 45 + tRP 26 = 71 nCK; 70 is allowed (datasheet rounding), 69 is not (ERROR_CASES).
    file = write(tmp_path, "memory: {preset: HBM3_6400, timing: {tRC: {nCK: 70}}}\n")
    assert load_hw_config(file).memory.timing.t_rc_ps == 70 * 625


def test_override_errors_name_overrides() -> None:
    path = REPO / "hw_configs" / "hbm3.yaml"
    err = config_error(load_hw_config, path, {"memory.timing.tRP": "14"})
    assert str(err).startswith("<overrides>: memory.timing.tRP: expected a duration like '14ns' or cycles")
    err = config_error(load_hw_config, path, {"memory.preset.x": 1})
    assert "cannot set 'memory.preset.x'" in str(err)
    err = config_error(load_hw_config, path, {"memory..x": 1})
    assert "expected a dotted path" in str(err)
    err = config_error(load_hw_config, path, {"memory.timing.tRP": "[1,"})
    assert "cannot parse override value" in str(err)


def test_yaml_syntax_error_reports_line(tmp_path: Path) -> None:
    file = write(tmp_path, """\
        name: x
        memory:
          preset: HBM3_6400
          timing:
            tRP: 14ns
           tRAS: 30ns
        """)
    err = config_error(load_hw_config, file)
    assert str(err).startswith(f"{file}: line 6, column ")
    assert "invalid YAML" in str(err)


def test_yaml_duplicate_key_reports_line(tmp_path: Path) -> None:
    file = write(tmp_path, "memory:\n  preset: HBM3_6400\n  preset: HBM2_2000\n")
    expected = f"{file}: line 3, column 3: invalid YAML: found duplicate key 'preset'"
    assert str(config_error(load_hw_config, file)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "expected a mapping with a 'memory' key, got null"),
     ("- 1\n- 2\n", "expected a mapping with a 'memory' key"),
     ("name: x\n", "memory: required key missing"),
     ("memory: {preset: HBM3_6400}\nextra: 1\n", "extra: unknown key 'extra'; allowed: name, memory"),
     ("name: [1]\nmemory: {preset: HBM3_6400}\n", "name: expected a non-empty string"),
     ("memory: 5\n", "memory: expected a mapping with 'preset'")],
)
def test_file_level_errors(tmp_path: Path, text: str, message: str) -> None:
    file = write(tmp_path, text)
    err = config_error(load_hw_config, file)
    assert str(err).startswith(f"{file}: ") and message in str(err)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert str(config_error(load_hw_config, tmp_path / "nope.yaml")).endswith("nope.yaml: file not found")
    assert "is a directory" in str(config_error(load_hw_config, tmp_path))
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00memory")
    assert "not UTF-8" in str(config_error(load_hw_config, bad))


# ---------------------------------------------------------------------------------------------------
# Property test: anything given to the loader yields a DramConfig or a ConfigError, nothing else
# ---------------------------------------------------------------------------------------------------

VALID_BLOCK = {
    "preset": "HBM3_6400",
    "organization": {"channels": 16, "rows": 16384},
    "timing": {"tRP": "16.25ns", "tRCDRD": {"nCK": 31}, "tCK": "0.625ns"},
    "controller": {"read_queue": 32, "row_policy": "open", "write_low_watermark": 0.2},
    "mapping": {"scheme": "mop4clxor", "channel_interleave_bits": 1},
    "energy": {"act": "900pJ", "read_per_bit": "3.48pJ/bit", "source": "x"},
    "line_bytes": "64B",
}

SECTION_KEYS = {
    "organization": ["channels", "pseudo_channels", "ranks", "bank_groups", "banks_per_group", "rows", "columns",
                     "bus_width_bits", "burst_length", "data_rate", "density_gbit"],
    "timing": list(TIMING_YAML_NAMES),
    "controller": ["read_queue", "write_queue", "write_high_watermark", "write_low_watermark", "scheduler",
                   "frfcfs_cap", "row_policy", "row_timeout", "refresh", "refresh_level", "refresh_stagger",
                   "separate_row_column_bus", "posted_writes", "read_from_write_queue", "precharge_guard"],
    "mapping": ["scheme", "bit_order", "channel_interleave_bits"],
    "energy": ["act", "read_per_bit", "write_per_bit", "refresh", "background_per_channel", "source"],
}
PATHS = [(s, k) for s, keys in SECTION_KEYS.items() for k in keys] + [
    ("preset",), ("line_bytes",), ("organization",), ("timing",), ("controller",), ("mapping",), ("energy",),
    ("bogus",), ("timing", "tRCD"), ("timing", "tRP", "nCK"), ("mapping", "bit_order", "x")]

INTERESTING = ["14ns", "0.625ns", "0.1ps", "-1ns", "1e40ns", "16nCK", "0nCK", "6.4Gbps", "0bps", "64B", "2KiB",
               "3pJ", "1mW", "open", "closed", "timeout", "per-bank", "none", "pseudo_channel", "frfcfs", "fcfs",
               "RoBaRaCoCh", "rorabgbachpcco", "custom", "mop4clxor", "HBM3_6400", "DDR4_3200", "co", "ch", ""]
leaves = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.integers(-3, 70000),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=10), st.sampled_from(INTERESTING),
    st.fixed_dictionaries({"nCK": st.one_of(st.integers(-3, 10**7), st.floats(), st.text(max_size=3))}),
    st.sampled_from([1, 2, 4, 8, 16, 32, 1024, 8192, 0.5, 0.8]),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.text(max_size=5), st.sampled_from(["nCK", "tRP", "preset"]),
                                                      st.integers(0, 3)), inner, max_size=3)),
    max_leaves=6,
)
DELETE = object()


def _mutate(block: dict, path: tuple, value: object) -> None:
    node = block
    for key in path[:-1]:
        if not isinstance(node, dict):
            return
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else node[key]
    if isinstance(node, dict):
        if value is DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value


def _check_result(cfg: DramConfig) -> None:
    assert isinstance(cfg, DramConfig)
    o = cfg.organization
    assert o.channels > 0 and o.row_bytes % o.transaction_bytes == 0
    assert cfg.timing.t_ck_ps > 0 and cfg.timing.t_refi_ps > cfg.timing.t_rfc_ps
    assert 0 <= cfg.controller.write_low_watermark < cfg.controller.write_high_watermark <= 1
    assert math.isfinite(cfg.energy.act_pj)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(values, st.just(DELETE))), max_size=4))
def test_property_mutated_config_loads_or_raises_config_error(mutations: list) -> None:
    block = copy.deepcopy(VALID_BLOCK)
    for path, value in mutations:
        _mutate(block, path, value)
    try:
        cfg = load_dram_config(block, file="fuzz.yaml", prefix="memory")
    except ConfigError as err:
        assert str(err).startswith("fuzz.yaml") or err.file in ("fuzz.yaml", None) or err.file.startswith("memsim/")
        return
    _check_result(cfg)


@settings(max_examples=200, deadline=None)
@given(st.one_of(values, st.dictionaries(st.sampled_from(["preset", "timing", "organization", "controller", "x"]),
                                         values, max_size=4)))
def test_property_random_block_loads_or_raises_config_error(block: object) -> None:
    try:
        cfg = load_dram_config(block)  # type: ignore[arg-type]
    except ConfigError:
        return
    _check_result(cfg)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(
    st.text(max_size=200),
    st.builds(lambda body, junk: f"name: x\nmemory:\n  preset: HBM3_6400\n  timing: {{{body}}}\n{junk}",
              st.text(alphabet="tRPCK:{}[], 0123456789nsNC.-'\"", max_size=30),
              st.text(alphabet=" :-[]{}&*!|>#\n\tab", max_size=20)),
))
def test_property_random_yaml_text(tmp_path: Path, text: str) -> None:
    file = tmp_path / "fuzz.yaml"
    file.write_text(text, encoding="utf-8")
    try:
        hw = load_hw_config(file)
    except ConfigError as err:
        assert err.file == str(file)
        return
    _check_result(hw.memory)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(
    st.one_of(st.sampled_from(["memory.timing.tRP", "memory.timing.tCK", "memory.organization.channels",
                               "memory.preset", "memory.controller.read_queue", "name", "memory", "memory.timing",
                               "memory.timing.tRP.nCK", "memory.x.y", "", "a..b"]), st.text(max_size=8)),
    st.one_of(values, st.text(max_size=12)), max_size=3))
def test_property_random_overrides(overrides: dict) -> None:
    try:
        hw = load_hw_config(REPO / "hw_configs" / "hbm3.yaml", overrides)
    except ConfigError:
        return
    _check_result(hw.memory)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["BASE", "X", "Y"]),
                       st.dictionaries(st.sampled_from(["inherits", "source", "standard", "timing", "organization",
                                                        "zz"]),
                                       st.one_of(st.sampled_from(["BASE", "X", "Y", "HBM3"]), values), max_size=4),
                       max_size=3))
def test_property_random_preset_library(extra: dict) -> None:
    import yaml

    try:
        text = yaml.safe_dump(extra)
    except yaml.YAMLError:
        return
    try:
        lib = _PresetLibrary([("base.yaml", BASE_PRESET if "BASE" not in extra else ""), ("fuzz.yaml", text)])
        for name in lib.names():
            _check_result(lib.get(name))
    except ConfigError:
        return


def test_two_queue_structures_are_rejected(tmp_path):
    cfg = tmp_path / "q.yaml"
    cfg.write_text("memory:\n  preset: HBM3_6400\n  controller: {active_buffer: 32, bank_queue_depth: 8}\n")
    with pytest.raises(ConfigError, match=r"q\.yaml: memory\.controller\.bank_queue_depth: active_buffer"):
        load_hw_config(cfg)


def test_queues_beyond_the_kernels_entry_index_are_rejected(tmp_path):
    from memsim.config.loader import MAX_QUEUE_ENTRIES
    from memsim.dram import kernel as K

    assert MAX_QUEUE_ENTRIES == 1 << K.QSHIFT  # the loader's limit is the kernel's packed index width
    cfg = tmp_path / "q.yaml"
    cfg.write_text(f"memory:\n  preset: HBM3_6400\n  controller: {{read_queue: {MAX_QUEUE_ENTRIES}}}\n")
    with pytest.raises(ConfigError, match=r"q\.yaml: memory\.controller\.read_queue: the queues of one channel"):
        load_hw_config(cfg)
    cfg.write_text("memory:\n  preset: HBM3_6400\n  controller: {read_queue: 4096, write_queue: 4096}\n")
    assert load_hw_config(cfg).memory.controller.read_queue == 4096  # large but representable: accepted
