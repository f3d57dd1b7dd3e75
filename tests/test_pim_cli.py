"""memsim pim ...: summaries, JSON/CSV output and input errors (exit code 2)."""
import json
from pathlib import Path

import pytest

from memsim.cli import main

ROOT = Path(__file__).resolve().parents[1]
AIM = str(ROOT / "hw_configs/gddr6_aim.yaml")


def test_gemv_summary_and_json(tmp_path, capsys):
    out = tmp_path / "g.json"
    rc = main(["pim", "gemv", "--config", str(ROOT / "hw_configs/hbm_pim.yaml"), "--rows", "512", "--cols", "512",
               "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    for word in ("PIM (pimgpt layout", "host, no PIM", "speed-up", "energy", "MAC_AB"):
        assert word in text
    d = json.loads(out.read_text())
    assert d["pim"]["macs"] == 512 * 512 and d["speedup"] == pytest.approx(d["host"]["time_ps"] / d["pim"]["time_ps"])
    assert d["closed_forms"]["bandwidth_bound_ps"] <= d["pim"]["time_ps"]


def test_other_commands(tmp_path, capsys):
    assert main(["pim", "eltwise", "-c", AIM, "--op", "relu", "--n", "65536", "--layout", "same_row"]) == 0
    assert "eltwise relu" in capsys.readouterr().out
    assert main(["pim", "attention", "-c", str(ROOT / "hw_configs/attacc_hbm3_pim.yaml"), "--seq", "256",
                 "--heads", "4", "--no-host"]) == 0
    text = capsys.readouterr().out
    assert "attention score" in text and "attention av" in text and "host, no PIM" not in text
    csv = tmp_path / "s.csv"
    assert main(["pim", "sweep", "-c", AIM, "--sizes", "128,256", "--banks-per-unit", "1,2", "--csv", str(csv)]) == 0
    assert len(csv.read_text().splitlines()) == 5
    assert main(["pim", "presets"]) == 0
    assert "GDDR6_AiM" in capsys.readouterr().out


def test_set_override_changes_the_result(capsys):
    main(["pim", "gemv", "-c", AIM, "--rows", "256", "--cols", "256", "--no-host"])
    base = capsys.readouterr().out
    main(["pim", "gemv", "-c", AIM, "--rows", "256", "--cols", "256", "--no-host", "--set", "pim.device.lanes=2"])
    assert "2 bf16 lanes" in capsys.readouterr().out and "16 bf16 lanes" in base


@pytest.mark.parametrize("argv, words", [
    (["pim", "gemv", "-c", AIM, "--rows", "0", "--cols", "4"], "--rows"),
    (["pim", "gemv", "-c", AIM, "--rows", "4", "--cols", "4", "--dtype", "int8"], "int8"),
    (["pim", "gemv", "-c", str(ROOT / "hw_configs/hbm3.yaml"), "--rows", "4", "--cols", "4"], "no 'pim' section"),
    (["pim", "gemv", "-c", AIM, "--rows", "4", "--cols", "4", "--set", "pim.device.lanes=0"], "pim.device.lanes"),
    (["pim", "sweep", "-c", AIM, "--banks-per-unit", "3"], "powers of two"),
    (["pim", "gemv", "-c", "nope.yaml", "--rows", "4", "--cols", "4"], "file not found"),
])
def test_bad_input_exits_2(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err
