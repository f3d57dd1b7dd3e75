"""FlashAttention-style tiling: exact traffic of the tiling, the I/O bound Θ(N² d² / M) with constant 12 over a
grid, scaling exponents, SRAM capacity of the tiles, causal masking, and the flash-attention policy."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memsim.errors import ConfigError
from memsim.policies import get_policy
from memsim.policies.flash_attention import (IO_CONSTANT, STAT_BYTES, footprint, io_bound_elements, io_bound_grid,
                                             standard_traffic_elements, tile_sizes, tiled_traffic)
from memsim.system.api import run_point

REPO = Path(__file__).resolve().parents[1]
A100 = str(REPO / "hw_configs" / "a100_80gb.yaml")
E = 2


@pytest.mark.parametrize("n", [257, 1024, 4096])
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("k", [1, 3, 16])
def test_traffic_of_the_tiling_exactly(n, d, k):
    """Algorithm 1: K, V read once; per outer K/V block Q_i, O_i, l_i, m_i read and O_i, l_i, m_i written;
    O, l, m initialised once."""
    m = k * d * d
    t = tiled_traffic(n, n, d, m * E, E)
    bc = min(m // (4 * d), n)
    assert t.bc == bc and t.tc == -(-n // bc)
    tc = t.tc
    assert t.kv_read_bytes == 2 * n * d * E
    assert t.q_o_read_bytes == tc * n * (2 * d * E + 2 * STAT_BYTES)
    assert t.write_bytes == (1 + tc) * n * (d * E + 2 * STAT_BYTES)
    assert t.total_bytes == E * n * d * (3 + 3 * tc) + 2 * STAT_BYTES * n * (1 + 2 * tc)


def test_io_bound_constant_over_the_grid():
    """traffic / (12 N² d² / M): the leading term is 3 N d elements per outer block times T_c = 4 N d / M blocks;
    the rest is 3 N d (K, V once, O initialised: 1/T_c relative) and the fp32 statistics l, m read and written
    per outer block (16 / (3 d e) relative)."""
    rows = io_bound_grid(E)
    assert len(rows) >= 20
    for r in rows:
        tc, d = r["tc"], r["d"]
        assert r["ratio"] == pytest.approx((1 + 1 / tc) + 16 / (3 * d * E) * (1 + 1 / (2 * tc)), rel=1e-12), r
    # the constant is 12, not something else: at large T_c the ratio is 1 + the statistics' share (< 5 %)
    big = [r for r in rows if r["tc"] >= 256]
    assert big and all(1 < r["ratio"] < 1 + 16 / (3 * r["d"] * E) + 2 / 256 for r in big)
    assert all(r["ratio"] < 1.3 for r in rows)  # M <= N d / 4 keeps T_c >= 16
    assert IO_CONSTANT == 12.0


def test_scaling_exponents():
    d, n = 64, 16384

    def traffic(n_, d_, m_):
        return tiled_traffic(n_, n_, d_, m_ * E, E).total_bytes

    slope = lambda f, a, b: np.log(f(b) / f(a)) / np.log(b / a)  # noqa: E731
    assert slope(lambda x: traffic(int(x), d, 4 * d * d), n / 2, n) == pytest.approx(2, abs=0.01)
    assert slope(lambda x: traffic(n, d, int(x)), 4 * d * d, 8 * d * d) == pytest.approx(-1, abs=0.01)
    assert slope(lambda x: traffic(n, int(x), 4 * 128 * 128), 64, 128) == pytest.approx(2, abs=0.05)
    # standard attention is Θ(N d + N²): independent of M, quadratic in N
    assert standard_traffic_elements(2 * n, d) / standard_traffic_elements(n, d) == pytest.approx(4, rel=0.01)


@pytest.mark.parametrize("d", [32, 64, 128, 256])
@pytest.mark.parametrize("mult", [1.0, 1.5, 2.0, 7.3, 64.0])
def test_tiles_fit_the_sram(d, mult):
    sram = int(mult * d * d * E)
    bc, br = tile_sizes(d, sram, E)
    assert bc == sram // E // (4 * d) and 1 <= br <= min(bc, d)
    assert footprint(d, bc, br, E) <= sram
    # Br is as large as fits
    assert br == min(bc, d) or footprint(d, bc, br + 1, E) > sram
    t = tiled_traffic(4096, 4096, d, sram, E)
    assert t.footprint_bytes == footprint(d, t.bc, t.br, E) <= sram


def test_sram_below_d_squared_is_refused():
    with pytest.raises(ConfigError, match="policy.sram: .*below d\\^2"):
        tile_sizes(128, 128 * 128 * E - 2, E)


def test_causal_masking_halves_the_quadratic_term():
    n, d, m = 16384, 64, 4 * 64 * 64
    full = tiled_traffic(n, n, d, m * E, E)
    causal = tiled_traffic(n, n, d, m * E, E, causal=True)
    assert causal.kv_read_bytes == full.kv_read_bytes
    quad_full = full.q_o_read_bytes
    quad_causal = causal.q_o_read_bytes
    # for K/V block j only the Q blocks from the one holding key j * Bc onwards are loaded
    rows = sum(n - (j * full.bc) // full.br * full.br for j in range(full.tc))
    assert quad_causal == rows * (2 * d * E + 2 * STAT_BYTES)
    assert quad_causal / quad_full == pytest.approx(0.5, abs=0.01)
    # causal constant 6 (plus the statistics' share, as non-causal)
    assert causal.total_bytes / E / io_bound_elements(n, d, m, IO_CONSTANT / 2) == \
        pytest.approx(1 + 16 / (3 * d * E) + 2 / full.tc, abs=0.01)  # + the 3 N d terms (2/T_c of the causal half)


def test_tiling_beats_standard_attention_only_when_m_is_well_above_d_squared():
    n, d = 4096, 64
    std = standard_traffic_elements(n, d)
    assert tiled_traffic(n, n, d, d * d * E, E).total_bytes / E > std  # M = d²: 12 N² > 4 N²
    assert tiled_traffic(n, n, d, 64 * d * d * E, E).total_bytes / E < std / 10


def test_policy_fuses_attention_with_the_tiled_traffic():
    ov = {"workload.prompt_tokens": 64, "workload.generated_tokens": 2}
    base = run_point(A100, "gpt2", overrides=ov)
    fa = run_point(A100, "gpt2", policy="flash-attention", overrides=ov)
    o, b = fa.ops, base.ops
    kinds = o["kind"].to_numpy()
    att = np.isin(kinds, ["attn_score", "softmax", "attn_av"])
    assert (o.loc[np.isin(kinds, ["softmax", "attn_av"]), "bytes"] == 0).all()
    m = fa.metrics()
    assert o["bytes"].to_numpy()[att].sum() == m["policy_attention_hbm_bytes_tiled"]
    assert b["bytes"].to_numpy()[att].sum() == m["policy_attention_hbm_bytes_unfused"]
    # everything else is untouched
    np.testing.assert_array_equal(o["bytes"].to_numpy()[~att], b["bytes"].to_numpy()[~att])
    # prefill score op of layer 0: per query head (12 of them), causal tiling of 64 queries x 64 keys, d = 64
    i = int(np.flatnonzero((kinds == "attn_score") & (o["step"].to_numpy() == 0))[0])
    t = tiled_traffic(64, 64, 64, 192 * 1024, E, causal=True)
    assert o.loc[i, "bytes"] == 12 * t.total_bytes
    # decode: one query row per head (GPT-2 has no GQA), 65 keys
    j = int(np.flatnonzero((kinds == "attn_score") & (o["step"].to_numpy() == 1))[0])
    assert o.loc[j, "bytes"] == 12 * tiled_traffic(1, 65, 64, 192 * 1024, E).total_bytes
    # fused kernels: softmax and P.V pay no overhead
    assert (fa.plan.op_overrides["overhead_ps"][np.isin(kinds, ["softmax", "attn_av"])] == 0).all()
    with pytest.raises(ConfigError, match="policy.sram: expected"):
        get_policy("flash-attention", {"sram": "lots"})


def test_structural_check_before_any_trace():
    from memsim.system.api import resolve_point

    with pytest.raises(ConfigError, match="policy.sram: .*below d\\^2 = 4096"):
        resolve_point(A100, "gpt2", policy="flash-attention", overrides={"policy.sram": "4KiB"})
    fa_hw = str(REPO / "hw_configs" / "a100_80gb_flash_attention.yaml")
    assert resolve_point(fa_hw, "gpt2")["policy"] == {"name": "flash-attention", "params": {"sram": "192KiB"}}
