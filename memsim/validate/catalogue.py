"""The validation catalogue: reference cases, each with its source, expected value and tolerance.

A *case* is one simulation (a preset, a trace, a queue depth); each case carries one or more *checks*
(a metric compared with a reference figure). ``memsim validate`` runs the catalogue, prints expected /
simulated / error for every check and exits non-zero on a miss.

The DRAM cases come from ``data/dram_reference.csv`` (figures of DRAMSim3, Ramulator 2.1 and Ramulator
1.0 on the synthetic traces of :mod:`memsim.traces.synthetic`). Tolerances, set by the project's
acceptance criteria: bandwidth within 5 % (relative), QD1 average read latency within 10 % (relative),
row-hit rate within 0.05 (absolute). Loaded (saturated) latency mostly measures the reference
controller's queue structure; it is reported beside the reference but not judged.

Known misses are listed in :data:`KNOWN_MISSES` with the reason. They still print as ``MISS``; only
``--allow-known`` lets the command succeed with them, and a known miss that starts passing is flagged
so that the list is kept honest.
"""
from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources

from ..config import get_preset
from ..dram.engine import DramEngine, DramResult, Requests
from ..plugins import import_optional
from ..traces import synthetic

#: reference CSV ``config`` column → memsim preset reproducing that configuration
REFERENCE_PRESETS: dict[str, str] = {
    "HBM2_8Gb_x128 (8ch x128b, 2Gbps)": "DRAMSim3_HBM2_8Gb_x128",
    "DDR4_8Gb_x8_2400 1ch1rank": "DRAMSim3_DDR4_8Gb_x8_2400",
    "HBM2_4Gb_2000Mbps_8ch (MOP4CLXOR)": "Ramulator2_HBM2_4Gb_2000Mbps_8ch",
    "HBM3_8Gb_8hi_6400Mbps_16ch (MOP4CLXOR)": "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch",
    "DDR4_8Gb_x8_2400U_1ch1r (RoBaRaCoCh)": "Ramulator2_DDR4_8Gb_x8_2400U",
    "HBM2_4Gb_2000Mbps_8ch_RoBaRaCoCh": "Ramulator2_HBM2_4Gb_2000Mbps_8ch_RoBaRaCoCh",
    "HBM3_8Gb_8hi_6400Mbps_16ch_RoBaRaCoCh": "Ramulator2_HBM3_8Gb_8hi_6400Mbps_16ch_RoBaRaCoCh",
    "DDR4_8Gb_x8 DDR4_2400U 1ch1r": "Ramulator1_DDR4_8Gb_x8_2400U",
}

#: check id → why memsim does not reproduce it (kept short; the README's validation section has more)
KNOWN_MISSES: dict[str, str] = {
    "dram/Ramulator1.0/DDR4-2400/seq:bandwidth_GBps":
        "Ramulator 1.0 streams at 69.8 % of peak, Ramulator 2.1 at 74.6 % on the same organisation and "
        "(FR-FCFS, open-row) controller; memsim matches 2.1. The 1.0 difference is not identified",
    "dram/Ramulator1.0/DDR4-2400/gemv:bandwidth_GBps": "same as Ramulator1.0 seq",
    "dram/Ramulator2.1/HBM2_RoBaRaCoCh/rand:bandwidth_GBps":
        "each line is a miss plus a hit on the same row here; Ramulator 2.1 overlaps them better than "
        "memsim's one-command-per-cycle controller (-12 %); the MOP4CLXOR rows, which set that choice, match",
    "dram/Ramulator2.1/HBM3_RoBaRaCoCh/rand:bandwidth_GBps": "as the HBM2 RoBaRaCoCh rand row (-7 %)",
}

BW_TOL = 0.05
QD1_LAT_TOL = 0.10
HIT_TOL = 0.05


@dataclass(frozen=True)
class Check:
    """One metric compared with a reference figure.

    Either a tolerance around ``expected`` (relative or absolute; 0 = reported only), or a published
    ``band`` (low, high) that the simulated value must fall inside; then ``expected`` is the band's
    midpoint, shown for orientation, and the error is the distance outside the band relative to the
    nearer edge (0 inside).
    """

    metric: str  # "bandwidth_GBps" | "avg_read_latency_ns" | "row_hit_rate" | any case-specific name
    expected: float
    tolerance: float  # relative for bandwidth/latency, absolute for row_hit_rate; 0 = reported only
    relative: bool = True
    band: tuple[float, float] | None = None

    @property
    def judged(self) -> bool:
        return self.tolerance > 0 or self.band is not None

    def compare(self, simulated: float) -> tuple[float, bool]:
        """(error, passed) of a simulated value against this check."""
        if self.band is not None:
            lo, hi = self.band
            if simulated < lo:
                return (simulated - lo) / lo if lo else simulated - lo, False
            if simulated > hi:
                return (simulated - hi) / hi if hi else simulated - hi, False
            return 0.0, True
        if self.relative:
            err = (simulated - self.expected) / self.expected if self.expected else float("inf")
        else:
            err = simulated - self.expected
        return err, (abs(err) <= self.tolerance if self.judged else True)


