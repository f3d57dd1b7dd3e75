"""Load hardware configs and DRAM presets from YAML into frozen, validated dataclasses.

A hardware config names a preset and overrides parts of it::

    name: hbm3-default          # optional, defaults to the file stem
    memory:
      preset: HBM3_6400          # required
      organization: {channels: 16}
      timing: {tRCDRD: 14ns}     # or {nCK: 14} / "14nCK": cycles of the final tCK
      controller: {read_queue: 64, row_policy: closed}
      mapping: {scheme: RoBaRaCoCh}
      energy: {read_per_bit: 3.48pJ}
      line_bytes: 64B

Layers, lowest first: the preset's ancestors (``inherits:``), the preset, the file, then dotted
``overrides`` (``{"memory.timing.tRP": "15ns"}``). Layering is per field: a later layer replaces whole
values (a ``{nCK: 14}`` is one value), it never merges inside one. Only after all layers are applied are
values converted and checked, so a timing given in cycles is scaled by the *final* tCK: overriding tCK
rescales nCK-defined timings and keeps ns-defined ones.

Every problem with the input raises :class:`memsim.errors.ConfigError` naming the file and the dotted
YAML path of the offending value (the file that set it, which may be a preset file or ``<overrides>``).

What is modelled / simplified:

* Physical-plausibility checks cover what the engine relies on (positive power-of-two counts, tRAS >=
  tRCDRD, tRC >= tRAS + tRP - tCK, tREFI > tRFC, tCCD_L >= tCCD_S, ...); they do not check every JEDEC
  inequality, nor that tCK matches ``data_rate`` (standards differ in transfers per clock).
* Address-mapping schemes are checked for well-formedness only; their bit-level meaning belongs to the
  mapping module.
* Loading is deterministic and has no side effects; parsed preset files are cached per process.
"""
from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from memsim import units
from memsim.config.schema import (
    TIMING_YAML_NAMES,
    AddressMapping,
    ControllerConfig,
    DramConfig,
    DramEnergy,
    DramOrganization,
    DramTiming,
    queue_entries_per_channel,
)
from memsim.errors import ConfigError

__all__ = [
    "HardwareConfig",
    "load_hw_config",
    "load_dram_config",
    "get_preset",
    "list_presets",
    "PRESET_PACKAGE",
    "PRESET_DIR",
]

#: Package and sub-folder holding the preset YAML files (package data).
PRESET_PACKAGE = "memsim.presets"
PRESET_DIR = "dram"
_PRESET_LABEL = "memsim/presets/dram"  # how preset files are named in error messages
_OVERRIDES_LABEL = "<overrides>"

_MAX_DEPTH = 32  # YAML nesting deeper than this is certainly a mistake (and would exhaust recursion)
_MAX_NODES = 100_000  # guards against alias bombs ("billion laughs")
MAX_QUEUE_ENTRIES = 1 << 24  # queued transactions per channel: 1 << memsim.dram.kernel.QSHIFT (a test checks)


