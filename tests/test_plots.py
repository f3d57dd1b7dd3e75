"""memsim plot: the standard figures (labels with units, legends) and the CLI writing PNG / SVG."""
from __future__ import annotations

import json

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from memsim.cli import main  # noqa: E402
from memsim.plots import (PlotError, energy_breakdown, latency_breakdown, metric_label, metric_vs_axis,  # noqa: E402
                          ops_from_chrome_trace, policy_comparison, roofline, timeline)
from memsim.results import write_run_folder  # noqa: E402


def sweep_table() -> pd.DataFrame:
    rows = []
    for i, (std, ch) in enumerate((s, c) for s in ("HBM2", "HBM3") for c in (8, 16, 32)):
        bw = ch * (16 if std == "HBM2" else 40)
        rows.append({"point": i, "hash": f"{i:016x}", "status": "ok", "memory.preset": std,
                     "memory.organization.channels": ch, "standard": std, "channels": ch, "bandwidth_GBps": bw,
                     "avg_read_latency_ns": 100.0 - ch, "energy_activate_uj": 1.0, "energy_read_uj": 2.0 * ch,
                     "energy_write_uj": 0.5, "energy_refresh_uj": 0.1, "energy_background_uj": 0.0,
                     "energy_total_uj": 1.6 + 2.0 * ch, "error": ""})
    rows.append({**rows[0], "point": 6, "hash": "f" * 16, "status": "failed", "memory.organization.channels": 64,
                 "bandwidth_GBps": np.nan, "error": "TraceError: boom"})
    t = pd.DataFrame(rows)
    t.attrs["memsim_axes"] = ["memory.preset", "memory.organization.channels"]
    return t


def ops_table() -> pd.DataFrame:
    return pd.DataFrame({
        "name": ["qkv", "score", "softmax", "ffn", "copy"], "kind": ["gemm", "attn", "softmax", "gemm", "transfer"],
        "unit": ["gpu", "gpu", "gpu", "npu", "link"], "phase": ["decode"] * 5,
        "start_ps": [0, 1_000_000, 3_000_000, 0, 500_000], "end_ps": [1_000_000, 3_000_000, 3_500_000, 4_000_000, 900_000],
        "flops": [2e9, 1e8, 1e6, 8e9, 0], "bytes": [1e7, 1e7, 1e6, 2e7, 1e6],
        "bytes_hbm": [1e7, 1e7, 1e6, 0, 0], "bytes_flash": [0, 0, 0, 2e7, 0]})


def test_metric_labels_carry_units():
    assert metric_label("p99_read_latency_ns") == "p99 read latency (ns)"
    assert metric_label("bandwidth_GBps") == "bandwidth (GB/s)"
    assert metric_label("energy_pj_per_bit") == "energy per bit (pJ/bit)"
    assert metric_label("tpot_s") == "TPOT (s)"
    assert metric_label("memory.organization.channels") == "channels"
    assert metric_label("avg_read_latency_ns") == "mean read latency (ns)"


def test_metric_vs_axis_lines_per_hue_and_failed_rows_dropped():
    fig = metric_vs_axis(sweep_table(), "channels", "bandwidth_GBps", "preset")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "channels" and ax.get_ylabel() == "bandwidth (GB/s)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["HBM2", "HBM3"]
    assert ax.get_legend().get_title().get_text() == "preset"
    assert [len(line.get_xdata()) for line in ax.get_lines()] == [3, 3]  # the failed 64-channel row is not drawn
    assert ax.get_xscale() == "log"  # powers of two
    with pytest.raises(PlotError, match="no metric 'bandwidth'"):
        metric_vs_axis(sweep_table(), "channels", "bandwidth")


def test_metric_vs_axis_folds_other_varying_axes_into_hue():
    fig = metric_vs_axis(sweep_table(), "channels", "avg_read_latency_ns")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["HBM2", "HBM3"]  # 'preset' varies, so it becomes the lines


