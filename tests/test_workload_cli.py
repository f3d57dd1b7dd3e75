"""``memsim workload`` (memsim.workload.cli), exercised through its own register() on a fresh parser."""
from __future__ import annotations

import argparse
import io
from pathlib import Path

import pytest

from memsim.errors import ConfigError, MemsimError
from memsim.workload import read_trace
from memsim.workload import cli

REPO = Path(__file__).resolve().parents[1]


def _run(*argv):
    p = argparse.ArgumentParser()
    cli.register(p.add_subparsers(dest="command"))
    args = p.parse_args(["workload", *argv])
    buf = io.StringIO()
    rc = args.func(args, out=buf)
    return rc, buf.getvalue()


def test_summary_of_a_scenario_and_out(tmp_path):
    out = tmp_path / "t.parquet"
    rc, text = _run(str(REPO / "workloads" / "llama2_7b_decode.yaml"), "--gen", "4", "--out", str(out))
    assert rc == 0
    assert "params      6,738,415,616" in text
    assert "batch 1, prompt 512, generated 4" in text
    assert "decode 4" in text and "prefill" in text and "GFLOP" in text
    tr = read_trace(out)
    assert tr.num_steps == 5 and tr.meta["model"] == "llama2-7b"


def test_model_name_with_overrides():
    rc, text = _run("mixtral-8x7b", "--batch", "2", "--prompt", "8", "--gen", "2", "--weights", "int4")
    assert rc == 0 and "12,879,925,248 active" in text and "weights int4, activations fp16" in text


def test_list_and_errors():
    rc, text = _run("--list")
    assert rc == 0 and "llama2-70b" in text and "MoE 2/8" in text
    with pytest.raises(MemsimError, match="--batch expects a positive integer"):
        _run("gpt2", "--batch", "0")
    with pytest.raises(ConfigError, match="unknown model 'gpt5'"):
        _run("gpt5")