@dataclass(frozen=True)
class HardwareConfig:
    """A loaded hardware config file.

    Attributes
    ----------
    name : str
        ``name:`` from the file, or the file stem.
    memory : DramConfig or None
        The resolved, validated main DRAM/HBM device (``memory:``); None when the file describes only
        other tiers (a flash-only or SRAM-only config).
    source_file : str
        The path the config was read from, as given.
    sections : mapping of str to object
        Every other top-level block (``pim``, ``flash``, ``sram``, ``system`` ...), each parsed by the
        parser registered for it in :data:`SECTION_PARSERS`; absent blocks are absent here.
    """

    name: str
    memory: DramConfig | None
    source_file: str
    sections: Mapping[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> Any:
        """The parsed block ``name``; a ConfigError naming the file if the config has none."""
        if name not in self.sections:
            raise ConfigError(f"this config has no '{name}' section (it has: "
                              f"{', '.join(['memory'] * (self.memory is not None) + sorted(self.sections)) or 'nothing'})",
                              file=self.source_file)
        return self.sections[name]


# ----------------------------------------------------------------------------------------------------
# Annotated YAML tree: every value remembers the file and dotted path it came from.
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Node:
    value: Any  # scalar, dict[str, _Node] or list[_Node]
    file: str | None
    path: str

    def error(self, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, path=self.path or None)


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _show(value: Any) -> str:
    """Render an offending value YAML-style, bounded in length."""
    if value is None:
        text = "null"
    elif value is True or value is False:
        text = "true" if value else "false"
    else:
        try:
            text = repr(_plain(value))
        except ValueError:  # ints beyond the str-conversion digit limit
            text = f"<{type(value).__name__}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _plain(value: Any) -> Any:
    """Strip annotations from a (possibly) annotated value."""
    if isinstance(value, _Node):
        value = value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _wrap(obj: Any, file: str | None, path: str, *, _depth: int = 0, _count: list[int] | None = None) -> _Node:
    """Annotate a plain YAML value with its file and path, checking keys are strings."""
    count = _count if _count is not None else [0]
    count[0] += 1
    if count[0] > _MAX_NODES:
        raise ConfigError(f"document too large (more than {_MAX_NODES} values; alias bomb?)", file=file)
    if _depth > _MAX_DEPTH:
        raise ConfigError(f"nested more than {_MAX_DEPTH} levels deep", file=file, path=path or None)
    if isinstance(obj, dict):
        out: dict[str, _Node] = {}
        for key, val in obj.items():
            if not isinstance(key, str):
                # YAML 1.1 turns keys such as 1, yes, on, null into non-strings.
                raise ConfigError(f"keys must be strings, got {_show(key)}",
                                  file=file, path=_join(path, str(key)))
            out[key] = _wrap(val, file, _join(path, key), _depth=_depth + 1, _count=count)
        return _Node(out, file, path)
    if isinstance(obj, list):
        return _Node([_wrap(v, file, f"{path}[{i}]", _depth=_depth + 1, _count=count)
                      for i, v in enumerate(obj)], file, path)
    # Scalars; dates, binary blobs and other YAML types are kept so that the field parser reports them.
    return _Node(obj, file, path)


# ----------------------------------------------------------------------------------------------------
# YAML reading
# ----------------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, "found an unhashable key", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}",
                key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse_yaml_text(text: str, file: str) -> Any:
    """Parse YAML text; syntax errors become ConfigError with the line and column."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - _StrictLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"{where}invalid YAML: {problem}", file=file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", file=file) from None
    except ValueError as exc:  # PyYAML's int() on a scalar beyond the digit limit
        raise ConfigError(f"invalid YAML value: {exc}", file=file) from None


def _read_yaml_file(path: str | Path) -> Any:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", file=file) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", file=file) from None
    except ValueError as exc:  # e.g. a NUL byte in the path
        raise ConfigError(f"invalid file name: {exc}", file=repr(file)) from None
    return _parse_yaml_text(text, file)


def _unknown_key(node: _Node, key: str, allowed: tuple[str, ...] | list[str], what: str = "key") -> ConfigError:
    lowered = {a.lower(): a for a in allowed}
    if key.lower() in lowered:  # wrong case
        guesses = [lowered[key.lower()]]
    else:  # a truncated name (tRCD -> tRCDRD, tRCDWR) first, then the closest spelling
        guesses = [a for a in allowed if a.lower().startswith(key.lower())] if len(key) >= 3 else []
        guesses = guesses or difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    hint = f" (did you mean {' or '.join(repr(g) for g in guesses[:3])}?)" if guesses else ""
    return node.error(f"unknown {what} '{key}'{hint}; allowed: {', '.join(allowed)}")


def _mapping(node: _Node, what: str) -> dict[str, _Node]:
    if node.value is None:  # an empty section ("timing:" with everything commented out)
        return {}
    if not isinstance(node.value, dict):
        raise node.error(f"expected {what}, got {_show(node.value)}")
    return node.value


# ----------------------------------------------------------------------------------------------------
# Field parsers: _Node -> Python value, raising ConfigError with the node's location
# ----------------------------------------------------------------------------------------------------

_Parser = Callable[[_Node], Any]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(node: _Node) -> int:
    if not _is_int(node.value) or node.value <= 0:
        raise node.error(f"expected a positive integer, got {_show(node.value)}")
    return node.value


def _nonneg_int(node: _Node) -> int:
    if not _is_int(node.value) or node.value < 0:
        raise node.error(f"expected a non-negative integer, got {_show(node.value)}")
    return node.value


def _fraction01(node: _Node) -> float:
    v = node.value
    # "not 0 <= v <= 1" also rejects NaN and infinities.
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise node.error(f"expected a number between 0 and 1, got {_show(v)}")
    return float(v)


def _bool(node: _Node) -> bool:
    if not isinstance(node.value, bool):
        raise node.error(f"expected true or false, got {_show(node.value)}")
    return node.value


def _text(node: _Node) -> str:
    if not isinstance(node.value, str) or not node.value.strip():
        raise node.error(f"expected a non-empty string, got {_show(node.value)}")
    return node.value


def _any_text(node: _Node) -> str:
    if not isinstance(node.value, str):
        raise node.error(f"expected a string, got {_show(node.value)}")
    return node.value


def _choice(*options: str) -> _Parser:
    def parse(node: _Node) -> str:
        v = node.value
        if not isinstance(v, str) or v not in options:
            guess = difflib.get_close_matches(v, options, n=1) if isinstance(v, str) else []
            hint = f" (did you mean '{guess[0]}'?)" if guess else ""
            raise node.error(f"expected one of {', '.join(options)}, got {_show(v)}{hint}")
        return v

    return parse


def _unit(parse_fn: Callable[..., Any], *, positive: bool = False) -> _Parser:
    def parse(node: _Node) -> Any:
        try:
            value = parse_fn(node.value)
        except ValueError as exc:
            raise node.error(str(exc)) from None
        if positive and value <= 0:
            raise node.error(f"expected a positive value, got {_show(node.value)}")
        return value

    return parse


def _energy_per_bit(node: _Node) -> float:
    """An energy per bit: '3.48pJ', '3.48pJ/bit' or '3.48pJ/b'."""
    v = node.value
    if isinstance(v, str):
        v = re.sub(r"\s*/\s*(bit|b)\s*$", "", v)
    try:
        return units.parse_energy_pj(v)
    except ValueError:
        raise node.error(f"expected an energy per bit like '3.48pJ' or '3.48pJ/bit', got {_show(node.value)}") \
            from None


def _names(node: _Node) -> tuple[str, ...]:
    if not isinstance(node.value, list):
        raise node.error(f"expected a list of field names like [co, co, ch, ...], got {_show(node.value)}")
    out = []
    for item in node.value:
        if not isinstance(item.value, str):
            raise item.error(f"expected a field name ({', '.join(_DS3_FIELDS)}), got {_show(item.value)}")
        if item.value not in _DS3_FIELDS:
            raise _unknown_key(item, item.value, _DS3_FIELDS, what="address field")
        out.append(item.value)
    return tuple(out)


def _scheme(node: _Node) -> str:
    v = node.value
    if not isinstance(v, str) or not v:
        raise node.error("expected an address-mapping scheme such as 'rorabgbachco', 'RoBaRaCoCh', "
                         f"'mop4clxor' or 'custom', got {_show(v)}")
    if v.lower() == "mop4clxor":
        return "mop4clxor"
    return v


_duration = _unit(units.parse_duration_ps)
_bitrate = _unit(units.parse_bitrate_bps, positive=True)
_size = _unit(units.parse_size_bytes, positive=True)
_energy = _unit(units.parse_energy_pj)
_power = _unit(units.parse_power_mw)


def _finite(parser: _Parser) -> _Parser:
    def parse(node: _Node) -> float:
        value = parser(node)
        if not math.isfinite(value):
            raise node.error(f"expected a finite value, got {_show(node.value)}")
        return value

    return parse


# ----------------------------------------------------------------------------------------------------
# The YAML key -> dataclass field table (the one place that defines the config surface)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    field: str
    parse: _Parser
    required: bool = False


_ORGANIZATION: dict[str, _Field] = {
    "channels": _Field("channels", _count, True),
    "pseudo_channels": _Field("pseudo_channels", _count, True),
    "ranks": _Field("ranks", _count, True),
    "bank_groups": _Field("bank_groups", _count, True),
    "banks_per_group": _Field("banks_per_group", _count, True),
    "rows": _Field("rows", _count, True),
    "columns": _Field("columns", _count, True),
    "bus_width_bits": _Field("bus_width_bits", _count, True),
    "burst_length": _Field("burst_length", _count, True),
    "data_rate": _Field("data_rate_bps", _bitrate, True),
    "density_gbit": _Field("density_gbit", _nonneg_int),
}

_CONTROLLER: dict[str, _Field] = {
    "read_queue": _Field("read_queue", _count),
    "write_queue": _Field("write_queue", _count),
    "write_high_watermark": _Field("write_high_watermark", _fraction01),
    "write_low_watermark": _Field("write_low_watermark", _fraction01),
    "scheduler": _Field("scheduler", _choice("frfcfs", "first-ready", "fcfs")),
    "frfcfs_cap": _Field("frfcfs_cap", _nonneg_int),
    "row_policy": _Field("row_policy", _choice("open", "closed", "timeout")),
    "row_timeout": _Field("row_timeout_ps", _duration),
    "refresh": _Field("refresh", _choice("all-bank", "per-bank", "none")),
    "refresh_level": _Field("refresh_level", _choice("rank", "pseudo_channel")),
    "refresh_stagger": _Field("refresh_stagger", _bool),
    "separate_row_column_bus": _Field("separate_row_column_bus", _bool),
    "posted_writes": _Field("posted_writes", _bool),
    "read_from_write_queue": _Field("read_from_write_queue", _bool),
    "precharge_guard": _Field("precharge_guard", _bool),
    "active_buffer": _Field("active_buffer", _nonneg_int),
    "bank_queue_depth": _Field("bank_queue_depth", _nonneg_int),
}

_MAPPING: dict[str, _Field] = {
    "scheme": _Field("scheme", _scheme),
    "bit_order": _Field("bit_order", _names),
    "channel_interleave_bits": _Field("channel_interleave_bits", _nonneg_int),
}

_ENERGY: dict[str, _Field] = {
    "act": _Field("act_pj", _finite(_energy)),
    "read_per_bit": _Field("read_pj_per_bit", _finite(_energy_per_bit)),
    "write_per_bit": _Field("write_pj_per_bit", _finite(_energy_per_bit)),
    "refresh": _Field("refresh_pj", _finite(_energy)),
    "background_per_channel": _Field("background_mw_per_channel", _finite(_power)),
    "source": _Field("source", _any_text),
}

# Timing is table-driven by schema.TIMING_YAML_NAMES; these may be omitted (defaults in _build_timing).
_OPTIONAL_TIMINGS = ("tCCD_R", "tRTW", "tRFCpb", "tREFIpb", "tRC")

_SECTIONS: dict[str, dict[str, _Field] | None] = {
    "organization": _ORGANIZATION,
    "timing": None,  # TIMING_YAML_NAMES
    "controller": _CONTROLLER,
    "mapping": _MAPPING,
    "energy": _ENERGY,
}

#: Keys of the ``memory:`` block of a hardware config.
_MEMORY_KEYS = ("preset", *_SECTIONS, "line_bytes")
#: Keys of one preset in memsim/presets/dram/*.yaml.
_PRESET_KEYS = ("inherits", "standard", "source", "description", *_SECTIONS, "line_bytes")
#: Top-level blocks of a hardware config besides ``name`` and ``memory``: block name ->
#: ``"module:function"``. The function takes the block as an annotated node (see
#: :mod:`memsim.config.yamltree`) plus the whole file's root node, and returns a frozen config object
#: or raises ConfigError. Modules are imported only when a file uses their block, so one device kind's
#: import cost (or a half-written module) never touches configs that do not use it.
SECTION_PARSERS: dict[str, str] = {
    "pim": "memsim.pim.config:parse_section",
    "flash": "memsim.flash.config:parse_section",
    "sram": "memsim.sram.config:parse_section",
    "system": "memsim.system.config:parse_section",
    "policy": "memsim.policies.config:parse_section",
}
#: Top-level keys of a hardware config file.
_FILE_KEYS = ("name", "memory", *SECTION_PARSERS)

# DRAMSim3-style two-letter address fields (and the level count each one indexes).
_DS3_FIELDS = ("ro", "ra", "bg", "ba", "ch", "pc", "co")


# ----------------------------------------------------------------------------------------------------
# Layering (inheritance, config file, overrides)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layers:
    """The merged view of all layers: scalar keys and per-section fields, each an annotated _Node."""

    scalars: Mapping[str, _Node]
    sections: Mapping[str, Mapping[str, _Node]]
    where: _Node  # the outermost layer's block, blamed for fields that no layer defines


def _layer(base: _Layers | None, block: _Node, allowed: tuple[str, ...],
           section_names: Any = None) -> _Layers:
    """Apply one layer (a preset body or a memory block) on top of ``base``; later layers win per field.

    ``section_names`` are the keys whose values are merged field by field (default: the DRAM sections).
    """
    names = _SECTIONS if section_names is None else section_names
    body = _mapping(block, "a mapping")
    scalars = dict(base.scalars) if base else {}
    sections = {name: dict(base.sections[name]) if base else {} for name in names}
    for key, child in body.items():
        if key not in allowed:
            raise _unknown_key(child, key, allowed)
        if key in names:
            sections[key].update(_mapping(child, f"a mapping of {key} fields"))
        else:
            scalars[key] = child
    return _Layers(scalars, sections, block)


# ----------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------


class _PresetLibrary:
    """Presets parsed from a set of YAML files; resolves ``inherits:`` lazily and caches the results.

    Each file maps preset names to preset bodies (keys ``_PRESET_KEYS``). A name defined twice, in one
    file or across files, is an error.
    """

    def __init__(self, files: list[tuple[str, str]], preset_keys: tuple[str, ...] = _PRESET_KEYS,
                 section_names: tuple[str, ...] | None = None):
        """``files`` holds ``(label, text)`` pairs; ``label`` names the file in error messages.

        ``preset_keys`` and ``section_names`` default to the DRAM preset layout; other device kinds
        (PIM, flash, SRAM, compute units) pass their own and use :meth:`layers`, not :meth:`get`.
        """
        self.preset_keys = preset_keys
        self.section_names = section_names
        bodies: dict[str, _Node] = {}
        for label, text in files:
            data = _parse_yaml_text(text, label)
            if data is None:
                continue
            if not isinstance(data, dict):
                raise ConfigError(f"expected a mapping of preset names to presets, got {_show(data)}", file=label)
            root = _wrap(data, label, "")
            for name, body in root.value.items():
                if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
                    raise body.error("preset names may contain only letters, digits, '_', '.' and '-'")
                if name in bodies:
                    raise body.error(f"duplicate preset name '{name}' (also defined in {bodies[name].file})")
                bodies[name] = body
        self.bodies: Mapping[str, _Node] = bodies
        self._layers: dict[str, _Layers] = {}
        self._configs: dict[str, DramConfig] = {}

    @classmethod
    def from_directory(cls, folder: Any, label: str | None = None, **kwargs: Any) -> _PresetLibrary:
        """Read every ``*.yaml`` / ``*.yml`` in ``folder`` (a Path or importlib Traversable), by name."""
        entries = sorted((f for f in folder.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name)
        prefix = label if label is not None else str(folder)
        return cls([(f"{prefix}/{f.name}", f.read_text(encoding="utf-8")) for f in entries], **kwargs)

    def names(self) -> list[str]:
        return sorted(self.bodies)

    def unknown(self, name: Any, node: _Node | None) -> ConfigError:
        known = self.names()
        guess = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        message = f"unknown preset {_show(name)}{hint}; known presets: {', '.join(known)}"
        return node.error(message) if node is not None else ConfigError(message)

    def layers(self, name: str) -> _Layers:
        """The preset's layers after resolving ``inherits:`` (root ancestor first, the preset last)."""
        if name in self._layers:
            return self._layers[name]
        chain: list[str] = []
        current = name
        while True:
            if current in chain:
                cycle = " -> ".join([*chain[chain.index(current):], current])
                raise self.bodies[chain[-1]].value["inherits"].error(f"inheritance cycle: {cycle}")
            chain.append(current)
            body = _mapping(self.bodies[current], "a preset (a mapping)")
            parent = body.get("inherits")
            if parent is None:
                break
            if not isinstance(parent.value, str):
                raise parent.error(f"expected the name of another preset, got {_show(parent.value)}")
            if parent.value not in self.bodies:
                raise self.unknown(parent.value, parent)
            current = parent.value
        layers: _Layers | None = None
        for preset in reversed(chain):
            layers = _layer(layers, self.bodies[preset], self.preset_keys, self.section_names)
        assert layers is not None
        self._layers[name] = layers
        return layers

    def get(self, name: Any) -> DramConfig:
        if not isinstance(name, str) or name not in self.bodies:
            raise self.unknown(name, None)
        if name not in self._configs:
            self._configs[name] = _build(self.layers(name), name)
        return self._configs[name]

    def describe(self, name: str) -> tuple[str, str, str]:
        scalars = self.layers(name).scalars
        standard, source = scalars.get("standard"), scalars.get("source")
        return (name, _text(standard) if standard else "", _text(source) if source else "")


@lru_cache(maxsize=None)
def _library() -> _PresetLibrary:
    """The shipped presets (package data), parsed once per process."""
    folder = resources.files(PRESET_PACKAGE).joinpath(PRESET_DIR)
    return _PresetLibrary.from_directory(folder, label=_PRESET_LABEL)


def get_preset(name: str) -> DramConfig:
    """Return the named preset as a validated :class:`DramConfig` (cached).

    Raises
    ------
    ConfigError
        If no preset has that name (the message lists the known ones), or the preset is invalid.
    """
    return _library().get(name)


def list_presets() -> list[tuple[str, str, str]]:
    """All presets as ``(name, standard, source)``, sorted by name."""
    lib = _library()
    return [lib.describe(name) for name in lib.names()]


# ----------------------------------------------------------------------------------------------------
# Building and validating a DramConfig
# ----------------------------------------------------------------------------------------------------


def _missing(layers: _Layers, section: str | None, key: str, preset: str) -> ConfigError:
    path = _join(layers.where.path, _join(section, key) if section else key)
    return ConfigError(f"required field missing (preset '{preset}' does not set it either)",
                       file=layers.where.file, path=path)


def _parse_section(layers: _Layers, section: str, table: dict[str, _Field]) -> tuple[dict[str, Any], dict[str, _Node]]:
    values: dict[str, Any] = {}
    nodes: dict[str, _Node] = {}
    for key, node in layers.sections[section].items():
        spec = table.get(key)
        if spec is None:
            raise _unknown_key(node, key, tuple(table))
        values[spec.field] = spec.parse(node)
        nodes[key] = node
    return values, nodes


_NCK_TEXT = re.compile(r"^\s*(\d{1,18})\s*nCK\s*$")
_TIMING_EXPECTED = "expected a duration like '14ns' or cycles like {nCK: 14}"


def _timing_value(node: _Node, t_ck_ps: int) -> int:
    """A timing in ps from '14ns', {nCK: 14} or '14nCK' (cycles of the final tCK)."""
    v = node.value
    if isinstance(v, dict):
        if set(v) != {"nCK"} or not _is_int(v["nCK"].value) or v["nCK"].value < 0:
            raise node.error(f"expected cycles like {{nCK: 14}} (a non-negative integer), got {_show(v)}")
        return v["nCK"].value * t_ck_ps
    if isinstance(v, str):
        m = _NCK_TEXT.match(v)
        if m:
            return int(m.group(1)) * t_ck_ps
        try:
            return units.parse_duration_ps(v)
        except ValueError as exc:
            # A number with a duration unit keeps the specific message (negative, not whole ps, ...).
            if str(exc).startswith(("unknown unit", "expected a duration")):
                raise node.error(f"{_TIMING_EXPECTED}, got {_show(v)}") from None
            raise node.error(str(exc)) from None
    raise node.error(f"{_TIMING_EXPECTED}, got {_show(v)}")


def _build_timing(layers: _Layers, org: DramOrganization, preset: str) -> tuple[DramTiming, dict[str, _Node]]:
    nodes = dict(layers.sections["timing"])
    for key, node in nodes.items():
        if key not in TIMING_YAML_NAMES:
            raise _unknown_key(node, key, tuple(TIMING_YAML_NAMES), what="timing")
    if "tCK" not in nodes:
        raise _missing(layers, "timing", "tCK", preset)
    ck = nodes["tCK"]
    if isinstance(ck.value, dict) or (isinstance(ck.value, str) and _NCK_TEXT.match(ck.value)):
        raise ck.error(f"tCK must be a duration like '0.625ns', not cycles; got {_show(ck.value)}")
    t_ck = _unit(units.parse_duration_ps, positive=True)(ck)
    ps = {"tCK": t_ck}
    for name in TIMING_YAML_NAMES:
        if name == "tCK":
            continue
        if name in nodes:
            ps[name] = _timing_value(nodes[name], t_ck)
        elif name not in _OPTIONAL_TIMINGS:
            raise _missing(layers, "timing", name, preset)
    # Defaults for optional timings (see schema.DramTiming).
    ps.setdefault("tCCD_R", ps["tCCD_S"])
    ps.setdefault("tRC", ps["tRAS"] + ps["tRP"])
    ps.setdefault("tRFCpb", 0)
    ps.setdefault("tREFIpb", 0)
    if "tRTW" not in ps:
        # Read-to-write turnaround: CL + burst + 2 tCK (bus turnaround) - CWL. The burst time is rounded up
        # to a whole ps when BL/rate is not one (e.g. BL8 at 2.4 Gb/s).
        burst_ps = -(-org.burst_length * 10**12 // org.data_rate_bps)
        ps["tRTW"] = max(0, ps["CL"] + burst_ps + 2 * t_ck - ps["CWL"])
    return DramTiming(**{TIMING_YAML_NAMES[k]: v for k, v in ps.items()}), nodes


def _culprit(nodes: list[_Node]) -> _Node:
    """The node from the outermost layer: overrides, then a config file, then a preset (first on ties)."""
    def rank(node: _Node) -> int:
        if node.file == _OVERRIDES_LABEL:
            return 2
        return 0 if node.file is not None and node.file.startswith(_PRESET_LABEL) else 1
    return max(nodes, key=rank)  # max() keeps the first of equal ranks


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _build(layers: _Layers, preset: str) -> DramConfig:
    """Convert and validate merged layers into a DramConfig. ``preset`` names the base preset."""
    where = layers.where

    def blame(nodes: dict[str, _Node], key: str, section: str) -> _Node:
        """The node that set ``key``, or the outermost block when it was defaulted."""
        return nodes.get(key) or _Node(None, where.file, _join(where.path, _join(section, key)))

    standard_node = layers.scalars.get("standard")
    source_node = layers.scalars.get("source")
    if standard_node is None:
        raise _missing(layers, None, "standard", preset)
    if source_node is None:
        raise _missing(layers, None, "source", preset)
    standard = _text(standard_node)
    source = _text(source_node)
    if "description" in layers.scalars:
        _any_text(layers.scalars["description"])
    line_node = layers.scalars.get("line_bytes")
    line_bytes = _size(line_node) if line_node is not None else 64

    # --- organization -------------------------------------------------------------------------------
    org_values, org_nodes = _parse_section(layers, "organization", _ORGANIZATION)
    for key, spec in _ORGANIZATION.items():
        if spec.required and spec.field not in org_values:
            raise _missing(layers, "organization", key, preset)
    for key in ("channels", "pseudo_channels", "ranks", "bank_groups", "banks_per_group", "rows", "columns"):
        if not _is_pow2(org_values[key]):
            raise org_nodes[key].error(
                f"must be a power of two (the address mapping splits addresses into bit fields), "
                f"got {org_values[key]}")
    if org_values["bus_width_bits"] * org_values["burst_length"] % 8:
        raise org_nodes["burst_length"].error(
            "bus_width_bits x burst_length must be a whole number of bytes, got "
            f"{org_values['bus_width_bits']} x {org_values['burst_length']}")
    org = DramOrganization(**org_values)
    if org.columns * org.bus_width_bits % 8 or org.row_bytes % org.transaction_bytes:
        raise org_nodes["columns"].error(
            f"row_bytes ({org.columns} columns x {org.bus_width_bits} bit) must be a multiple of "
            f"transaction_bytes ({org.transaction_bytes} B = bus_width_bits x burst_length / 8)")
    if not _is_pow2(line_bytes):
        raise line_node.error(f"line_bytes must be a power of two, got {line_bytes}")  # type: ignore[union-attr]

    # --- timing ---------------------------------------------------------------------------------------
    timing, t_nodes = _build_timing(layers, org, preset)
    t = timing

    def tblame(*keys: str) -> _Node:
        """Of the timings a rule involves, the one set by the outermost layer (the likely culprit)."""
        return _culprit([blame(t_nodes, k, "timing") for k in keys])

    fmt = units.format_duration_ps
    for key in ("CL", "tRCDRD", "tRCDWR", "tRP", "tRAS", "tCCD_S"):
        if getattr(t, TIMING_YAML_NAMES[key]) <= 0:
            raise tblame(key).error(f"{key} must be positive, got {fmt(getattr(t, TIMING_YAML_NAMES[key]))}")
    if t.t_ras_ps < t.t_rcdrd_ps:
        raise tblame("tRAS", "tRCDRD", "tCK").error(
            f"tRAS ({fmt(t.t_ras_ps)}) must be >= tRCDRD ({fmt(t.t_rcdrd_ps)})")
    # Datasheets round tRAS, tRP and tRC up to whole cycles independently, so tRC may be one tCK short of
    # tRAS + tRP (Ramulator 2.1 GDDR6: tRC 79 vs tRAS + tRP = 53 + 27 = 80 nCK); allow that one tCK.
    if t.t_rc_ps < t.t_ras_ps + t.t_rp_ps - t.t_ck_ps:
        raise tblame("tRC", "tRAS", "tRP", "tCK").error(
            f"tRC ({fmt(t.t_rc_ps)}) must be >= tRAS + tRP - 1 tCK ({fmt(t.t_ras_ps + t.t_rp_ps - t.t_ck_ps)})")
    if t.t_refi_ps <= t.t_rfc_ps:
        raise tblame("tREFI", "tRFC", "tCK").error(
            f"tREFI ({fmt(t.t_refi_ps)}) must be > tRFC ({fmt(t.t_rfc_ps)})")
    if t.t_ccd_l_ps < t.t_ccd_s_ps:
        raise tblame("tCCD_L", "tCCD_S", "tCK").error(
            f"tCCD_L ({fmt(t.t_ccd_l_ps)}) must be >= tCCD_S ({fmt(t.t_ccd_s_ps)})")

    # --- controller ------------------------------------------------------------------------------------
    ctl_values, ctl_nodes = _parse_section(layers, "controller", _CONTROLLER)
    ctl = ControllerConfig(**ctl_values)
    if not 0 <= ctl.write_low_watermark < ctl.write_high_watermark <= 1:
        node = _culprit([blame(ctl_nodes, k, "controller") for k in ("write_low_watermark", "write_high_watermark")])
        raise node.error(f"watermarks must satisfy 0 <= write_low_watermark < write_high_watermark <= 1, got "
                         f"low {ctl.write_low_watermark} and high {ctl.write_high_watermark}")
    per_line = max(1, line_bytes // org.transaction_bytes)
    for key in ("read_queue", "write_queue"):
        depth = getattr(ctl, key)
        if depth < per_line:
            raise blame(ctl_nodes, key, "controller").error(
                f"{key} ({depth}) must hold at least one line: line_bytes / transaction_bytes = {per_line}")
    entries = queue_entries_per_channel(org, ctl)
    if entries >= MAX_QUEUE_ENTRIES:
        # the DRAM kernel packs a queued transaction's bank and index into one word (kernel.QSHIFT)
        raise blame(ctl_nodes, "read_queue", "controller").error(
            f"the queues of one channel must hold fewer than {MAX_QUEUE_ENTRIES} transactions in all "
            f"(read_queue + write_queue + the larger of active_buffer and banks x bank_queue_depth), got {entries}")
    if ctl.active_buffer > 0 and ctl.bank_queue_depth > 0:
        raise blame(ctl_nodes, "bank_queue_depth", "controller").error(
            "active_buffer (Ramulator-style) and bank_queue_depth (DRAMSim3-style) are two different queue "
            "structures; set at most one of them above 0")
    if ctl.row_policy == "timeout" and ctl.row_timeout_ps <= 0:
        raise blame(ctl_nodes, "row_timeout", "controller").error(
            "row_policy 'timeout' needs a positive row_timeout like '100ns'")
    if ctl.refresh == "per-bank" and (t.t_rfcpb_ps <= 0 or t.t_refipb_ps <= 0):
        raise blame(ctl_nodes, "refresh", "controller").error(
            "per-bank refresh needs tRFCpb and tREFIpb in timing (both > 0)")

    # --- mapping ---------------------------------------------------------------------------------------
    map_values, map_nodes = _parse_section(layers, "mapping", _MAPPING)
    mapping = AddressMapping(**map_values)
    _check_mapping(mapping, org, map_nodes, blame(map_nodes, "scheme", "mapping"))

    # --- energy ----------------------------------------------------------------------------------------
    en_values, _ = _parse_section(layers, "energy", _ENERGY)
    energy = DramEnergy(**en_values)

    return DramConfig(name=preset, standard=standard, source=source, organization=org, timing=timing,
                      controller=ctl, mapping=mapping, energy=energy, line_bytes=line_bytes)


def _check_mapping(mapping: AddressMapping, org: DramOrganization, nodes: dict[str, _Node],
                   scheme_node: _Node) -> None:
    """Compile the scheme once at load: the mapping module is the single judge of what a scheme means."""
    from ..dram.mapping import compile_mapping  # local import: the mapping module imports the schema

    if mapping.bit_order and mapping.scheme != "custom":
        raise nodes["bit_order"].error(f"bit_order is only used with scheme 'custom' (scheme is '{mapping.scheme}')")
    if mapping.scheme == "custom" and "bit_order" not in nodes:
        raise scheme_node.error("scheme 'custom' needs bit_order: the field of each address bit, "
                                "least significant first")
    try:
        compile_mapping(mapping, org)
    except ValueError as e:
        note = " (no mapping.scheme was given; this is the default)" if "scheme" not in nodes else ""
        node = nodes.get("bit_order", scheme_node) if mapping.scheme == "custom" else scheme_node
        raise node.error(f"{e}{note}") from None


# ----------------------------------------------------------------------------------------------------
# Public entry points
# ----------------------------------------------------------------------------------------------------


def _memory_from_node(block: _Node, library: _PresetLibrary | None = None) -> DramConfig:
    lib = library if library is not None else _library()
    body = _mapping(block, "a mapping with 'preset' and optional organization/timing/controller/mapping/"
                           "energy sections")
    for key, child in body.items():
        if key not in _MEMORY_KEYS:
            raise _unknown_key(child, key, _MEMORY_KEYS)
    preset_node = body.get("preset")
    if preset_node is None:
        raise ConfigError(f"required key missing; expected a preset name, one of: {', '.join(lib.names())}",
                          file=block.file, path=_join(block.path, "preset"))
    name = preset_node.value
    if not isinstance(name, str) or name not in lib.bodies:
        raise lib.unknown(name, preset_node)
    user = {k: v for k, v in body.items() if k != "preset"}
    layers = _layer(lib.layers(name), _Node(user, block.file, block.path), _MEMORY_KEYS)
    return _build(layers, name)


def load_dram_config(source: Mapping[str, Any] | str | Path, *, file: str | None = None,
                     prefix: str = "") -> DramConfig:
    """Load a ``memory:``-level block: ``{preset: ..., timing: {...}, ...}``.

    Parameters
    ----------
    source : mapping or path
        The block itself (e.g. from a larger config), or a YAML file whose top level is such a block.
    file : str, optional
        File name used in error messages when ``source`` is a mapping.
    prefix : str
        Dotted YAML path of the block inside ``file`` (e.g. ``"memory"`` or ``"tiers[1]"``), so that
        errors read ``tiers[1].timing.tRP: ...``.

    Raises
    ------
    ConfigError
        For any malformed, unknown, missing or physically impossible value.
    """
    if isinstance(source, (str, Path)):
        file = str(source)
        data = _read_yaml_file(source)
    else:
        data = source
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping with 'preset', got {_show(data)}", file=file, path=prefix or None)
    return _memory_from_node(_wrap(dict(data), file, prefix))


def _parse_override_value(value: Any, key: str) -> Any:
    """CLI values arrive as text; read them as YAML so that '8' is 8 and 'true' is True."""
    if not isinstance(value, str):
        return value
    try:
        return yaml.load(value, Loader=_StrictLoader)  # noqa: S506
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ConfigError(f"cannot parse override value {value!r} as YAML", file=_OVERRIDES_LABEL,
                          path=key) from None


def _apply_override(root: _Node, dotted: Any, value: Any) -> None:
    if not isinstance(dotted, str) or not dotted or any(not part for part in dotted.split(".")):
        raise ConfigError(f"expected a dotted path like 'memory.timing.tRP', got {_show(dotted)}",
                          file=_OVERRIDES_LABEL)
    parts = dotted.split(".")
    node = root
    for depth, part in enumerate(parts[:-1]):
        path = ".".join(parts[: depth + 1])
        if not isinstance(node.value, dict):
            raise ConfigError(f"cannot set '{dotted}': '{node.path}' is not a mapping",
                              file=_OVERRIDES_LABEL, path=dotted)
        child = node.value.get(part)
        if child is None or child.value is None:
            child = _Node({}, _OVERRIDES_LABEL, path)
            node.value[part] = child
        node = child
    if not isinstance(node.value, dict):
        raise ConfigError(f"cannot set '{dotted}': '{node.path}' is not a mapping", file=_OVERRIDES_LABEL,
                          path=dotted)
    node.value[parts[-1]] = _wrap(_parse_override_value(value, dotted), _OVERRIDES_LABEL, dotted)


def load_hw_config(path: str | Path, overrides: Mapping[str, object] | None = None) -> HardwareConfig:
    """Load a hardware config file (``name:`` + ``memory:``) and apply dotted overrides.

    Parameters
    ----------
    path : str or Path
        The YAML file.
    overrides : mapping of str to object, optional
        Dotted paths applied on top of the file before validation, e.g.
        ``{"memory.organization.channels": 8, "memory.timing.tRP": "15ns"}``. String values are read as
        YAML (``"8"`` becomes 8, ``"{nCK: 14}"`` a mapping), as from a CLI ``--set key=value``. Errors in
        them name the file ``<overrides>``.

    Returns
    -------
    HardwareConfig

    Raises
    ------
    ConfigError
        For unreadable files, YAML syntax errors (with line), unknown keys, wrong types, missing fields,
        unknown presets and physically impossible values; the message names the file and YAML path.
    """
    file = str(path)
    data = _read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping with a 'memory' key, got {_show(data)}", file=file)
    root = _wrap(data, file, "")
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"overrides must be a mapping of dotted paths to values, got {_show(overrides)}",
                              file=_OVERRIDES_LABEL)
        for key, value in overrides.items():
            _apply_override(root, key, value)
    for key, child in root.value.items():
        if key not in _FILE_KEYS:
            raise _unknown_key(child, key, _FILE_KEYS)
    name_node = root.value.get("name")
    name = _text(name_node) if name_node is not None else Path(file).stem
    sections: dict[str, Any] = {}
    for key, parser in SECTION_PARSERS.items():
        block = root.value.get(key)
        if block is not None:
            sections[key] = _section_parser(parser)(block, root)
    memory = root.value.get("memory")
    if memory is None:
        if not sections:
            raise ConfigError("required key missing; expected a mapping with 'preset'", file=file, path="memory")
        return HardwareConfig(name=name, memory=None, source_file=file, sections=sections)
    return HardwareConfig(name=name, memory=_memory_from_node(memory), source_file=file, sections=sections)


def _section_parser(spec: str) -> Callable[[_Node, _Node], Any]:
    import importlib

    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)