@dataclass(frozen=True)
class Case:
    """One simulation and its checks.

    DRAM reference cases name a preset and a synthetic trace; every other case (PIM, flash, SRAM,
    system) supplies ``run``, a function returning ``{metric: simulated value}`` for its checks.
    """

    id: str  # "dram/<simulator>/<standard>/<trace>", "pim/...", "flash/...", "system/..."
    source: str
    checks: tuple[Check, ...]
    fast: bool  # cheap enough to run in full in the test suite
    preset: str = ""
    trace: str = ""
    queue_depth: int = 0
    reference_wall_s: float = 0.0
    reference_req_per_s: float = 0.0
    run: Callable[[], Mapping[str, float]] | None = None
    #: metric -> why memsim does not reproduce it (for provider cases; DRAM rows use KNOWN_MISSES)
    known_misses: Mapping[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    case: Case
    check: Check
    simulated: float
    error: float  # relative or absolute, as the check says
    passed: bool
    known_miss: str | None = None

    @property
    def id(self) -> str:
        return f"{self.case.id}:{self.check.metric}"

    @property
    def status(self) -> str:
        if not self.check.judged:
            return "info"
        if self.passed:
            return "PASS (known miss no longer misses: update KNOWN_MISSES)" if self.known_miss else "PASS"
        return "MISS (known)" if self.known_miss else "MISS"


@dataclass
class CaseResult:
    case: Case
    result: DramResult | Mapping[str, float]
    wall_s: float
    checks: list[CheckResult] = field(default_factory=list)


def _read_reference_rows() -> list[dict]:
    text = resources.files("memsim.validate").joinpath("data/dram_reference.csv").read_text()
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(io.StringIO("\n".join(lines))))


def _trace_key(name: str) -> tuple[str, int]:
    """Reference trace name → (generator name, queue depth)."""
    if name.startswith("rand-unloaded"):
        return "rand-unloaded(QD1,20k)", 1
    return name, 0


def dram_cases() -> list[Case]:
    """Every reference row for which memsim has the matching configuration."""
    cases = []
    for row in _read_reference_rows():
        preset = REFERENCE_PRESETS.get(row["config"])
        if preset is None:
            continue
        trace, qd = _trace_key(row["trace"])
        std = row["standard"]
        sim = row["simulator"]
        short = {"seq": "seq", "rand": "rand", "mix2:1": "mix", "gemv": "gemv"}.get(trace, "rand-qd1")
        variant = "_RoBaRaCoCh" if "RoBaRaCoCh" in preset and "DDR4" not in preset else ""
        checks = [Check("bandwidth_GBps", float(row["bw_GBps"]), BW_TOL)]
        if qd == 1:
            checks.append(Check("avg_read_latency_ns", float(row["avg_read_lat_ns"]), QD1_LAT_TOL))
        else:
            checks.append(Check("avg_read_latency_ns", float(row["avg_read_lat_ns"]), 0.0))
        checks.append(Check("row_hit_rate", float(row["row_hit_rate"]), HIT_TOL, relative=False))
        cases.append(Case(
            id=f"dram/{sim}/{std}{variant}/{short}",
            source=f"{sim} ({row['config']}), shared reference dram_reference.csv",
            preset=preset, trace=trace, queue_depth=qd, checks=tuple(checks),
            fast=qd == 1 or std.startswith("DDR4"),
            reference_wall_s=float(row["wall_s"]), reference_req_per_s=float(row["req_per_wall_s"])))
    return cases


#: Modules contributing validation cases, each with a ``cases() -> list[Case]`` function. A module that
#: does not exist (a device kind not yet built) is skipped; any other import error propagates.
CASE_PROVIDERS: tuple[str, ...] = (
    "memsim.pim.validation",
    "memsim.flash.validation",
    "memsim.sram.validation",
    "memsim.system.validation",
    "memsim.policies.validation",
)


def catalogue() -> list[Case]:
    """Every case: the DRAM reference rows, then each provider's cases (in CASE_PROVIDERS order)."""
    cases = dram_cases()
    for module in CASE_PROVIDERS:
        mod = import_optional(module)
        if mod is not None:
            cases.extend(mod.cases())
    ids = [c.id for c in cases]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise RuntimeError(f"duplicate validation case ids: {dup}")
    return cases


def _metric(res: DramResult, metric: str) -> float:
    return {"bandwidth_GBps": res.bandwidth_gbps, "avg_read_latency_ns": res.avg_read_latency_ns,
            "row_hit_rate": res.row_hit_rate}[metric]


def run_case(case: Case) -> CaseResult:
    t0 = time.perf_counter()
    if case.run is not None:
        res: DramResult | Mapping[str, float] = dict(case.run())
        wall = time.perf_counter() - t0

        def metric(name: str) -> float:
            if name not in res:
                raise RuntimeError(f"validation case {case.id} returned no metric {name!r} (got {sorted(res)})")
            return float(res[name])
    else:
        cfg = get_preset(case.preset)
        addr, is_write = synthetic.REFERENCE_TRACES[case.trace]()
        eng = DramEngine(cfg)
        t0 = time.perf_counter()
        res = eng.run(Requests(addr, is_write), queue_depth=case.queue_depth)
        wall = time.perf_counter() - t0

        def metric(name: str) -> float:
            return _metric(res, name)
    out = CaseResult(case, res, wall)
    for chk in case.checks:
        sim = metric(chk.metric)
        err, passed = chk.compare(sim)
        cid = f"{case.id}:{chk.metric}"
        known = KNOWN_MISSES.get(cid) or case.known_misses.get(chk.metric)
        out.checks.append(CheckResult(case, chk, sim, err, passed, known))
    return out
