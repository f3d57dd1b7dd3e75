"""The ``sram:`` block of a hardware config: a banked on-chip scratchpad or buffer.

What is described
-----------------
* Organisation: total capacity, number of banks, ports per bank (each a read/write port), access width
  per bank (bytes moved by one access), and the bank interleave (consecutive ``interleave``-byte
  blocks go to consecutive banks; default the width).
* Timing: access time (address to data), cycle time (how often one port of a bank can start an access)
  and an optional interface clock (default: one clock per cycle time). Times are rounded up to whole
  clock cycles inside the simulator.
* Energy: per read and per write access (of ``width`` bytes) and leakage power.
* Technology: the process node the figures are for, the array area, and optionally ``scale_to``, a
  smaller node to which timing and dynamic energy are scaled by the rule below.

Scaling rule for nodes below 22 nm (an inference, hw_params.md section 3 [I]: "take roughly 0.4-0.5x
of the 22 nm dynamic energy and about 0.5x the access time" at 7 nm; CACTI has no data below 22 nm):
a factor ``f7 ** (ln(22/n) / ln(22/7))`` for a target node ``n`` between 7 and 22 nm (log-log
interpolation between 1 at 22 nm and ``f7`` at 7 nm), with ``f7 = 0.45`` for read and write energy
(the middle of 0.4-0.5) and ``f7 = 0.5`` for access and cycle time. Leakage and area are not scaled
(the sheet gives no rule). Only 22 nm figures can be scaled, and not below 7 nm.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from memsim.config import yamltree as yt

__all__ = ["SramConfig", "parse_section", "get_preset", "list_presets", "load_sram_config", "scale_factors"]

ENERGY_F7 = 0.45
TIME_F7 = 0.5


@dataclass(frozen=True)
class SramConfig:
    """A resolved, validated SRAM scratchpad (immutable). Times in ps, sizes in bytes, energy in pJ."""

    name: str
    source: str
    description: str
    capacity_bytes: int
    banks: int
    ports: int
    width_bytes: int
    interleave_bytes: int
    access_time_ps: int
    cycle_time_ps: int
    clock_period_ps: int
    read_pj: float
    write_pj: float
    leakage_mw: float
    node_nm: float
    area_mm2: float
    scaled_from_nm: float | None = None
    file: str | None = None

    @property
    def busy_cycles(self) -> int:
        """Clock cycles one port of a bank is occupied by an access."""
        return -(-self.cycle_time_ps // self.clock_period_ps)

    @property
    def latency_cycles(self) -> int:
        """Clock cycles from issue to data."""
        return -(-self.access_time_ps // self.clock_period_ps)

    @property
    def clock_hz(self) -> float:
        return 1e12 / self.clock_period_ps

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        """banks x ports x width per bank cycle: the conflict-free streaming bandwidth."""
        return self.banks * self.ports * self.width_bytes / (self.busy_cycles * self.clock_period_ps * 1e-12)


_SECTIONS = ("organization", "timing", "energy", "technology")
_LIB_ARGS = dict(preset_keys=("inherits", "source", "description", *_SECTIONS), section_names=_SECTIONS)


def _library() -> yt.PresetLibrary:
    return yt.preset_library("sram", **_LIB_ARGS)


def _node(node: yt.Node) -> float:
    v = node.value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*nm\s*", v) if isinstance(v, str) else None
    if m is None or float(m.group(1)) <= 0:
        raise node.error(f"expected a process node like '22nm', got {yt.show(v)}")
    return float(m.group(1))


_ORG = {
    "capacity": yt.Field("capacity_bytes", yt.size(positive=True), True),
    "banks": yt.Field("banks", yt.count, True),
    "ports": yt.Field("ports", yt.count, True),
    "width": yt.Field("width_bytes", yt.size(positive=True), True),
    "interleave": yt.Field("interleave_bytes", yt.size(positive=True)),
}
_TIMING = {
    "access_time": yt.Field("access_time_ps", yt.duration(positive=True), True),
    "cycle_time": yt.Field("cycle_time_ps", yt.duration(positive=True), True),
    "clock": yt.Field("clock_hz", yt.frequency(positive=True)),
}
_ENERGY = {
    "read": yt.Field("read_pj", yt.energy(), True),
    "write": yt.Field("write_pj", yt.energy(), True),
    "leakage": yt.Field("leakage_mw", yt.power(), True),
}
_TECH = {
    "node": yt.Field("node_nm", _node, True),
    "area_mm2": yt.Field("area_mm2", yt.number(minimum=0)),
    "scale_to": yt.Field("scale_to", _node),
}


def _culprit(nodes: list[yt.Node]) -> yt.Node:
    """Of the nodes that together are inconsistent, the one the user set (not a preset file), if any."""
    for n in nodes:
        if not (n.file or "").startswith("memsim/presets/"):
            return n
    return nodes[-1]


def scale_factors(from_nm: float, to_nm: float) -> tuple[float, float]:
    """(energy factor, time factor) of the scaling rule (see the module docstring)."""
    if to_nm >= from_nm:
        return 1.0, 1.0
    x = math.log(22 / to_nm) / math.log(22 / 7)
    return ENERGY_F7 ** x, TIME_F7 ** x


def _build(name: str, layers: yt.Layers) -> SramConfig:
    org, on = yt.parse_fields(layers, "organization", _ORG, name)
    tim, tn = yt.parse_fields(layers, "timing", _TIMING, name)
    en, _ = yt.parse_fields(layers, "energy", _ENERGY, name)
    tech, techn = yt.parse_fields(layers, "technology", _TECH, name)
    width = org["width_bytes"]
    inter = org.get("interleave_bytes", width)
    if inter % width:
        raise on["interleave"].error(f"expected a whole number of access widths ({width} B), got {inter} B")
    if org["capacity_bytes"] % (org["banks"] * inter):
        node = _culprit([on[k] for k in ("banks", "interleave", "width", "capacity") if k in on])
        raise node.error(f"capacity {org['capacity_bytes']} B is not a whole number of banks x interleave "
                         f"({org['banks']} x {inter} B)")
    node_nm = tech["node_nm"]
    scaled_from = None
    acc, cyc = tim["access_time_ps"], tim["cycle_time_ps"]
    rd, wr = en["read_pj"], en["write_pj"]
    target = tech.get("scale_to")
    if target is not None and target != node_nm:
        where = techn["scale_to"]
        if node_nm != 22:
            raise where.error(f"the scaling rule starts from 22 nm figures; this device is for {node_nm:g} nm")
        if not 7 <= target < 22:
            raise where.error(f"the scaling rule covers 7 to 22 nm (no data below 7 nm), got {target:g} nm")
        fe, ft = scale_factors(node_nm, target)
        acc, cyc = max(1, round(acc * ft)), max(1, round(cyc * ft))
        rd, wr = rd * fe, wr * fe
        scaled_from, node_nm = node_nm, target
    clock = tim.get("clock_hz")
    if clock is None:
        period = cyc
    else:
        period = round(1e12 / clock)
        if period < 1:
            raise tn["clock"].error("a clock period below 1 ps is not supported")
    src = yt.scalar(layers, "source")
    desc = yt.scalar(layers, "description")
    return SramConfig(name=name, source=yt.text(src) if src else "", description=yt.any_text(desc) if desc else "",
                      capacity_bytes=org["capacity_bytes"], banks=org["banks"], ports=org["ports"], width_bytes=width,
                      interleave_bytes=inter, access_time_ps=acc, cycle_time_ps=cyc, clock_period_ps=period,
                      read_pj=rd, write_pj=wr, leakage_mw=en["leakage_mw"], node_nm=node_nm,
                      area_mm2=tech.get("area_mm2", 0.0), scaled_from_nm=scaled_from, file=layers.where.file)


_SECTION = yt.DeviceSection("sram", _library, _build, _SECTIONS, "an SRAM scratchpad")


def parse_section(block: yt.Node, root: yt.Node) -> SramConfig:
    """Parse a top-level ``sram:`` block (``{preset: NAME, organization: {...}, ...}``)."""
    return _SECTION.parse_section(block, root)


get_preset = _SECTION.get_preset
list_presets = _SECTION.list_presets
load_sram_config = _SECTION.load