def test_time_metrics_rescaled():
    t = pd.DataFrame({"point": [0, 1], "status": ["ok", "ok"], "batch": [1, 4], "tpot_s": [0.004, 0.005]})
    t.attrs["memsim_axes"] = ["batch"]
    ax = metric_vs_axis(t, "batch", "tpot_s").axes[0]
    assert ax.get_ylabel() == "TPOT (ms)"
    assert ax.get_lines()[0].get_ydata().tolist() == pytest.approx([4.0, 5.0])


def test_energy_breakdown_stacks_components():
    fig = energy_breakdown(sweep_table())
    ax = fig.axes[0]
    assert ax.get_ylabel() == "energy (µJ)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["activate", "read", "write", "refresh",
                                                                    "background"]
    assert len(ax.patches) == 5 * 6
    tops = sorted({round(p.get_y() + p.get_height(), 6) for p in ax.patches if p.get_facecolor()[:3] ==
                   ax.patches[-1].get_facecolor()[:3]})
    assert tops == pytest.approx(sorted(1.6 + 2.0 * c for c in (8, 16, 32)))


def test_latency_breakdown_by_kind_and_tier():
    fig = latency_breakdown({"a": ops_table(), "b": ops_table()}, by="kind")
    ax = fig.axes[0]
    assert "summed op time (µs)" in ax.get_ylabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gemm", "attn", "softmax", "transfer"]
    fig = latency_breakdown(ops_table(), by="tier")
    kinds = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    # ffn (4 µs) on flash, 3.5 µs of ops on hbm; the link copy moves bytes on no tier
    assert kinds == ["flash", "hbm", "no tier traffic"]
    with pytest.raises(PlotError, match="no op column 'nope'"):
        latency_breakdown(ops_table(), by="nope")


def test_roofline_places_ops_under_the_roof():
    fig = roofline(ops_table(), peak_flops=1e16, peak_bw=1e13)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "arithmetic intensity (FLOP/byte)"
    assert ax.get_ylabel() == "achieved performance (TFLOP/s)"
    assert ax.get_xscale() == ax.get_yscale() == "log"
    pts = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(pts) == 4  # the transfer has no FLOPs
    got = sorted(map(tuple, pts.tolist()))
    want = sorted([(200.0, 2000.0), (10.0, 50.0), (1.0, 2.0), (400.0, 2000.0)])  # (FLOP/B, TFLOP/s)
    assert np.allclose(got, want)
    roof = ax.get_lines()[0]
    assert roof.get_ydata().max() == pytest.approx(1e4) and roof.get_ydata().min() < 1e4
    est = roofline(ops_table()).axes[0].get_legend().get_texts()[0].get_text()
    assert "estimated from the ops" in est


