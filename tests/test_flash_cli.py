"""`memsim flash`: trace replay, the chunk-size table, JSON output and input errors."""
import json
from pathlib import Path

import numpy as np

from memsim.cli import main
from memsim.traces import write_trace

ROOT = Path(__file__).resolve().parents[1]
CFG = str(ROOT / "hw_configs/ssd_990pro.yaml")


def test_trace_replay_and_json(tmp_path, capsys):
    tr = tmp_path / "t.ramulator2.trace"
    write_trace(tr, np.arange(300, dtype=np.uint64) * 65536, np.arange(300) % 3 == 0)
    out = tmp_path / "r.json"
    assert main(["flash", str(tr), "-c", CFG, "--qd", "16", "--request-size", "8KiB", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "300 (200 reads, 100 writes" in text and "read lat." in text and "write lat." in text
    d = json.loads(out.read_text())
    assert d["requests"] == 300 and d["bytes_read"] == 200 * 8192 and d["queue_depth"] == 16
    assert d["read_latency_ns"]["p99"] >= d["read_latency_ns"]["p50"] > 0


def test_memsim_trace_with_arrivals(tmp_path, capsys):
    tr = tmp_path / "t.parquet"
    n = 50
    write_trace(tr, np.arange(n, dtype=np.uint64) * 4096, np.zeros(n, bool),
                arrival=np.arange(n, dtype=np.int64) * 1_000_000_000)  # one per ms: no queueing
    assert main(["flash", str(tr), "-c", CFG, "--json", str(tmp_path / "r.json")]) == 0
    d = json.loads((tmp_path / "r.json").read_text())
    assert d["sim_time_ps"] > (n - 1) * 1_000_000_000
    assert d["read_latency_ns"]["max"] < 100_000


def test_chunks_table(capsys):
    assert main(["flash", "chunks", "-c", str(ROOT / "hw_configs/ssd_mqsim.yaml"), "--chunks", "4KiB", "64KiB",
                 "1MiB", "--bytes-per-point", "4MiB"]) == 0
    text = capsys.readouterr().out
    assert "4 KiB" in text and "1 MiB" in text and "host link" in text


def test_errors(tmp_path, capsys):
    tr = tmp_path / "t.ramulator1.trace"
    tr.write_text("0x0 R\n0x40000000000000 R\n")
    assert main(["flash", str(tr), "-c", CFG]) == 2
    assert "t.ramulator1.trace:2" in capsys.readouterr().err
    tr.write_text("0x0 R\n")
    assert main(["flash", str(tr), "-c", CFG, "--request-size", "4"]) == 2
    assert "--request-size" in capsys.readouterr().err
    assert main(["flash", str(tr), "-c", str(ROOT / "hw_configs/ddr4.yaml")]) == 2
    assert "no 'flash' section" in capsys.readouterr().err
    assert main(["flash", str(tr), "-c", CFG, "--qd", "-1"]) == 2
