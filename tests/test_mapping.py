"""Address mappings reproduce the bit layouts of the reference simulators exactly.

Expected layouts are the ones listed in the reference README ("The same mappings as bit positions"),
copied here so that the tests stand alone.
"""
import numpy as np
import pytest

from memsim.config import get_preset
from memsim.config.schema import AddressMapping
from memsim.dram.mapping import FIELDS, compile_mapping


def layout(preset: str) -> dict[str, list[tuple[int, ...]]]:
    """For each field, the set of address bits that flip each of its output bits (LSB first)."""
    cfg = get_preset(preset)
    cm = compile_mapping(cfg.mapping, cfg.organization)
    base = cm.decode(np.zeros(1, dtype=np.uint64))
    out: dict[str, list[set[int]]] = {f: [set() for _ in range(64)] for f in FIELDS}
    for bit in range(cm.address_bits):
        d = cm.decode(np.array([1 << bit], dtype=np.uint64))
        for f in FIELDS:
            diff = int(d[f][0] ^ base[f][0])
            for ob in range(64):
                if diff >> ob & 1:
                    out[f][ob].add(bit)
    return {f: [tuple(sorted(s)) for s in v if s] for f, v in out.items()}


def test_dramsim3_hbm2_rorabgbachco():
    lay = layout("DRAMSim3_HBM2_8Gb_x128")
    assert lay["co"] == [(b,) for b in range(6, 11)]
    assert lay["ch"] == [(b,) for b in range(11, 14)]
    assert lay["ba"] == [(14,), (15,)]
    assert lay["bg"] == [(16,), (17,)]
    assert lay["ro"] == [(b,) for b in range(18, 33)]


def test_ramulator2_hbm2_mop4clxor():
    lay = layout("Ramulator2_HBM2_4Gb_2000Mbps_8ch")
    assert lay["ch"] == [(6,), (7,), (8,)]
    assert lay["pc"] == [(5, 10)]  # bit 10 XOR bit 5
    assert lay["co"] == [(5,), (9,), (15,), (16,), (17,)]  # column = bits 15-17 : 9 : 5
    assert lay["bg"] == [(9, 11), (12, 15)]  # bits 11-12 XOR (bit 15, bit 9)
    assert lay["ba"] == [(13, 16), (14, 17)]  # bits 13-14 XOR bits 16-17
    assert lay["ro"] == [(b,) for b in range(18, 33)]


def test_ramulator2_hbm3_mop4clxor():
    lay = layout("Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch")
    assert lay["ch"] == [(6,), (7,), (8,), (9,)]
    assert lay["pc"] == [(5, 11)]
    assert lay["ra"] == [(10, 12)]  # SID = bit 12 XOR bit 10
    assert lay["co"] == [(5,), (10,), (17,), (18,), (19,)]
    assert lay["bg"] == [(13, 17), (14, 18)]
    assert lay["ba"] == [(15, 19), (16,)]  # low bank bit XOR bit 19
    assert lay["ro"] == [(b,) for b in range(20, 33)]


@pytest.mark.parametrize("preset", ["DRAMSim3_DDR4_8Gb_x8_2400", "Ramulator2_DDR4_8Gb_x8_2400U"])
def test_ddr4_layouts(preset):
    lay = layout(preset)
    assert lay["co"] == [(b,) for b in range(6, 13)]
    assert lay["bg"] == [(13,), (14,)]
    assert lay["ba"] == [(15,), (16,)]
    assert lay["ro"] == [(b,) for b in range(17, 33)]
    assert lay["ch"] == [] and lay["ra"] == []


def test_mapping_is_a_bijection_on_small_space():
    """Every transaction address below capacity maps to a distinct (ch, pc, ra, bg, ba, ro, co)."""
    cfg = get_preset("Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch")
    cm = compile_mapping(cfg.mapping, cfg.organization)
    tx = np.arange(1 << 20, dtype=np.uint64) << np.uint64(cm.offset_bits)
    d = cm.decode(tx)
    rows = np.stack([d[f] for f in FIELDS], axis=1)
    assert np.unique(rows, axis=0).shape[0] == tx.size


def test_custom_and_bad_schemes():
    cfg = get_preset("DRAMSim3_DDR4_8Gb_x8_2400")
    order = tuple(["co"] * 7 + ["ba"] * 2 + ["bg"] * 2 + ["ro"] * 16)
    cm = compile_mapping(AddressMapping("custom", order), cfg.organization)
    d = cm.decode(np.array([1 << 13], dtype=np.uint64))
    assert d["ba"][0] == 1 and d["bg"][0] == 0
    with pytest.raises(ValueError, match="needs 7 bits"):
        compile_mapping(AddressMapping("custom", order[1:]), cfg.organization)
    with pytest.raises(ValueError, match="unknown field"):
        compile_mapping(AddressMapping("roxxbabgco"), cfg.organization)


@pytest.mark.parametrize("preset", ["DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                                    "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch", "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch_RoBaRaCoCh",
                                    "DRAMSim3_DDR4_8Gb_x8_2400", "HBM3_6400", "DDR5_4800", "LPDDR5_6400"])
def test_jitted_decode_matches_numpy_reference(preset):
    """The engine's one-pass jitted decoder gives the fields of the vectorised NumPy decoder."""
    from memsim.dram.engine import DramEngine

    eng = DramEngine(get_preset(preset))
    org = eng.cfg.organization
    rng = np.random.default_rng(7)
    addr = rng.integers(0, eng.capacity, 4096, dtype=np.uint64)
    ch, bank, row, txa = eng.decode(addr)
    line = np.uint64(eng.cfg.line_bytes)
    tx = ((addr // line) * line)[:, None] + \
        (np.arange(eng.tx_per_req, dtype=np.uint64) * np.uint64(org.transaction_bytes))[None, :]
    tx = tx.reshape(-1)
    d = eng.mapping.decode(tx)
    flat = (((d["ch"] * org.pseudo_channels + d["pc"]) * org.ranks + d["ra"]) * org.bank_groups
            + d["bg"]) * org.banks_per_group + d["ba"]
    assert np.array_equal(ch, d["ch"]) and np.array_equal(bank, flat) and np.array_equal(row, d["ro"])
    assert np.array_equal(txa, (tx >> np.uint64(eng.mapping.offset_bits)).astype(np.int64))
