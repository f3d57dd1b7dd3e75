"""Model descriptions: shipped YAML files, parameter counts against published figures, HF config import."""
from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from memsim.errors import ConfigError
from memsim.workload import Scenario, generate, import_hf_config, list_models, load_model
from memsim.workload.closed_form import weight_bytes

DATA = Path(__file__).parent / "data" / "hf"

# Published parameter counts. Exact figures are those Hugging Face transformers reports
# (sum(p.numel() for p in model.parameters()), tied weights counted once) for the model cards named in
# each YAML's `source:`; they also match the papers' rounded figures (GPT-2 1.5B, Llama-2 7/13/70B,
# Mixtral 46.7B). GPT-3 XL has only the paper's "1.3B" (Brown et al. 2020, Table 2.1).
PUBLISHED_EXACT = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "opt-6.7b": 6_658_473_984,
    "falcon-7b": 6_921_720_704,
    "llama2-7b": 6_738_415_616,
    "llama2-13b": 13_015_864_320,
    "llama2-70b": 68_976_648_192,
    "llama3-8b": 8_030_261_248,
    "mixtral-8x7b": 46_702_792_704,
}
# GPT-3 175B: the paper's "175.0B" (Table 2.1), given to one decimal of a billion.
PUBLISHED_ROUNDED = {"gpt3-xl": (1.3e9, 0.02), "gpt3-175b": (175.0e9, 0.005)}  # (figure, relative tolerance)


def test_every_shipped_model_has_a_published_figure():
    assert sorted(list_models()) == sorted([*PUBLISHED_EXACT, *PUBLISHED_ROUNDED])


@pytest.mark.parametrize("name", sorted(PUBLISHED_EXACT))
def test_param_count_matches_published(name):
    m = load_model(name)
    assert m.param_count() == PUBLISHED_EXACT[name]
    assert m.source and "config.json" in m.source


def test_gpt3_xl_matches_paper():
    m = load_model("gpt3-xl")
    figure, tol = PUBLISHED_ROUNDED["gpt3-xl"]
    assert abs(m.param_count() - figure) / figure < tol
    assert (m.num_hidden_layers, m.hidden_size, m.num_attention_heads, m.head_dim) == (24, 2048, 16, 128)
    assert "Table 2.1" in m.source


@pytest.mark.parametrize("name", ["llama2-7b", "gpt2-xl", "llama2-70b", "mixtral-8x7b", "falcon-7b"])
def test_generator_weight_bytes_give_param_count(name):
    """The trace's weight tensors, at 2 bytes per parameter, are the parameter count."""
    m = load_model(name)
    tr = generate(m, Scenario(model=m, prompt_tokens=4, generated_tokens=1, weight_dtype="fp16"))
    assert tr.total_weight_bytes == 2 * PUBLISHED_EXACT[name] == weight_bytes(m, "fp16")
    assert tr.meta["param_count"] == PUBLISHED_EXACT[name]


def test_rounded_figures():
    assert round(load_model("llama2-7b").param_count() / 1e9, 2) == 6.74
    assert round(load_model("gpt2-xl").param_count() / 1e9, 2) == 1.56
    assert round(load_model("llama2-70b").param_count() / 1e9) == 69
    assert round(load_model("mixtral-8x7b").param_count() / 1e9, 1) == 46.7
    # Mixtral: ~12.9 B parameters active per token (2 of 8 experts), as published
    assert round(load_model("mixtral-8x7b").active_param_count() / 1e9, 1) == 12.9


def test_attention_kinds_and_kv_width():
    assert load_model("llama2-7b").attention_kind == "mha"
    l70 = load_model("llama2-70b")
    assert l70.attention_kind == "gqa" and l70.kv_dim == 8 * 128
    f = load_model("falcon-7b")
    assert f.attention_kind == "mqa" and f.kv_dim == 64 and f.parallel_attn_mlp
    assert load_model("llama3-8b").vocab_size == 128256
    mx = load_model("mixtral-8x7b")
    assert (mx.num_local_experts, mx.num_experts_per_tok) == (8, 2)


# ---- loading errors ----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


BASE = Path(__file__).resolve().parents[1] / "workloads" / "models" / "llama2-7b.yaml"


def test_unknown_key_names_file_and_key(tmp_path):
    p = _write(tmp_path, BASE.read_text() + "num_hiden_layers: 3\n")
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.file == str(p) and e.value.path == "num_hiden_layers"
    assert "did you mean 'num_hidden_layers'" in str(e.value)


def test_bad_value_and_missing_key(tmp_path):
    p = _write(tmp_path, BASE.read_text().replace("hidden_size: 4096", "hidden_size: -4"))
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.path == "hidden_size" and "positive integer" in str(e.value)
    p = _write(tmp_path, BASE.read_text().replace("vocab_size: 32000\n", ""))
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.path == "vocab_size" and "missing" in str(e.value)
    p = _write(tmp_path, BASE.read_text().replace("hidden_act: silu", "hidden_act: swish"))
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.path == "hidden_act"


