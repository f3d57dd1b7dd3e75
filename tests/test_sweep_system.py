"""System sweep points: against an injected fake of memsim.system.api, and the real one where present."""
from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from memsim.results import read_run
from memsim.sweep import SweepError, run_sweep
from memsim.sweep.runners import DramRunner, SystemRunner

ROOT = Path(__file__).resolve().parents[1]
HBM3 = str(ROOT / "hw_configs" / "hbm3.yaml")


class FakeResult:
    def __init__(self, channels: int, policy: str, fidelity: str):
        self.channels, self.policy, self.fidelity = channels, policy, fidelity

    def metrics(self):
        t = 0.01 / self.channels * (0.5 if self.policy == "pim-gpt" else 1.0)
        return {"ttft_s": 10 * t, "tpot_s": t, "tokens_per_s": 1 / t, "energy_per_token_j": 0.1 * t,
                "bytes": {"hbm": 1e9, "pim": 0.0 if self.policy == "hbm-baseline" else 5e8}}

    def files(self):
        ops = pd.DataFrame({"name": ["qkv", "attn"], "unit": ["gpu", "gpu"], "start_ps": [0, 10],
                            "end_ps": [10, 25], "flops": [100, 50], "bytes": [40, 80]})
        buf = io.BytesIO()
        ops.to_parquet(buf, index=False)
        return {"stats.json": json.dumps({"fidelity": self.fidelity}), "ops.parquet": buf.getvalue()}


class FakeApi:
    def __init__(self):
        self.calls = []

    def policies(self):
        return ["hbm-baseline", "pim-gpt", "broken"]

    def run_point(self, hw, workload, *, policy=None, fidelity="analytical", overrides=None):
        self.calls.append((hw, workload, policy, fidelity, dict(overrides or {})))
        if policy == "broken":
            raise RuntimeError("policy exploded")
        return FakeResult(int(overrides["memory.organization.channels"]), policy, fidelity)


def sweep_file(tmp_path, axes, **base):
    wl = tmp_path / "wl.yaml"
    wl.write_text("model: gpt2\nbatch: 1\n")
    doc = {"kind": "system", "base": {"hw": HBM3, "workload": "wl.yaml", **base}, "axes": axes}
    p = tmp_path / "sys.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


def test_system_points_with_fake_api(tmp_path):
    api = FakeApi()
    runners = {"dram": DramRunner(), "system": SystemRunner(api=api)}
    path = sweep_file(tmp_path, {"memory.organization.channels": [8, 16], "policy": ["hbm-baseline", "pim-gpt",
                                                                                        "broken"]})
    rep = run_sweep(path, tmp_path / "out", jobs=1, runners=runners, progress=False, log=lambda m: None)
    t = rep.table
    assert len(t) == 6 and list(t["status"]) == ["ok", "ok", "failed"] * 2 and rep.n_failed == 2
    assert list(t.columns[3:5]) == ["memory.organization.channels", "policy"]
    assert {"ttft_s", "tpot_s", "tokens_per_s", "energy_per_token_j", "bytes.hbm", "bytes.pim"} <= set(t.columns)
    ok = t[t["status"] == "ok"]
    assert ok["tpot_s"].tolist() == pytest.approx([0.01 / 8, 0.005 / 8, 0.01 / 16, 0.005 / 16])
    assert "policy exploded" in t["error"][2]
    # overrides reach the API as strings (as from --set), with the workload path made absolute
    hw, wl, pol, fid, ov = api.calls[0]
    assert ov == {"memory.organization.channels": "8"} and fid == "analytical" and Path(wl).is_absolute()
    run = read_run(tmp_path / "out" / "points" / t["hash"][0])
    assert set(run["files"]) == {"stats.json", "ops.parquet", "metrics.json"}
    assert pd.read_parquet(io.BytesIO(run["files"]["ops.parquet"]))["name"].tolist() == ["qkv", "attn"]


def test_system_points_validated_first(tmp_path):
    api = FakeApi()
    runners = {"system": SystemRunner(api=api)}
    path = sweep_file(tmp_path, {"policy": ["hbm-baseline", "nonsense"], "fidelity": ["analytical", "exact"]})
    with pytest.raises(SweepError) as ei:
        run_sweep(path, tmp_path / "out", jobs=1, runners=runners, progress=False, log=lambda m: None)
    msg = str(ei.value)
    assert f"{path}: axes.policy[1]: 'nonsense': unknown policy" in msg
    assert f"{path}: axes.fidelity[1]: 'exact': unknown fidelity" in msg
    assert not api.calls and not (tmp_path / "out").exists()


def test_system_api_missing_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_system(name, *a, **k):
        if name.startswith("memsim.system"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_system)
    path = sweep_file(tmp_path, {"policy": ["hbm-baseline"]})
    with pytest.raises(Exception, match="system points need memsim.system.api"):
        run_sweep(path, tmp_path / "out", jobs=1, runners={"system": SystemRunner()}, progress=False,
                  log=lambda m: None)


def test_real_system_api_point(tmp_path):
    api = pytest.importorskip("memsim.system.api")
    hw = ROOT / "hw_configs" / "h100_sxm.yaml"
    if not hw.exists() or not hasattr(api, "resolved_inputs"):
        pytest.skip("the system simulator's configs are not in this checkout")
    doc = {"kind": "system", "base": {"hw": str(hw), "workload": "gpt2", "fidelity": "analytical",
                                      "set": {"workload.prompt_tokens": 16, "workload.generated_tokens": 4}},
           "axes": {"policy": ["hbm-baseline"]}}
    p = tmp_path / "real.yaml"
    p.write_text(yaml.safe_dump(doc))
    rep = run_sweep(p, tmp_path / "out", jobs=1, progress=False, log=lambda m: None)
    assert rep.ok, rep.table["error"].tolist()
    row = rep.table.iloc[0]
    assert row["tpot_s"] > 0 and row["ttft_s"] > row["tpot_s"]
    # the point folder is named as `memsim run` would name it
    res = api.run_point(str(hw), "gpt2", policy="hbm-baseline",
                        overrides={"workload.prompt_tokens": "16", "workload.generated_tokens": "4"})
    from memsim.results import input_hash

    assert row["hash"] == input_hash(res.resolved)
    assert (tmp_path / "out" / "points" / row["hash"] / "ops.parquet").exists()
