"""The ``system:`` block of a hardware config: compute units, memory tiers and links.

::

    memory: {preset: HBM2E_3200, organization: {rows: 65536}}   # one stack of the main memory
    system:
      units:
        gpu: {preset: A100-80GB-SXM, memory: hbm}     # compute presets: memsim/presets/compute/*.yaml
      tiers:
        hbm: {device: memory, count: 5}              # 5 identical stacks of the `memory:` device
        host: {device: dram, preset: DDR5_4800, count: 8}   # any DRAM preset (with overrides)
      links:
        pcie: {between: [hbm, host], preset: PCIe4-x16}    # link presets: memsim/presets/link/
        nvme: {between: [host, ssd], bandwidth: 7.88GB/s, latency: 1us, energy_per_bit: 5pJ}

A *unit* computes; its ``memory`` names the tier it reads and writes directly. A *tier* is ``count``
identical devices with addresses interleaved across them finely enough that every op's traffic splits
evenly (so one device is simulated with 1/count of the traffic). ``device`` is ``memory`` (the file's
``memory:`` block), ``dram`` (a DRAM preset given here), or ``pim`` / ``flash`` / ``sram`` (the file's
block of that name, when those tiers are built). A *link* joins two tiers (or a unit and a tier) with a
bandwidth, a latency and an energy per bit; transfers between tiers are scheduled on it.

What is simplified: the interleave across a tier's devices is ideal (no device sees more than its
share); links are full-duplex point to point, one transfer at a time per link (FIFO).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memsim import units
from memsim.config import yamltree as yt
from memsim.config.yamltree import memory_block as _memory_from_node
from memsim.config.schema import DramConfig
from memsim.errors import ConfigError

DTYPES = ("fp32", "fp16", "bf16", "int8", "int4")
UNIT_KINDS = ("gpu", "npu", "asic", "cpu")
TIER_DEVICES = ("memory", "dram", "pim", "flash", "sram")


def _bandwidth(node: yt.Node) -> float:
    try:
        v = units.parse_bandwidth_bytes_per_s(node.value)
    except ValueError as exc:
        raise node.error(str(exc)) from None
    if v <= 0:
        raise node.error(f"expected a positive bandwidth, got {yt.show(node.value)}")
    return v


def _flops(node: yt.Node) -> float:
    try:
        v = units.parse_flops(node.value)
    except ValueError as exc:
        raise node.error(str(exc)) from None
    if v <= 0:
        raise node.error(f"expected a positive rate, got {yt.show(node.value)}")
    return v


def _per_dtype(parse: yt.Parser, what: str) -> yt.Parser:
    def p(node: yt.Node) -> dict[str, float]:
        body = yt.mapping(node, f"a mapping of datatype ({', '.join(DTYPES)}) to {what}")
        out = {}
        for k, v in body.items():
            if k not in DTYPES:
                raise yt.unknown_key(v, k, DTYPES, "datatype")
            out[k] = parse(v)
        return out

    return p


def _efficiency(node: yt.Node) -> float:
    v = node.value
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
        raise node.error(f"expected a fraction in (0, 1], got {yt.show(v)}")
    return float(v)


@dataclass(frozen=True)
class UnitConfig:
    """One compute unit. Rates in FLOP/s (or OP/s) per datatype; times in ps; sizes in bytes."""

    name: str
    preset: str
    kind: str
    source: str
    matrix_flops: dict[str, float]
    vector_flops: dict[str, float]
    compute_efficiency: float
    memory_efficiency: float
    kernel_overhead_ps: int
    sram_bytes: int
    energy_pj_per_flop: dict[str, float]
    memory: str  # the tier this unit reads and writes directly
    static_power_mw: float = 0.0  # drawn for the whole run whether busy or not (leakage, clocks, board)

    def matrix_rate(self, dtype: str) -> float:
        if dtype not in self.matrix_flops:
            raise ConfigError(f"unit '{self.name}' ({self.preset}) has no matrix throughput for {dtype}; "
                              f"it has {', '.join(self.matrix_flops)}")
        return self.matrix_flops[dtype]

    def vector_rate(self, dtype: str) -> float:
        if dtype not in self.vector_flops:
            raise ConfigError(f"unit '{self.name}' ({self.preset}) has no vector throughput for {dtype}; "
                              f"it has {', '.join(self.vector_flops)}")
        return self.vector_flops[dtype]


@dataclass(frozen=True)
class PimUnitConfig:
    """The processing units inside a ``device: pim`` tier, as a compute unit: ``units: {pim: {device: hbm}}``.

    Ops assigned to it are timed by :mod:`memsim.pim.api` (GEMV-shaped ops, attention score / P.V,
    element-wise adds); they read their operands inside the banks, so they add no external traffic
    beyond what the PIM model counts (input vector, results)."""

    name: str
    tier: str
    preset: str
    source: str
    layout: str = "pimgpt"
    kind: str = "pim"
    memory_efficiency: float = 1.0
    kernel_overhead_ps: int = 0
    energy_pj_per_flop: dict = field(default_factory=dict)
    static_power_mw: float = 0.0

    @property
    def memory(self) -> str:
        return self.tier


@dataclass(frozen=True)
class TierConfig:
    """One memory tier: ``count`` identical devices. ``dram`` holds the device for DRAM-like tiers."""

    name: str
    device: str  # memory | dram | pim | flash | sram
    count: int
    dram: DramConfig | None = None
    other: Any = None  # the parsed pim / flash / sram block for those device kinds


@dataclass(frozen=True)
class LinkConfig:
    name: str
    ends: tuple[str, str]
    bandwidth_bytes_per_s: float
    latency_ps: int
    energy_pj_per_bit: float


@dataclass(frozen=True)
class SystemConfig:
    units: dict[str, UnitConfig | PimUnitConfig]
    tiers: dict[str, TierConfig]
    links: dict[str, LinkConfig] = field(default_factory=dict)

    def link_between(self, a: str, b: str) -> LinkConfig | None:
        for link in self.links.values():
            if set(link.ends) == {a, b}:
                return link
        return None


_UNIT_SECTIONS = ("throughput", "efficiency", "memory_system", "energy")
_UNIT_PRESET_KEYS = ("inherits", "kind", "source", "description", *_UNIT_SECTIONS)

_THROUGHPUT = {
    "matrix": yt.Field("matrix_flops", _per_dtype(_flops, "a rate like '312TFLOPS'"), True),
    "vector": yt.Field("vector_flops", _per_dtype(_flops, "a rate like '78TFLOPS'"), True),
}
_EFFICIENCY = {
    "compute": yt.Field("compute_efficiency", _efficiency, True),
    "memory": yt.Field("memory_efficiency", _efficiency, True),
    "kernel_overhead": yt.Field("kernel_overhead_ps", yt.duration(), True),
}
_MEMSYS = {"sram": yt.Field("sram_bytes", yt.size(), True)}
_ENERGY = {"per_flop": yt.Field("energy_pj_per_flop", _per_dtype(yt.energy(), "an energy like '0.2pJ'"), True),
           "static_power": yt.Field("static_power_mw", yt.power())}


def compute_library() -> yt.PresetLibrary:
    return yt.preset_library("compute", preset_keys=_UNIT_PRESET_KEYS, section_names=_UNIT_SECTIONS)


PIM_LAYOUTS = ("pimgpt", "tile_per_bank", "colsplit")


def _parse_pim_unit(name: str, block: yt.Node, body: dict) -> tuple[str, str, yt.Node]:
    allowed = ("device", "layout")
    for k, v in body.items():
        if k not in allowed:
            raise yt.unknown_key(v, k, allowed)
    layout = yt.choice(*PIM_LAYOUTS)(body["layout"]) if "layout" in body else "pimgpt"
    return yt.text(body["device"]), layout, body["device"]


def _parse_unit(name: str, block: yt.Node):
    lib = compute_library()
    body = yt.mapping(block, "a compute unit: a mapping with 'preset' and 'memory' (or 'device' for PIM)")
    if "device" in body:
        return _parse_pim_unit(name, block, body)
    mem = body.get("memory")
    if mem is None:
        raise ConfigError("required key missing; expected the name of the tier this unit reads",
                          file=block.file, path=yt.join(block.path, "memory"))
    memory = yt.text(mem)
    rest = yt.Node({k: v for k, v in body.items() if k != "memory"}, block.file, block.path)
    preset, layers = yt.resolve_preset(lib, rest, allowed=_UNIT_SECTIONS, what="a compute unit")
    values: dict[str, Any] = {}
    for section, table in (("throughput", _THROUGHPUT), ("efficiency", _EFFICIENCY),
                           ("memory_system", _MEMSYS), ("energy", _ENERGY)):
        v, _ = yt.parse_fields(layers, section, table, preset)
        values.update(v)
    kind_node = yt.scalar(layers, "kind")
    if kind_node is None:
        raise yt.missing(layers, None, "kind", preset)
    kind = yt.choice(*UNIT_KINDS)(kind_node)
    src = yt.scalar(layers, "source")
    return UnitConfig(name=name, preset=preset, kind=kind, source=yt.any_text(src) if src else "",
                      memory=memory, **values)


def _parse_tier(name: str, block: yt.Node, root: yt.Node) -> TierConfig:
    body = yt.mapping(block, "a tier: a mapping with 'device' (and 'count', 'preset' for dram tiers)")
    allowed = ("device", "count", "preset", "organization", "timing", "controller", "mapping", "energy",
               "line_bytes")
    for k, v in body.items():
        if k not in allowed:
            raise yt.unknown_key(v, k, allowed)
    dev_node = body.get("device")
    if dev_node is None:
        raise ConfigError(f"required key missing; expected one of {', '.join(TIER_DEVICES)}",
                          file=block.file, path=yt.join(block.path, "device"))
    device = yt.choice(*TIER_DEVICES)(dev_node)
    count = yt.count(body["count"]) if "count" in body else 1
    dram_keys = [k for k in body if k not in ("device", "count")]
    if device == "dram":
        dram_body = yt.Node({k: body[k] for k in dram_keys}, block.file, block.path)
        return TierConfig(name, device, count, dram=_memory_from_node(dram_body))
    if dram_keys:
        raise body[dram_keys[0]].error(f"only 'device: dram' tiers take device settings here; a '{device}' "
                                       f"tier uses the file's top-level '{device}:' block")
    source = root.value.get(device) if isinstance(root.value, dict) else None
    if source is None:
        raise dev_node.error(f"this tier uses the file's top-level '{device}:' block, which is missing")
    if device == "memory":
        return TierConfig(name, device, count, dram=_memory_from_node(source))
    from memsim.config.loader import SECTION_PARSERS, _section_parser

    other = _section_parser(SECTION_PARSERS[device])(source, root)
    dram = getattr(other, "memory", None)  # a PIM device sits in a DRAM device
    return TierConfig(name, device, count, dram=dram if isinstance(dram, DramConfig) else None, other=other)


_LINK_KEYS = ("bandwidth", "latency", "energy_per_bit")
_LINK_PRESET_KEYS = ("inherits", "source", "description", *_LINK_KEYS)


def link_library() -> yt.PresetLibrary:
    return yt.preset_library("link", preset_keys=_LINK_PRESET_KEYS, section_names=())


def _energy_per_bit(node: yt.Node) -> float:
    v = node.value
    try:
        return units.parse_energy_pj(v.removesuffix("/bit") if isinstance(v, str) else v)
    except ValueError as exc:
        raise node.error(str(exc)) from None


def _parse_link(name: str, block: yt.Node, tier_or_unit: set[str]) -> LinkConfig:
    body = yt.mapping(block, "a link: a mapping with 'between' and 'preset' or 'bandwidth' and 'latency'")
    allowed = ("between", "preset", *_LINK_KEYS)
    for k, v in body.items():
        if k not in allowed:
            raise yt.unknown_key(v, k, allowed)
    if "between" not in body:
        raise ConfigError("required key missing", file=block.file, path=yt.join(block.path, "between"))
    ends = body["between"]
    if not isinstance(ends.value, list) or len(ends.value) != 2:
        raise ends.error(f"expected a list of two tier names, got {yt.show(ends.value)}")
    a, b = (yt.text(e) for e in ends.value)
    for e, n in zip((a, b), ends.value):
        if e not in tier_or_unit:
            raise n.error(f"unknown tier or unit '{e}'; known: {', '.join(sorted(tier_or_unit))}")
    if a == b:
        raise ends.error("a link joins two different tiers")
    values: dict[str, yt.Node] = {}
    if "preset" in body:
        lib = link_library()
        rest = yt.Node({k: v for k, v in body.items() if k != "between"}, block.file, block.path)
        _, layers = yt.resolve_preset(lib, rest, allowed=_LINK_KEYS, what="a link")
        values = {k: v for k, v in layers.scalars.items() if k in _LINK_KEYS}
    else:
        values = {k: body[k] for k in _LINK_KEYS if k in body}
    for k in ("bandwidth", "latency"):
        if k not in values:
            raise ConfigError("required key missing (give it, or a 'preset')", file=block.file,
                              path=yt.join(block.path, k))
    epb = _energy_per_bit(values["energy_per_bit"]) if "energy_per_bit" in values else 0.0
    return LinkConfig(name, (a, b), _bandwidth(values["bandwidth"]), yt.duration()(values["latency"]), epb)


def parse_section(block: yt.Node, root: yt.Node) -> SystemConfig:
    """Parse the ``system:`` block (see the module docstring); errors name the file and YAML path."""
    body = yt.mapping(block, "a mapping with 'units', 'tiers' and optional 'links'")
    allowed = ("units", "tiers", "links")
    for k, v in body.items():
        if k not in allowed:
            raise yt.unknown_key(v, k, allowed)
    for k in ("units", "tiers"):
        if k not in body:
            raise ConfigError("required key missing", file=block.file, path=yt.join(block.path, k))
    tiers = {n: _parse_tier(n, b, root) for n, b in yt.mapping(body["tiers"], "a mapping of tier names").items()}
    if not tiers:
        raise body["tiers"].error("expected at least one tier")
    units_ = {}
    for n, b in yt.mapping(body["units"], "a mapping of unit names").items():
        u = _parse_unit(n, b)
        if isinstance(u, tuple):  # a PIM unit: bind it to its tier
            tier_name, layout, node = u
            t = tiers.get(tier_name)
            if t is None or t.device != "pim":
                pims = [k for k, v in tiers.items() if v.device == "pim"]
                raise node.error(f"a PIM unit needs a 'device: pim' tier; '{tier_name}' is "
                                 f"{'not a tier' if t is None else f'a {t.device} tier'} (PIM tiers: "
                                 f"{', '.join(pims) or 'none'})")
            u = PimUnitConfig(name=n, tier=tier_name, preset=t.other.name, source=t.other.source, layout=layout)
        units_[n] = u
    if not units_:
        raise body["units"].error("expected at least one compute unit")
    for n, u in units_.items():
        if u.memory not in tiers:
            node = body["units"].value[n].value["memory"]
            raise node.error(f"unknown tier '{u.memory}'; tiers: {', '.join(tiers)}")
    clash = set(tiers) & set(units_)
    if clash:
        raise body["units"].error(f"names used for both a unit and a tier: {', '.join(sorted(clash))}")
    links = {}
    if "links" in body:
        names = set(tiers) | set(units_)
        links = {n: _parse_link(n, b, names) for n, b in yt.mapping(body["links"], "a mapping of link names").items()}
    return SystemConfig(units=units_, tiers=tiers, links=links)