def test_inconsistent_heads_and_experts(tmp_path):
    p = _write(tmp_path, BASE.read_text().replace("num_key_value_heads: 32", "num_key_value_heads: 5"))
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.file == str(p) and e.value.path == "num_key_value_heads"
    p = _write(tmp_path, BASE.read_text().replace("num_experts_per_tok: 1", "num_experts_per_tok: 3"))
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.path == "num_experts_per_tok"


def test_head_dim_defaults_and_unknown_name(tmp_path):
    p = _write(tmp_path, BASE.read_text().replace("head_dim: 128\n", ""))
    assert load_model(p).head_dim == 128
    assert load_model(p).name == "llama2-7b"  # from `name:`
    with pytest.raises(ConfigError, match="did you mean 'llama2-7b'"):
        load_model("llama2-7")


def test_yaml_syntax_error(tmp_path):
    p = _write(tmp_path, "name: x\n  bad: [\n")
    with pytest.raises(ConfigError) as e:
        load_model(p)
    assert e.value.file == str(p) and "line" in str(e.value)


def test_modelspec_direct_construction_checks():
    m = load_model("llama2-7b")
    with pytest.raises(ConfigError, match="num_key_value_heads"):
        dataclasses.replace(m, num_key_value_heads=3)


# ---- Hugging Face config.json import -----------------------------------------------------------------

HF_EXPECT = {"llama-2-7b": "llama2-7b", "llama-3-8b": "llama3-8b", "gpt2-xl": "gpt2-xl", "opt-6.7b": "opt-6.7b",
             "falcon-7b": "falcon-7b", "mixtral-8x7b": "mixtral-8x7b"}
_ARCH = ("num_hidden_layers", "hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim",
         "intermediate_size", "gated_ffn", "vocab_size", "max_position_embeddings", "position_embedding",
         "position_offset", "norm", "linear_bias", "parallel_attn_mlp", "tie_word_embeddings", "num_local_experts",
         "num_experts_per_tok")


@pytest.mark.parametrize("folder", sorted(HF_EXPECT))
def test_hf_import_matches_shipped_model(folder):
    imported = import_hf_config(DATA / folder / "config.json")
    shipped = load_model(HF_EXPECT[folder])
    for f in _ARCH:
        assert getattr(imported, f) == getattr(shipped, f), f
    assert imported.param_count() == shipped.param_count()
    # load_model accepts a config.json path too
    assert load_model(DATA / folder / "config.json").param_count() == shipped.param_count()


def test_hf_import_names():
    assert import_hf_config(DATA / "llama-2-7b" / "config.json").name == "meta-llama/Llama-2-7b-hf"
    assert import_hf_config(DATA / "gpt2-xl" / "config.json").name == "gpt2-xl"  # folder name
    assert import_hf_config(DATA / "gpt2-xl" / "config.json", name="x").name == "x"


def test_hf_import_errors(tmp_path):
    f = DATA / "bad" / "unknown_type.json"
    with pytest.raises(ConfigError) as e:
        import_hf_config(f)
    assert e.value.file == str(f) and e.value.path == "model_type" and "t5" in str(e.value)
    f = DATA / "bad" / "missing_key.json"
    with pytest.raises(ConfigError) as e:
        import_hf_config(f)
    assert e.value.file == str(f) and e.value.path == "num_hidden_layers"
    f = DATA / "bad" / "bad_kv.json"
    with pytest.raises(ConfigError) as e:
        import_hf_config(f)
    assert e.value.path == "num_key_value_heads"
    bad = tmp_path / "config.json"
    bad.write_text('{"model_type": "llama",')
    with pytest.raises(ConfigError) as e:
        import_hf_config(bad)
    assert "invalid JSON" in str(e.value) and e.value.file == str(bad)
    bad.write_text('{"model_type": "gpt2", "n_embd": "1600", "n_head": 25, "n_layer": 48, "n_positions": 1024, '
                   '"vocab_size": 50257}')
    with pytest.raises(ConfigError) as e:
        import_hf_config(bad)
    assert e.value.path == "n_embd" and "positive integer" in str(e.value)
    with pytest.raises(ConfigError, match="file not found"):
        import_hf_config(tmp_path / "nope.json")


def test_hf_import_mistral():
    """Mistral-7B-v0.1: 7,241,732,096 parameters (Hugging Face count; the paper's "7.3B")."""
    m = import_hf_config(DATA / "mistral-7b" / "config.json")
    assert m.param_count() == 7_241_732_096
    assert (m.model_type, m.attention_kind, m.kv_dim, m.gated_ffn, m.norm) == ("mistral", "gqa", 1024, True, "rmsnorm")
    assert m.rope_theta == 10000.0
