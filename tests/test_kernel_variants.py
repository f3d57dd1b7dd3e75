"""The specialised builds of the DRAM kernel give exactly the generic kernel's results.

Each build is the same source with the controller structure fixed as constants
(``memsim.dram.kernel.kernel_for``); these tests replay mixed traces through each specialised build and
through the generic one and compare every figure and every completion cycle.
"""

import numpy as np
import pytest

from memsim.config import get_preset, load_dram_config
from memsim.dram import kernel as K
from memsim.dram.engine import DramEngine, Requests
from memsim.traces import synthetic

# one configuration per specialised structure (with refresh and a read/write mix, so that write drain,
# forwarding and refresh all run)
BY_KEY = {
    (1, 0, 0, 0, 1): "DRAMSim3_HBM2_8Gb_x128",
    (0, 1, 0, 0, 1): "Ramulator2_DDR4_8Gb_x8_2400U",
    (0, 1, 0, 0, 2): "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch",
    (0, 0, 1, 0, 2): "HBM3_6400",
}

REFERENCE_PRESETS = ["DRAMSim3_HBM2_8Gb_x128", "DRAMSim3_DDR4_8Gb_x8_2400", "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
                     "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch", "Ramulator2_DDR4_8Gb_x8_2400U", "HBM3_6400",
                     "HBM2_2000"]


def test_every_specialised_structure_is_tested():
    assert set(BY_KEY) == set(K.SPECIALISED)


@pytest.mark.parametrize("preset", REFERENCE_PRESETS)
def test_benchmarked_presets_run_a_specialised_build(preset):
    eng = DramEngine(get_preset(preset))
    assert K.structure_key(eng.timing.par) in K.SPECIALISED
    assert eng.kernel is not K.kernel_for(eng.timing.par, generic=True)


def test_other_structures_run_the_generic_build():
    cfg = load_dram_config({"preset": "HBM3_6400", "controller": {"row_policy": "timeout", "row_timeout": "100ns"}})
    eng = DramEngine(cfg)
    assert K.structure_key(eng.timing.par)[3] == 1
    assert eng.kernel is K.kernel_for(eng.timing.par, generic=True)


def _mixed(n: int, seed: int):
    rng = np.random.default_rng(seed)
    seq_a, _ = synthetic.seq(n)
    rand_a = rng.integers(0, 1 << 28, n, dtype=np.uint64) & ~np.uint64(63)
    addr = np.where(rng.random(n) < 0.5, seq_a, rand_a).astype(np.uint64)
    return addr, rng.random(n) < 0.3


@pytest.mark.parametrize("key", sorted(BY_KEY))
@pytest.mark.parametrize("queue_depth", [0, 4])
def test_specialised_build_matches_generic(key, queue_depth):
    cfg = get_preset(BY_KEY[key])
    addr, w = _mixed(6000, seed=sum(key) + queue_depth)
    spec = DramEngine(cfg)
    assert K.structure_key(spec.timing.par) == key
    gen = DramEngine(cfg)
    gen.kernel = K.kernel_for(gen.timing.par, generic=True)
    assert gen.kernel is not spec.kernel
    a = spec.run(Requests(addr, w), queue_depth=queue_depth, record_requests=len(addr))
    b = gen.run(Requests(addr, w), queue_depth=queue_depth, record_requests=len(addr))
    assert np.array_equal(a.completion_cycles, b.completion_cycles)
    assert a.to_dict() == b.to_dict()
    assert a.controller_decisions == b.controller_decisions


def _closure_values(dispatcher):
    return [cell.cell_contents for cell in dispatcher.py_func.__closure__]


