"""The command-line interface: the default job, JSON output, overrides and input errors."""
import json
from pathlib import Path

import numpy as np
import pytest

from memsim.cli import main
from memsim.traces import write_trace

ROOT = Path(__file__).resolve().parents[1]


def test_default_job_prints_summary_and_json(tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["dram", str(ROOT / "workloads/traces/hbm_mixed_small.memsim.parquet"),
               "--config", str(ROOT / "hw_configs/hbm3.yaml"), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for word in ("bandwidth", "read lat.", "row buffer", "commands", "energy"):
        assert word in text
    d = json.loads(out.read_text())
    assert d["requests"] == 20_000 and d["bandwidth_GBps"] > 0
    assert d["read_latency_cycles"]["p99"] >= d["read_latency_cycles"]["p50"]


def test_text_trace_and_set_override(tmp_path, capsys):
    tr = tmp_path / "t.ramulator2.trace"
    write_trace(tr, np.arange(0, 64 * 500, 64, dtype=np.uint64), np.zeros(500, bool))
    assert main(["dram", str(tr), "-c", str(ROOT / "hw_configs/ddr4.yaml"), "--qd", "1",
                 "--set", "memory.controller.refresh=none"]) == 0
    assert "500 (500 reads, 0 writes)" in capsys.readouterr().out


def test_bad_config_value_names_file_and_path(tmp_path, capsys):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("memory:\n  preset: HBM3_6400\n  timing:\n    tRCDRD: 14\n")
    tr = tmp_path / "t.ramulator1.trace"
    tr.write_text("0x40 R\n")
    assert main(["dram", str(tr), "-c", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert f"{cfg}: memory.timing.tRCDRD: expected a duration" in err


def test_malformed_trace_names_line(tmp_path, capsys):
    tr = tmp_path / "t.dramsim3.trace"
    tr.write_text("0x40 READ 0\n0x80 RAED 1\n")
    assert main(["dram", str(tr), "-c", str(ROOT / "hw_configs/hbm3.yaml")]) == 2
    assert f"{tr}:2:" in capsys.readouterr().err


def test_bad_set_syntax(capsys):
    assert main(["dram", "x", "-c", str(ROOT / "hw_configs/hbm3.yaml"), "--set", "novalue"]) == 2
    assert "--set expects key=value" in capsys.readouterr().err


def test_presets_lists_sources(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch" in out and "DRAMSim3" in out


@pytest.mark.parametrize("fmt", ["ramulator2", "memsim"])
def test_trace_command_writes_reference_trace(tmp_path, fmt, capsys):
    out = tmp_path / ("g.parquet" if fmt == "memsim" else "g.trace")
    assert main(["trace", "rand-unloaded(QD1,20k)", str(out), "--format", fmt]) == 0
    assert out.exists() and "20,000 requests" in capsys.readouterr().out


@pytest.mark.parametrize("flag", [["--qd", "-1"], ["--chunk-size", "0"]])
def test_bad_numeric_flags(flag, capsys):
    assert main(["dram", "x", "-c", str(ROOT / "hw_configs/hbm3.yaml"), *flag]) == 2
    assert "expects" in capsys.readouterr().err
