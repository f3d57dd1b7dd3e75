"""The PIM kernel against its cycle-by-cycle twin on random small command streams."""
import dataclasses
import zlib

import numpy as np
import pytest

from memsim.pim import commands as C
from memsim.pim.commands import compile_pim
from memsim.pim.config import get_pim_preset
from memsim.pim.kernel import run

from pim_twin import run_twin


def _random_streams(rng, cp, n_streams, n_cmds):
    nb, bpg = cp.banks, cp.banks_per_group
    cmds, first, stride, count, row = [], [], [], [], []
    starts = [0]
    for _ in range(n_streams):
        for _ in range(int(rng.integers(1, n_cmds))):
            c = int(rng.integers(0, C.N_CMDS))
            if c in (C.ACT_SB, C.PRE_SB, C.MAC_SB, C.RD_SB, C.WR_SB):
                f, st, n = int(rng.integers(0, nb)), 1, 1
            elif c == C.ACT_BG:
                f, st, n = int(rng.integers(0, nb // bpg)) * bpg, 1, bpg
            elif c in (C.ACT_AB, C.PRE_AB, C.MAC_AB, C.ST_AB):
                step = int(rng.choice([1, 2, 4]))
                f, st, n = int(rng.integers(0, step)), step, nb // step
            else:  # PC-level commands carry no banks
                f, st, n = 0, 1, 0
            cmds.append(c)
            first.append(f)
            stride.append(st)
            count.append(n)
            row.append(int(rng.integers(0, 4)))
        starts.append(len(cmds))
    return [np.array(a, dtype=np.int64) for a in (cmds, first, stride, count, row, starts)]


@pytest.mark.parametrize("preset", ["PIMSimulator_HBM2_64PC", "GDDR6_AiM", "AttAcc_HBM3_PIM"])
@pytest.mark.parametrize("variant", ["plain", "refresh", "window"])
def test_kernel_matches_twin_on_random_streams(preset, variant):
    cfg = get_pim_preset(preset)
    cp = compile_pim(cfg, cfg.device.dtypes[0])
    par = cp.par.copy()
    if variant == "refresh":  # frequent refreshes so that many streams cross several of them
        par[C.P_REFI], par[C.P_RFC] = 2 * (int(par[C.P_RP]) + 40 + int(cp.rules[:, 3].max())) + 1, 40
    elif variant == "window":
        par[C.P_FAW_LIMIT], par[C.P_FAW] = 4, 24
        par[C.P_REFRESH] = 0
    cp = dataclasses.replace(cp, par=par)
    rng = np.random.default_rng(zlib.crc32(f"{preset}:{variant}".encode()))
    total = 0
    for _ in range(12):
        streams = _random_streams(rng, cp, 3, 40)
        issue, stats = run(cp, *streams)
        t_issue, t_stats = run_twin(cp, *streams)
        assert issue.tolist() == t_issue
        assert [tuple(r) for r in stats.tolist()] == t_stats
        total += stats[:, 1].sum() if variant == "refresh" else 0
    if variant == "refresh":
        assert total > 0  # the refresh path was exercised


def test_kernel_refuses_a_refresh_interval_that_cannot_make_progress():
    cfg = get_pim_preset("GDDR6_AiM")
    cp = compile_pim(cfg, "bf16")
    par = cp.par.copy()
    par[C.P_REFI] = 150
    a = [np.array(v, dtype=np.int64) for v in ([C.MAC_SB], [0], [1], [1], [0], [0, 1])]
    with pytest.raises(ValueError, match="tREFI"):
        run(dataclasses.replace(cp, par=par), *a)


def test_kernel_rejects_bank_outside_pc():
    cfg = get_pim_preset("GDDR6_AiM")
    cp = compile_pim(cfg, "bf16")
    a = [np.array(v, dtype=np.int64) for v in ([C.MAC_SB], [99], [1], [1], [0], [0, 1])]
    with pytest.raises(ValueError, match="outside"):
        run(cp, *a)


def test_disk_cache_key_follows_the_command_layout():
    """Numba files a cached build under kernel.py's source and the signature: the layout of commands.py (whose
    constants the kernel compiles in) must be in the signature, or an edit of commands.py alone would load a
    build that reads ``par`` at old indices."""
    from numba import types

    from memsim.pim import kernel as K

    assert C.P_RULES_OF in K.PIM_LAYOUT and C.MAC_AB in K.PIM_LAYOUT
    cp = compile_pim(get_pim_preset("GDDR6_AiM"), "bf16")
    run(cp, *[np.array(v, dtype=np.int64) for v in ([C.MAC_SB], [0], [1], [1], [0], [0, 1])])
    omitted = [t for sig in K.run_streams.signatures for t in sig if isinstance(t, types.Omitted)]
    assert [t.value for t in omitted] == [K.PIM_LAYOUT]


def test_window_spaces_group_activates_by_tfaw():
    """Four bank-group activates of 4 banks under a 4-bank window issue one tFAW apart."""
    cfg = get_pim_preset("GDDR6_AiM")
    cp = compile_pim(cfg, "bf16")
    assert cfg.power.act_window_banks == 4
    faw = int(cp.par[C.P_FAW])
    cmd = [C.ACT_BG] * 4
    a = [np.array(v, dtype=np.int64) for v in (cmd, [0, 4, 8, 12], [1] * 4, [4] * 4, [0] * 4, [0, 4])]
    issue, _ = run(cp, *a)
    assert np.diff(issue).tolist() == [faw] * 3


@pytest.mark.parametrize("preset, layout", [("PIMSimulator_HBM2_64PC", "tile_per_bank"), ("GDDR6_AiM", "pimgpt"),
                                            ("AttAcc_HBM3_PIM", "colsplit")])
def test_kernel_matches_twin_on_lowered_gemvs(preset, layout):
    """Real command streams (with the presets' own refresh) give the same issue cycles in both models."""
    from memsim.pim.lowering import lower_gemv

    cfg = get_pim_preset(preset)
    dt = cfg.device.dtypes[0]
    cp = compile_pim(cfg, dt)
    prog = lower_gemv(cfg, 8 * cfg.n_pcs * cfg.units_per_pc, 2048, dtype=dt, layout=layout)
    streams = (prog.cmd, prog.first, prog.stride, prog.count, prog.row, prog.starts)
    issue, stats = run(cp, *streams)
    t_issue, t_stats = run_twin(cp, *streams)
    assert issue.tolist() == t_issue
    assert [tuple(r) for r in stats.tolist()] == t_stats
    assert (np.diff(issue[prog.starts[0]:prog.starts[1]]) > 0).all()  # in order, one per cycle at most
    assert stats[:, 1].sum() >= 1  # long enough to cross a refresh
