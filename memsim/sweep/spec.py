"""Sweep files: parse ``SWEEP.yaml``, expand its points, validate every point before anything runs.

Format::

    name: hbm3-channels            # optional; default: the file stem
    kind: dram                     # dram (replay a trace) | system (a `memsim run` point)
    base:                          # settings shared by every point; paths are relative to this file
      hw: ../hw_configs/hbm3.yaml
      trace: rand                  # dram: a reference trace name (`memsim trace`) or a trace file
      requests: 20000              # dram: replay only this prefix (default: the whole trace)
      queue_depth: 0               # dram: max outstanding requests (0 = unlimited)
      # system: workload: W.yaml, policy: hbm-baseline, fidelity: analytical
      set: {memory.controller.read_queue: 64}   # fixed dotted overrides
    axes:                          # each axis: a base setting or a dotted override path -> values
      memory.organization.channels: [8, 16, 32]
      memory.controller.row_policy: [open, closed]
    zip:                           # groups of axes whose values advance together
      - {memory.preset: [HBM2_2000, HBM3_6400], trace: [seq, rand]}
    points:                        # an explicit list (each entry one combination)
      - {memory.controller.scheduler: fcfs}
      - {memory.controller.scheduler: frfcfs}

Every axis, every zip group and the ``points`` list is one *group*; the sweep is the cartesian product of
its groups, in file order (the first group varies slowest). An axis key naming a base setting of the kind
(``hw``, ``trace``, ``requests``, ``queue_depth``, ``format``, ``ignore_arrival`` for dram; ``hw``,
``workload``, ``policy``, ``fidelity`` for system) sets it; any other key is a dotted override path into
the hardware config (for system points: passed to the system simulator, which also accepts workload
paths). Axis values are YAML values (``8``, ``closed``, ``{nCK: 14}``).

Validation (:func:`validate_sweep`) resolves every point through its runner (for dram points: loading the
hardware config with the point's overrides, checking the trace exists) and raises one
:class:`SweepError` listing every invalid point, each naming the sweep file, the axis and the value:
``sweep.yaml: axes.memory.organization.channels[2]: 7: ...``.
"""
from __future__ import annotations

import difflib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memsim.errors import ConfigError, MemsimError

__all__ = ["SweepError", "SweepSpec", "Point", "load_sweep", "parse_sweep", "validate_sweep"]

_TOP_KEYS = ("name", "description", "kind", "base", "axes", "zip", "points")
_MAX_POINTS = 1_000_000


class SweepError(ConfigError):
    """A sweep file is malformed, or one or more of its points are invalid."""


