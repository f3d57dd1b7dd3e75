"""Scenario files: shipped scenarios, datatypes, arrivals, and errors naming file + YAML path."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from memsim.errors import ConfigError
from memsim.workload import Scenario, load_model, load_scenario, load_workload
from memsim.workload.scenario import dtype_bytes

REPO = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, text: str, name: str = "sc.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


@pytest.mark.parametrize("path", sorted((REPO / "workloads").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_scenarios_load(path):
    sc = load_scenario(path)
    assert sc.model.param_count() > 0 and sc.prompt_tokens > 0


def test_llama2_7b_decode_scenario():
    sc = load_scenario(REPO / "workloads" / "llama2_7b_decode.yaml")
    assert (sc.model.name, sc.batch, sc.prompt_tokens, sc.generated_tokens) == ("llama2-7b", 1, 512, 128)
    assert sc.dtypes == {"weights": "fp16", "activations": "fp16", "kv": "fp16"}
    assert sc.resolved()["model"]["num_hidden_layers"] == 32


def test_dtype_shorthand_and_bytes(tmp_path):
    p = _write(tmp_path, "model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\ndtype: int4\n")
    sc = load_scenario(p)
    assert sc.dtypes == {"weights": "int4", "activations": "int4", "kv": "int4"}
    assert sc.name == "sc" and sc.batch == 1
    assert dtype_bytes(3, "int4") == 2 and dtype_bytes(3, "fp32") == 12 and dtype_bytes(3, "bf16") == 6


def test_model_path_relative_to_scenario(tmp_path):
    (tmp_path / "m.yaml").write_text((REPO / "workloads" / "models" / "gpt2.yaml").read_text().replace(
        "name: gpt2\n", "name: my-gpt2\n"))
    p = _write(tmp_path, "model: m.yaml\nprompt_tokens: 8\ngenerated_tokens: 2\n")
    assert load_scenario(p).model.name == "my-gpt2"


@pytest.mark.parametrize("text,path,words", [
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\nbatchsize: 4\n", "batchsize", "did you mean 'batch'"),
    ("model: gpt2\nprompt_tokens: 0\ngenerated_tokens: 2\n", "prompt_tokens", "positive integer"),
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: -1\n", "generated_tokens", "non-negative"),
    ("model: gpt2\nprompt_tokens: 8\n", "generated_tokens", "missing"),
    ("model: gpt9\nprompt_tokens: 8\ngenerated_tokens: 2\n", "model", "unknown model 'gpt9'"),
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\ndtype: {weights: fp8}\n", "dtype.weights", "expected one of"),
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\ndtype: {kv_cache: fp16}\n", "dtype.kv_cache", "unknown key"),
    ("model: gpt2\nprompt_tokens: 1000\ngenerated_tokens: 100\n", "generated_tokens", "max_position_embeddings"),
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\narrivals: [0ms, 5]\n", "arrivals[1]", "duration"),
    ("model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\narrivals: [5ms, 1ms]\n", "arrivals[1]", "non-decreasing"),
])
def test_scenario_errors_name_file_and_path(tmp_path, text, path, words):
    p = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    assert e.value.file == str(p), str(e.value)
    assert e.value.path == path, str(e.value)
    assert words in str(e.value)


def test_rope_models_may_exceed_max_positions():
    m = load_model("llama2-7b")
    assert Scenario(model=m, prompt_tokens=4000, generated_tokens=200).total_tokens == 4200


def test_arrivals_inline_and_csv(tmp_path):
    p = _write(tmp_path, "model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\narrivals: [0ms, 1.5ms, 2ms]\n")
    assert load_scenario(p).arrivals_ps == (0, 1_500_000_000, 2_000_000_000)
    (tmp_path / "arr.csv").write_text("arrival_ps\n0\n100\n250\n")
    p = _write(tmp_path, "model: gpt2\nprompt_tokens: 8\ngenerated_tokens: 2\narrivals: {file: arr.csv}\n")
    assert load_scenario(p).arrivals_ps == (0, 100, 250)
    (tmp_path / "arr.csv").write_text("arrival_ps\n0\nsoon\n")
    with pytest.raises(ConfigError) as e:
        load_scenario(p)
    assert e.value.file == str(tmp_path / "arr.csv") and "row 3" in str(e.value)


def test_load_workload_model_or_scenario():
    sc = load_workload("llama2-7b", prompt_tokens=16, generated_tokens=4)
    assert sc.model.name == "llama2-7b" and sc.prompt_tokens == 16
    sc = load_workload(str(REPO / "workloads" / "llama2_7b_decode.yaml"), batch=4)
    assert sc.batch == 4 and sc.prompt_tokens == 512


def test_overrides_top_level_and_dtype():
    f = REPO / "workloads" / "llama2_7b_gpt_fast.yaml"  # dtype: fp16 (one name)
    sc = load_scenario(f, overrides={"batch": 4, "dtype.kv": "int8"})
    assert sc.batch == 4 and sc.dtypes == {"weights": "fp16", "activations": "fp16", "kv": "int8"}
    with pytest.raises(ConfigError) as e:
        load_scenario(f, overrides={"dtype.kv": "fp8"})
    assert e.value.path == "dtype.kv"
    with pytest.raises(ConfigError) as e:
        load_scenario(f, overrides={"model.hidden_size": 8})
    assert e.value.file == "<overrides>" and e.value.path == "model.hidden_size"
