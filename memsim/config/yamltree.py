"""Building blocks for config sections of every device kind (PIM, flash, SRAM, compute, links).

The DRAM loader (:mod:`memsim.config.loader`) reads YAML into an *annotated tree*: every value is a
:class:`Node` that remembers its file and dotted path, so that any error can name both. This module
exposes that machinery under public names for the other device kinds, so that every section of a
hardware config validates, layers presets and reports errors the same way.

A typical section parser::

    from memsim.config import yamltree as yt

    _FIELDS = {"page_size": yt.Field("page_bytes", yt.size(positive=True), required=True), ...}
    _LIB = yt.preset_library("flash", preset_keys=(...), section_names=("organization", "timing"))

    def parse_section(block: yt.Node, root: yt.Node) -> FlashConfig:
        layers = yt.resolve_preset(_LIB, block, allowed=(...))
        values, nodes = yt.parse_fields(layers, "timing", _TIMING_FIELDS, preset_name)
        ...

Presets of kind ``K`` live in ``memsim/presets/K/*.yaml`` (package data): a mapping of preset names to
bodies, each with ``source:`` and optionally ``inherits:``.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from memsim import units
from memsim.config.loader import (
    PRESET_PACKAGE,
    _memory_from_node,
    _bool,
    _choice,
    _count,
    _fraction01,
    _join,
    _Layers,
    _layer,
    _mapping,
    _Node,
    _nonneg_int,
    _PresetLibrary,
    _read_yaml_file,
    _show,
    _text,
    _any_text,
    _unit,
    _unknown_key,
    _wrap,
)
from memsim.errors import ConfigError

Node = _Node
Layers = _Layers
PresetLibrary = _PresetLibrary
Parser = Callable[[Node], Any]

# Scalar parsers (Node -> value), each raising ConfigError at the node's file and path.
count = _count  # positive int
nonneg_int = _nonneg_int
fraction01 = _fraction01
boolean = _bool
text = _text  # non-empty string
any_text = _any_text
choice = _choice  # choice("a", "b") -> Parser
mapping = _mapping  # mapping(node, "what was expected") -> dict[str, Node]
unknown_key = _unknown_key  # unknown_key(node, key, allowed) -> ConfigError (with a suggestion)
join = _join
show = _show
wrap = _wrap  # wrap(plain_value, file, path) -> Node
read_yaml_file = _read_yaml_file
#: memory_block(node) -> DramConfig: a ``memory:``-style block (preset + overrides), for device kinds
#: that sit in a DRAM device (PIM) or tiers that name a DRAM preset
memory_block = _memory_from_node


def duration(*, positive: bool = False) -> Parser:
    """'14ns', '3.9us', '1250ps' -> integer ps."""
    return _unit(units.parse_duration_ps, positive=positive)


def size(*, positive: bool = False) -> Parser:
    """'2KiB', '16kB', '64B' -> integer bytes."""
    return _unit(units.parse_size_bytes, positive=positive)


def frequency(*, positive: bool = True) -> Parser:
    """'1.2GHz', '300MHz' -> integer Hz."""
    return _unit(units.parse_frequency_hz, positive=positive)


def bitrate(*, positive: bool = True) -> Parser:
    """'6.4Gbps', '6400MT/s' -> integer bits per second (per pin)."""
    return _unit(units.parse_bitrate_bps, positive=positive)


def energy(*, positive: bool = False) -> Parser:
    """'3.5pJ', '1.2nJ' -> float pJ."""
    return _unit(units.parse_energy_pj, positive=positive)


def power(*, positive: bool = False) -> Parser:
    """'120mW', '7W' -> float mW."""
    return _unit(units.parse_power_mw, positive=positive)


def number(*, positive: bool = False, minimum: float | None = None) -> Parser:
    """A plain finite number (int or float, not bool)."""

    def parse(node: Node) -> float:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v in (float("inf"), float("-inf")):
            raise node.error(f"expected a number, got {show(v)}")
        if positive and v <= 0:
            raise node.error(f"expected a positive number, got {show(v)}")
        if minimum is not None and v < minimum:
            raise node.error(f"expected a number >= {minimum:g}, got {show(v)}")
        return float(v)

    return parse


@dataclass(frozen=True)
class Field:
    """One YAML key of a section: the dataclass field it fills, its parser, and whether it is required."""

    field: str
    parse: Parser
    required: bool = False


def preset_library(kind: str, *, preset_keys: tuple[str, ...], section_names: tuple[str, ...]) -> PresetLibrary:
    """The shipped presets of one device kind, ``memsim/presets/<kind>/*.yaml`` (parsed once per process)."""
    return _cached_library(kind, preset_keys, section_names)


@lru_cache(maxsize=None)
def _cached_library(kind: str, preset_keys: tuple[str, ...], section_names: tuple[str, ...]) -> PresetLibrary:
    folder = resources.files(PRESET_PACKAGE).joinpath(kind)
    return PresetLibrary.from_directory(folder, label=f"memsim/presets/{kind}", preset_keys=preset_keys,
                                        section_names=section_names)


def resolve_preset(lib: PresetLibrary, block: Node, *, allowed: tuple[str, ...], what: str) -> tuple[str, Layers]:
    """Layer a config block (``{preset: NAME, <section>: {...}, ...}``) over its preset's layers.

    Returns ``(preset_name, layers)``. ``allowed`` are the block's keys besides ``preset``; ``what``
    describes the block for error messages ("a flash device").
    """
    body = mapping(block, f"{what}: a mapping with 'preset' and optional sections")
    keys = ("preset", *allowed)
    for key, child in body.items():
        if key not in keys:
            raise unknown_key(child, key, keys)
    preset_node = body.get("preset")
    if preset_node is None:
        raise ConfigError(f"required key missing; expected a preset name, one of: {', '.join(lib.names())}",
                          file=block.file, path=join(block.path, "preset"))
    name = preset_node.value
    if not isinstance(name, str) or name not in lib.bodies:
        raise lib.unknown(name, preset_node)
    user = {k: v for k, v in body.items() if k != "preset"}
    return name, _layer(lib.layers(name), Node(user, block.file, block.path), allowed, lib.section_names)


def parse_fields(layers: Layers, section: str, table: Mapping[str, Field], preset: str
                 ) -> tuple[dict[str, Any], dict[str, Node]]:
    """Parse one merged section with ``table``; returns (field values, the node of each YAML key).

    Unknown keys are rejected with a suggestion; required fields that no layer sets are reported at the
    outermost block's path.
    """
    values: dict[str, Any] = {}
    nodes: dict[str, Node] = {}
    for key, node in layers.sections[section].items():
        spec = table.get(key)
        if spec is None:
            raise unknown_key(node, key, tuple(table))
        values[spec.field] = spec.parse(node)
        nodes[key] = node
    for key, spec in table.items():
        if spec.required and key not in nodes:
            raise missing(layers, section, key, preset)
    return values, nodes


def missing(layers: Layers, section: str | None, key: str, preset: str) -> ConfigError:
    """The error for a required field that neither the preset nor the config sets."""
    path = join(layers.where.path, join(section, key) if section else key)
    return ConfigError(f"required field missing (preset '{preset}' does not set it either)",
                       file=layers.where.file, path=path)


def scalar(layers: Layers, key: str) -> Node | None:
    """A top-level (non-section) key of the merged layers, or None."""
    return layers.scalars.get(key)


def load_block(source: Mapping[str, Any] | str, parser: Callable[[Node, Node], Any], *, key: str,
               file: str | None = None) -> Any:
    """Parse one section from a plain mapping or a YAML file whose top level holds ``key``.

    For tests and library use: ``load_block({"preset": "X"}, parse_section, key="flash")``.
    """
    if isinstance(source, str):
        file = source
        data = read_yaml_file(source)
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"expected a mapping with a '{key}' key, got {show(data)}", file=file)
        root = wrap(data, file, "")
        return parser(root.value[key], root)
    root = wrap({key: dict(source)}, file, "")
    return parser(root.value[key], root)


class DeviceSection:
    """The public functions of a preset-backed device section (flash, SRAM, ...), built from its parts.

    ``build(name, layers)`` turns resolved layers into the frozen config; ``library()`` returns the kind's
    :class:`PresetLibrary`. Provides ``parse_section`` (for :data:`memsim.config.loader.SECTION_PARSERS`),
    ``get_preset``, ``list_presets`` and ``load`` (a hardware YAML path or a plain mapping).
    """

    def __init__(self, key: str, library: Callable[[], PresetLibrary], build: Callable[[str, Layers], Any],
                 sections: tuple[str, ...], what: str):
        self.key, self.library, self.build, self.sections, self.what = key, library, build, sections, what

    def parse_section(self, block: Node, root: Node) -> Any:
        name, layers = resolve_preset(self.library(), block, allowed=self.sections, what=self.what)
        return self.build(name, layers)

    def get_preset(self, name: str) -> Any:
        """A shipped preset by name (ConfigError listing the known names otherwise)."""
        lib = self.library()
        if name not in lib.bodies:
            raise lib.unknown(name, None)
        return self.build(name, lib.layers(name))

    def list_presets(self) -> list[tuple[str, str]]:
        """(name, source) of every shipped preset."""
        return [(n, self.get_preset(n).source) for n in self.library().names()]

    def load(self, source: Any, *, file: str | None = None) -> Any:
        """The section of a hardware YAML file (path) or of a plain mapping ``{preset: ..., ...}``."""
        if isinstance(source, str) or hasattr(source, "__fspath__"):
            from memsim.config import load_hw_config

            return load_hw_config(str(source)).section(self.key)
        return load_block(source, self.parse_section, key=self.key, file=file)