@dataclass(frozen=True)
class Point:
    """One combination of axis values.

    index : position in the sweep (rows of the results table are sorted by it)
    values : axis key -> value, in axis order
    origin : axis key -> YAML path of the value in the sweep file (``axes.memory.organization.channels[2]``)
    """

    index: int
    values: dict[str, Any]
    origin: dict[str, str]

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items()) or "(base)"


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file. ``base`` paths are resolved; ``axis_keys`` is the column order of axes."""

    name: str
    kind: str
    base: dict[str, Any]
    axis_keys: tuple[str, ...]
    points: tuple[Point, ...]
    source_file: str
    folder: Path
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    def error(self, message: str, path: str | None = None) -> SweepError:
        return SweepError(message, file=self.source_file, path=path)


def _suggest(key: str, allowed) -> str:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _mapping(value: Any, file: str, path: str, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SweepError(f"expected a mapping of {what}, got {type(value).__name__}", file=file, path=path)
    for k in value:
        if not isinstance(k, str) or not k:
            raise SweepError(f"keys must be non-empty strings, got {k!r}", file=file, path=path)
    return value


def _values(value: Any, file: str, path: str) -> list:
    if not isinstance(value, list) or not value:
        raise SweepError(f"expected a non-empty list of values, got {value!r}", file=file, path=path)
    return value


def load_sweep(path: str | Path, runners: Mapping | None = None) -> SweepSpec:
    """Read and parse a sweep file (structure only; see :func:`validate_sweep` for the points)."""
    file = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SweepError(f"cannot read sweep file: {exc.strerror or exc}", file=file) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SweepError(f"YAML syntax error{where}: {getattr(exc, 'problem', None) or exc}", file=file) from None
    return parse_sweep(data, file=file, folder=Path(path).resolve().parent, default_name=Path(path).stem,
                       runners=runners)


def parse_sweep(data: Any, *, file: str = "<sweep>", folder: Path | None = None,
                default_name: str = "sweep", runners: Mapping | None = None) -> SweepSpec:
    """Parse an already-loaded sweep mapping (see the module docstring for the format)."""
    from memsim.sweep.runners import POINT_RUNNERS

    if not isinstance(data, dict):
        raise SweepError("expected a mapping with 'kind', 'base' and 'axes'", file=file)
    for k in data:
        if k not in _TOP_KEYS:
            raise SweepError(f"unknown key{_suggest(str(k), _TOP_KEYS)}; expected one of {', '.join(_TOP_KEYS)}",
                             file=file, path=str(k))
    kind = data.get("kind", "dram")
    registry = runners or POINT_RUNNERS
    if kind not in registry:
        raise SweepError(f"unknown kind {kind!r}; expected one of {', '.join(registry)}", file=file, path="kind")
    runner = registry[kind]
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise SweepError(f"expected a plain name (no '/'), got {name!r}", file=file, path="name")
    base = dict(_mapping(data.get("base"), file, "base", "base settings"))
    for k in base:
        if k not in (*runner.PARAMS, "set"):
            raise SweepError(f"unknown base setting{_suggest(k, runner.PARAMS)} for kind {kind!r}; expected "
                             f"{', '.join(runner.PARAMS)} or set", file=file, path=f"base.{k}")
    base["set"] = dict(_mapping(base.get("set"), file, "base.set", "dotted override paths"))

    groups: list[list[tuple[dict, dict]]] = []  # each: list of (values, origins)
    keys: list[str] = []

    def claim(key: str, where: str) -> None:
        if key in keys:
            raise SweepError(f"axis '{key}' is given twice", file=file, path=where)
        if key == "set":
            raise SweepError("'set' is not an axis; give dotted override paths as axes", file=file, path=where)
        keys.append(key)

    axes = _mapping(data.get("axes"), file, "axes", "axes (dotted paths or base settings) to values")
    for key, vals in axes.items():
        claim(key, f"axes.{key}")
        vals = _values(vals, file, f"axes.{key}")
        groups.append([({key: v}, {key: f"axes.{key}[{i}]"}) for i, v in enumerate(vals)])
    zips = data.get("zip") or []
    if not isinstance(zips, list):
        raise SweepError("expected a list of groups (mappings of axis -> values)", file=file, path="zip")
    for gi, grp in enumerate(zips):
        grp = _mapping(grp, file, f"zip[{gi}]", "axes to values")
        if not grp:
            raise SweepError("empty zip group", file=file, path=f"zip[{gi}]")
        lengths = {}
        for key, vals in grp.items():
            claim(key, f"zip[{gi}].{key}")
            lengths[key] = len(_values(vals, file, f"zip[{gi}].{key}"))
        if len(set(lengths.values())) != 1:
            raise SweepError("zipped axes must have equal lengths, got "
                             + ", ".join(f"{k}: {n}" for k, n in lengths.items()), file=file, path=f"zip[{gi}]")
        n = next(iter(lengths.values()))
        groups.append([({k: grp[k][i] for k in grp}, {k: f"zip[{gi}].{k}[{i}]" for k in grp}) for i in range(n)])
    pts = data.get("points")
    if pts is not None:
        pts = _values(pts, file, "points")
        pkeys: list[str] = []
        for i, p in enumerate(pts):
            p = _mapping(p, file, f"points[{i}]", "axes to values")
            for k in p:
                if k not in pkeys:
                    pkeys.append(k)
        for k in pkeys:
            claim(k, "points")
        # a key missing in one entry keeps the base value there (None marks "not set")
        groups.append([({k: pts[i].get(k) for k in pkeys if k in pts[i]},
                        {k: f"points[{i}].{k}" for k in pkeys if k in pts[i]}) for i in range(len(pts))])
    total = 1
    for g in groups:
        total *= len(g)
    if total > _MAX_POINTS:
        raise SweepError(f"the sweep has {total:,} points; more than {_MAX_POINTS:,} is certainly a mistake", file=file)
    points = []
    for idx, combo in enumerate(itertools.product(*groups)):
        values: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for v, o in combo:
            values.update(v)
            origin.update(o)
        values = {k: values[k] for k in keys if k in values}
        points.append(Point(index=idx, values=values, origin={k: origin[k] for k in values}))
    return SweepSpec(name=name, kind=kind, base=base, axis_keys=tuple(keys), points=tuple(points),
                     source_file=file, folder=folder or Path.cwd(), raw=data)


def point_settings(spec: SweepSpec, point: Point, runners: Mapping | None = None) -> dict[str, Any]:
    """The base settings with the point's values applied: runner parameters set, other keys as overrides."""
    from memsim.sweep.runners import POINT_RUNNERS

    runner = (runners or POINT_RUNNERS)[spec.kind]
    s = {k: v for k, v in spec.base.items() if k != "set"}
    overrides = dict(spec.base.get("set", {}))
    for k, v in point.values.items():
        if k in runner.PARAMS:
            s[k] = v
        else:
            overrides[k] = v
    s["set"] = overrides
    return s


