"""memsim compare: the table's shape and columns on a tiny model, skipped policies with reasons, files,
CLI (through its own register), determinism."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from memsim.compare import BASE_COLUMNS, DEFAULTS, compare, format_table, tier_columns, write
from memsim.errors import MemsimError

OV = {"workload.prompt_tokens": 16, "workload.generated_tokens": 2}
POLS = ["hbm-baseline", "attention-on-pim", "pim-gpt", "flash-windowing"]


@pytest.fixture(scope="module")
def table():
    return compare("gpt2", policies=POLS, overrides=OV)


def test_every_policy_module_has_a_default_config():
    from memsim.policies import known_policies

    assert set(DEFAULTS) == set(known_policies())


def test_table_shape_and_columns(table):
    assert list(table["policy"]) == POLS
    assert list(table.columns[:len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    ok = table[table["status"] == "ok"]
    assert list(ok["policy"]) == ["hbm-baseline", "attention-on-pim", "pim-gpt"]
    assert (ok["tpot_s"] > 0).all() and (ok["tokens_per_s"] > 0).all() and (ok["energy_per_token_j"] > 0).all()
    assert np.allclose(ok["tokens_per_s"], ok["batch"].astype(float) / ok["tpot_s"], rtol=1e-9)
    tiers = tier_columns(table)
    assert {"bytes_per_step_hbm", "bytes_per_step_kvpim", "bytes_per_step_gddr"} <= set(tiers)
    row = table.set_index("policy")
    assert row.loc["attention-on-pim", "bytes_per_step_kvpim"] > 0
    assert np.isnan(row.loc["hbm-baseline", "bytes_per_step_kvpim"])  # the A100 config has no PIM tier
    assert row.loc["hbm-baseline", "hw_config"] == "hw_configs/a100_80gb.yaml"


def test_a_policy_whose_config_cannot_run_the_model_is_skipped_with_its_reason(table):
    r = table.set_index("policy").loc["flash-windowing"]
    assert r["status"] == "skipped"
    assert "policy.sparsity" in r["reason"]
    assert np.isnan(r["tpot_s"])
    text = format_table(table)
    assert "skipped flash-windowing" in text and "attention-on-pim" in text.splitlines()[2]


def test_unknown_policy():
    with pytest.raises(MemsimError, match="unknown policy 'nope'"):
        compare("gpt2", policies=["nope"])


def test_files_round_trip(table, tmp_path):
    paths = write(table, tmp_path / "c")
    for k in ("csv", "parquet", "png", "bytes_png"):
        assert paths[k].exists() and paths[k].stat().st_size > 0
    back = pd.read_parquet(paths["parquet"])
    assert list(back.columns) == list(table.columns)
    assert np.allclose(back["tpot_s"].to_numpy(dtype=float), table["tpot_s"].to_numpy(dtype=float), equal_nan=True)
    assert pd.read_csv(paths["csv"]).shape == table.shape
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_deterministic(table):
    again = compare("gpt2", policies=POLS, overrides=OV)
    a, b = table.drop(columns="wall_s"), again.drop(columns="wall_s")
    pd.testing.assert_frame_equal(a, b)


def test_cli_through_register(tmp_path, capsys):
    from memsim.compare.cli import register

    p = argparse.ArgumentParser()
    register(p.add_subparsers(dest="command"))
    args = p.parse_args(["compare", "gpt2", "--policies", "hbm-baseline,pim-gpt", "--prompt", "16",
                         "--generated", "2", "--out", str(tmp_path / "o"), "-q"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "hbm-baseline" in out and "pim-gpt" in out and "TPOT" in out
    assert (tmp_path / "o" / "compare.csv").exists() and (tmp_path / "o" / "compare.png").exists()
    args = p.parse_args(["compare", "--list"])
    assert args.func(args) == 0
    assert "attacc_like.yaml" in capsys.readouterr().out


def test_config_replaces_a_policy_default():
    t = compare("gpt2", policies=["hbm-baseline"], overrides=OV, configs={"hbm-baseline": "t4_gddr6.yaml"})
    r = t.iloc[0]
    assert r["status"] == "ok" and r["hw_config"] == "hw_configs/t4_gddr6.yaml" and r["system"] == "t4-gddr6"
    assert r["bytes_per_step_gddr"] > 0
    with pytest.raises(MemsimError, match="unknown policy 'x'"):
        compare("gpt2", policies=["hbm-baseline"], configs={"x": "t4_gddr6.yaml"})


def test_policy_scoped_override():
    pols = ["hbm-baseline", "attention-on-pim"]
    t = compare("gpt2", policies=pols, overrides={**OV, "attention-on-pim:policy.prefill_attention": True})
    assert list(t["status"]) == ["ok", "ok"]  # hbm-baseline has no such parameter: the override is not given to it
    plain = compare("gpt2", policies=pols, overrides=OV).set_index("policy")
    scoped = t.set_index("policy")
    assert scoped.loc["attention-on-pim", "ttft_s"] != plain.loc["attention-on-pim", "ttft_s"]  # prefill on PIM
    assert scoped.loc["hbm-baseline", "ttft_s"] == plain.loc["hbm-baseline", "ttft_s"]
    everywhere = compare("gpt2", policies=pols, overrides={**OV, "policy.prefill_attention": True})
    r = everywhere.set_index("policy").loc["hbm-baseline"]
    assert r["status"] == "skipped" and "prefill_attention" in r["reason"]
    with pytest.raises(MemsimError, match="unknown policy 'nope'"):
        compare("gpt2", policies=["hbm-baseline"], overrides={"nope:policy.x": 1})