def test_timeline_from_ops_and_chrome_trace():
    fig = timeline(ops_table())
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["gpu", "link", "npu"]
    assert ax.get_xlabel() == "time (µs)" and len(ax.patches) == 5
    trace = {"traceEvents": [{"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "unit gpu"}},
                             {"ph": "X", "name": "qkv", "cat": "gemm", "pid": 1, "ts": 0.0, "dur": 2.5},
                             {"ph": "X", "name": "ffn", "cat": "gemm", "pid": 1, "ts": 2.5, "dur": 1.0}]}
    ops = ops_from_chrome_trace(json.dumps(trace))
    assert ops["end_ps"].tolist() == [2_500_000, 3_500_000] and ops["unit"].tolist() == ["unit gpu"] * 2
    assert "first 1 of 2 ops" in timeline(ops, max_ops=1).axes[0].get_title()


def test_policy_comparison_panels():
    t = pd.DataFrame({"point": range(4), "status": "ok", "policy": ["hbm-baseline", "pim-gpt"] * 2,
                      "batch": [1, 1, 8, 8], "tpot_s": [0.01, 0.005, 0.02, 0.012],
                      "energy_per_token_j": [0.3, 0.1, 0.4, 0.2]})
    t.attrs["memsim_axes"] = ["policy", "batch"]
    fig = policy_comparison(t, metrics=["tpot_s", "energy_per_token_j"])
    assert [a.get_ylabel() for a in fig.axes] == ["TPOT (ms)", "energy per token (mJ)"]
    assert [a.get_xlabel() for a in fig.axes] == ["batch", "batch"]  # the other axis groups the bars
    assert len(fig.axes[0].patches) == 4
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["hbm-baseline", "pim-gpt"]


def test_cli_writes_png_and_svg(tmp_path, capsys):
    t = sweep_table()
    out = tmp_path / "sweep"
    out.mkdir()
    t.to_parquet(out / "table.parquet", index=False)
    (out / "sweep.json").write_text(json.dumps({"name": "demo", "axes": t.attrs["memsim_axes"]}))
    assert main(["plot", "metric", str(out), "--x", "channels", "--y", "bandwidth_GBps", "--hue", "preset"]) == 0
    png = out / "figures" / "metric_bandwidth_GBps.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    svg = tmp_path / "e.svg"
    assert main(["plot", "energy", str(out), "--out", str(svg)]) == 0
    assert b"<svg" in svg.read_bytes()[:500]
    assert main(["plot", "metric", str(out), "--x", "channels"]) == 2
    assert "needs --x AXIS and one --y METRIC" in capsys.readouterr().err
    # a run folder with ops rows: roofline peaks default to an estimate, timeline and breakdown work
    run = write_run_folder(tmp_path / "runs", {"x": 1}, {"ops.parquet": _parquet(ops_table())})
    for kind in ("roofline", "timeline", "breakdown"):
        f = tmp_path / f"{kind}.png"
        assert main(["plot", kind, str(run), "--out", str(f)]) == 0 and f.stat().st_size > 5_000
    assert main(["plot", "timeline", str(out)]) == 2  # a dram sweep has no op rows


def _parquet(df: pd.DataFrame) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def test_colour_follows_hue_and_style_the_other_axes():
    t = sweep_table()
    t = pd.concat([t.assign(trace="seq"), t.assign(trace="rand", bandwidth_GBps=t["bandwidth_GBps"] / 2,
                                                   point=t["point"] + 100)], ignore_index=True)
    t.attrs["memsim_axes"] = ["memory.preset", "memory.organization.channels", "trace"]
    ax = metric_vs_axis(t, "channels", "bandwidth_GBps", hue="preset").axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {f"preset={p}, trace={tr}" for p in ("HBM2", "HBM3") for tr in ("seq", "rand")}
    assert lines["preset=HBM2, trace=seq"].get_color() == lines["preset=HBM2, trace=rand"].get_color()
    assert lines["preset=HBM2, trace=seq"].get_color() != lines["preset=HBM3, trace=seq"].get_color()
    assert lines["preset=HBM2, trace=seq"].get_linestyle() != lines["preset=HBM2, trace=rand"].get_linestyle()


def test_cli_where_filters_rows(tmp_path):
    from argparse import Namespace

    from memsim.plots.cli import build_figure

    t = sweep_table()
    out = tmp_path / "sweep"
    out.mkdir()
    t.to_parquet(out / "table.parquet", index=False)
    (out / "sweep.json").write_text(json.dumps({"name": "demo", "axes": t.attrs["memsim_axes"]}))
    args = Namespace(kind="metric", results=str(out), x="channels", y=["bandwidth_GBps"], hue=None, logy=False,
                     title=None, where=["preset=HBM3"])
    ax = build_figure(args).axes[0]
    assert len(ax.get_lines()) == 1 and ax.get_lines()[0].get_ydata().tolist() == [320, 640, 1280]
    args.where = ["preset=DDR9"]
    with pytest.raises(PlotError, match="no row has that value; values: HBM2, HBM3"):
        build_figure(args)