def _blame(spec: SweepSpec, point: Point, exc: MemsimError) -> tuple[str, str]:
    """(YAML path in the sweep file, message) for a point's validation error."""
    epath = getattr(exc, "path", None) or ""
    axis = getattr(exc, "axis", None)
    msg = getattr(exc, "message", None) if axis is not None else None
    msg = msg or str(exc)
    for key, where in point.origin.items():
        if axis == key or (axis is None and (epath == key or epath.startswith(key + "."))):
            return where, f"{point.values[key]!r}: {msg}"
    if axis is not None:
        return f"base.{axis}", msg
    for key in spec.base.get("set", {}):
        if epath == key or epath.startswith(key + "."):
            return f"base.set.{key}", msg
    # a combination of values (or the base config itself): name the point and its values
    return f"point {point.index} ({point.label()})", msg


def validate_sweep(spec: SweepSpec, runners: Mapping | None = None, *, max_errors: int = 20) -> list:
    """Resolve every point; return each point's :class:`~memsim.sweep.runners.Resolved` (``inputs``, hashed
    into its folder name, and ``task``, what a worker runs).

    Raises
    ------
    SweepError
        Listing every invalid point (the first ``max_errors`` in full), each with the sweep file, the YAML
        path of the offending axis value and the underlying message.
    """
    from memsim.sweep.runners import POINT_RUNNERS

    runner = (runners or POINT_RUNNERS)[spec.kind]
    resolved: list = []
    errors: list[str] = []
    cache: dict = {}
    for p in spec.points:
        try:
            resolved.append(runner.resolve(point_settings(spec, p, runners), folder=spec.folder, cache=cache))
        except MemsimError as exc:
            where, msg = _blame(spec, p, exc)
            errors.append(f"{spec.source_file}: {where}: {msg}")
    if errors:
        shown = errors[:max_errors]
        more = f"\n  ... and {len(errors) - max_errors} more" if len(errors) > max_errors else ""
        head = (f"{len(errors)} of {len(spec.points)} sweep points are invalid; nothing was run:\n  "
                if len(errors) > 1 else "")
        err = SweepError(head + "\n  ".join(shown) + more)
        err.errors = errors
        raise err
    return resolved
