"""Regression (not validation): memsim's own outputs on short prefixes of the reference traces.

The stored figures are memsim's, recorded when the model was last changed on purpose; they catch
unintended changes to the timing model. After an intended change, regenerate them with
``python tests/test_regression.py --update`` and say why in the commit message.
"""
import json
import sys
from pathlib import Path

import pytest

from memsim.config import get_preset
from memsim.dram.engine import Requests, simulate
from memsim.traces import synthetic

DATA = Path(__file__).with_name("data") / "regression_dram.json"
PRESETS = ["DRAMSim3_HBM2_8Gb_x128", "Ramulator2_HBM2_4Gb_2000Mbps_8ch", "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch",
           "Ramulator2_DDR4_8Gb_x8_2400U", "HBM3E_9600", "DDR5_4800", "GDDR6_16", "LPDDR5_6400", "HBM2E_3200",
           "DDR4_3200"]
TRACES = ["seq", "rand", "mix2:1", "gemv"]
PREFIX = 20_000


def measure(preset: str, trace: str) -> dict:
    cfg = get_preset(preset)
    addr, w = synthetic.REFERENCE_TRACES[trace]()
    addr = addr[:PREFIX] % cfg.organization.capacity_bytes  # small devices (one GDDR6 chip) wrap the window
    r = simulate(cfg, Requests(addr, w[:PREFIX]))
    return {"sim_time_ps": r.sim_time_ps, "row_hits": r.row_hits, "row_misses": r.row_misses,
            "row_conflicts": r.row_conflicts, "commands": r.commands,
            "read_latency_sum_cycles": round(r.read_latency_cycles["mean"] * r.read_latency_cycles["count"]),
            "read_p99_cycles": r.read_latency_cycles["p99"]}


def _stored() -> dict:
    return json.loads(DATA.read_text()) if DATA.exists() else {}


@pytest.mark.parametrize("preset", PRESETS)
def test_regression(preset):
    stored = _stored()
    for trace in TRACES:
        key = f"{preset}/{trace}"
        assert key in stored, f"no stored figures for {key}: run python tests/test_regression.py --update"
        assert measure(preset, trace) == stored[key], key


if __name__ == "__main__" and "--update" in sys.argv:
    out = {f"{p}/{t}": measure(p, t) for p in PRESETS for t in TRACES}
    DATA.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(out)} entries to {DATA}")