def test_disk_cache_key_follows_the_timing_layout(monkeypatch):
    """Numba keys a cached build on kernel.py's source and the kernel's closure values, not on the constants
    it imports from timing.py: the layout must be a closure value, so that editing timing.py alone (a new
    ``par`` index) rebuilds the kernel rather than loading a build that reads ``par`` at the old indices."""
    from memsim.dram import timing

    assert K.TIMING_LAYOUT
    assert timing.P_RULES_OF in K.TIMING_LAYOUT and timing.P_BQD in K.TIMING_LAYOUT
    key = sorted(K.SPECIALISED)[0]
    before = _closure_values(K._build_kernel(*key, K.ARENA_LOG2))
    assert K.TIMING_LAYOUT in before
    monkeypatch.setattr(K, "TIMING_LAYOUT", K.TIMING_LAYOUT[:-1] + (K.TIMING_LAYOUT[-1] + 1,))
    after = _closure_values(K._build_kernel(*key, K.ARENA_LOG2))
    assert after != before  # hence another cache key: the build is compiled afresh


def test_layout_changes_with_any_constant():
    import types

    from memsim.jitcache import layout_of

    mod = types.ModuleType("m")
    mod.P_A, mod.P_B, mod.lower, mod.NAME = 0, 1, 7, "x"
    base = layout_of(mod)
    assert base == (0, 1)  # upper-case integers only, in name order
    mod.P_B = 2
    assert layout_of(mod) != base
    mod.P_B, mod.P_C = 1, 2
    assert layout_of(mod) != base


# The arena (``K.ARENA_REGIONS``): one int64 array holding every array the kernel uses, each in its own
# region at an offset that is a constant of the build.

def test_arena_regions_hold_the_state_and_do_not_overlap():
    from memsim.dram.engine import KernelState

    for preset in ("DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch", "DDR5_4800"):
        eng = DramEngine(get_preset(preset))
        st = KernelState(eng.cfg, eng.timing)
        offsets = K.arena_offsets(st.region_log2)
        spans = []
        for name in K.ARENA_REGIONS:
            view = getattr(st, name)
            assert view.base is st.arena or view.size == 0, name  # the kernel sees what the engine reads
            start = (view.__array_interface__["data"][0] - st.arena.__array_interface__["data"][0]) // 8
            assert start == offsets[name], name
            if name != K.ARENA_REGIONS[-1]:
                assert view.size <= 1 << st.region_log2, name
            spans.append((start, start + view.size))
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
        assert np.array_equal(st.par, eng.timing.par) and np.array_equal(st.rules, eng.timing.rules)


def test_region_capacity_grows_past_the_default_only_where_needed():
    small = {name: 1000 for name in K.ARENA_REGIONS}
    assert K.region_log2_for(small) == K.ARENA_LOG2
    small[K.ARENA_REGIONS[-1]] = 10 ** 7  # the last region (the histogram) takes any size
    assert K.region_log2_for(small) == K.ARENA_LOG2
    big = dict(small, ring=(1 << K.ARENA_LOG2) + 1)
    assert K.region_log2_for(big) == K.ARENA_LOG2 + 1
    assert K.region_log2_for(dict(small, ring=1 << K.ARENA_LOG2)) == K.ARENA_LOG2
    step = K.arena_offsets(K.ARENA_LOG2 + 1)["par"] - K.arena_offsets(K.ARENA_LOG2 + 1)["S"]
    assert step == (1 << (K.ARENA_LOG2 + 1)) + K.ARENA_SKEW


def test_a_state_with_larger_regions_runs_the_build_for_them(monkeypatch):
    """The wrapper hands a state whose regions are larger than the build's to the build for that size
    (recorded here instead of compiled)."""
    eng = DramEngine(get_preset("DRAMSim3_HBM2_8Gb_x128"))
    asked = []

    def fake_kernel(key):
        asked.append(key)
        return lambda *args: len(args)

    monkeypatch.setattr(K, "_kernel", fake_kernel)
    st = type("State", (), {"region_log2": K.ARENA_LOG2 + 2})()
    assert eng.kernel(st, 1, 2, 3, 4, 5, 6, 7, 8) == 9
    assert asked == [K.structure_key(eng.timing.par) + (K.ARENA_LOG2 + 2,)]
