"""The policy interface and its registry.

Contract (a policy proposes, the system model scores it):

* ``Policy.plan(trace, system) -> Plan`` is a pure function of the op trace and the system config.
* ``Plan.tensor_tier`` maps every tensor id of the trace to a tier name; a tensor the plan does not
  name lives in the tier of its kind in ``Plan.default_tier`` (keys ``weight``, ``kv``, ``activation``).
* ``Plan.op_unit`` gives, per op (aligned with ``trace.ops``), the name of the unit that runs it.
* ``Plan.transfers`` lists data movements between tiers, each scheduled on the link between them, after
  the ops it waits for and before the op that needs it (prefetch and double buffering are expressed
  by choosing those two ops).
* ``Plan.op_overrides`` replaces per-op cost columns of the trace (arrays aligned with ``trace.ops``):
  ``flops``, ``weight_bytes``, ``kv_read_bytes``, ``kv_write_bytes``, ``act_read_bytes``,
  ``act_write_bytes``, and ``overhead_ps`` (a per-op fixed cost replacing the unit's kernel overhead,
  e.g. 0 for ops fused into their predecessor). This is how a policy expresses what it changes about
  the work itself: activation sparsity (fewer FFN weight bytes), KV eviction (fewer KV bytes read),
  fusion (intermediates never written). The trace itself is never modified.
* ``Plan.capacity_extra`` corrects the bytes a tier must hold beyond what its placed tensors say: positive
  for buffers the policy manages (a DRAM cache, swap buffers), negative for the part of a placed tensor
  that the policy keeps elsewhere (paged-out KV blocks, non-resident experts, whose home tier gets the
  matching positive entry). The capacity check uses the corrected figure.
* Placements that do not fit a tier's capacity are rejected by the system model (``CapacityError``)
  unless the policy spills explicitly (by placing the tensors elsewhere and adding transfers).
"""
from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Protocol

import numpy as np

from memsim.errors import ConfigError


@dataclass(frozen=True)
class Transfer:
    """Move ``bytes`` from tier ``src`` to tier ``dst`` after op ``after`` (-1: at the start), before op ``before``.

    ``after_transfer`` (an index into ``Plan.transfers``, smaller than this transfer's own) chains hops:
    flash -> host -> GPU is two transfers, the second after the first. ``service_ps`` is a time the
    policy computed for moving the data out of or into a tier in its own access pattern (e.g. chunked
    random flash reads timed by the flash model); the transfer then takes the longer of that and
    ``latency + bytes / min(link, source, destination bandwidth)``.
    """

    src: str
    dst: str
    bytes: int
    after: int
    before: int
    name: str = ""
    after_transfer: int = -1
    service_ps: int | None = None


@dataclass
class Plan:
    default_tier: dict[str, str]
    op_unit: np.ndarray  # array of unit names (object dtype), one per op
    tensor_tier: dict[str, str] = field(default_factory=dict)
    transfers: list[Transfer] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the policy decided, for the run summary
    op_overrides: dict[str, np.ndarray] = field(default_factory=dict)
    capacity_extra: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # policy-specific figures added to the results


class Policy(Protocol):
    """A mapping policy. ``PARAMS`` maps each parameter name to a parser from
    :mod:`memsim.config.yamltree` (e.g. ``yt.count``, ``yt.fraction01``, ``yt.size()``); the class's
    ``__init__`` takes the parsed values as keyword arguments and holds the defaults."""

    name: str
    PARAMS: Mapping[str, Callable[[Any], Any]]

    def plan(self, trace: Any, system: Any) -> Plan: ...

    # Optional: ``check(system, scenario)`` raises a MemsimError when the system lacks what the policy
    # needs (a flash tier, a PIM unit, ...). It is called before any trace is generated, so a sweep
    # rejects a mismatched point up front.


_REGISTRY: dict[str, Callable[..., Policy]] = {}
#: modules of this package that are not policies
_NOT_POLICIES = {"base", "validation", "config"}
_loaded = False


def register(name: str) -> Callable[[type], type]:
    """Class decorator: register a policy class under ``name`` (a duplicate name raises)."""

    def deco(cls: type) -> type:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"policy name {name!r} is already registered by {_REGISTRY[name]!r}")
        _REGISTRY[name] = cls
        cls.name = name
        return cls

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    import importlib
    import pkgutil

    import memsim.policies as pkg

    # every module of this package registers its policies on import (one module per policy)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name not in _NOT_POLICIES and not info.name.startswith("_"):
            importlib.import_module(f"memsim.policies.{info.name}")
    for ep in metadata.entry_points(group="memsim.policies"):
        ep.load()
    _loaded = True


def known_policies() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get_policy(name: str, params: Mapping[str, Any] | None = None, *, file: str | None = None,
               prefix: str = "policy") -> Policy:
    """Build the policy ``name`` with ``params`` (plain values or annotated YAML nodes).

    Unknown names and parameters, and values the parameter's parser rejects, raise ConfigError naming
    ``file`` (default ``<overrides>``) and the path ``policy.<param>``.
    """
    from memsim.config import yamltree as yt

    _load()
    if name not in _REGISTRY:
        guess = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f" (did you mean '{guess[0]}'?)" if guess else ""
        raise ConfigError(f"unknown policy {name!r}{hint}; known: {', '.join(sorted(_REGISTRY))}",
                          file=file, path=prefix if file else "policy")
    cls = _REGISTRY[name]
    table = dict(getattr(cls, "PARAMS", {}) or {})
    kwargs = {}
    for k, v in dict(params or {}).items():
        node = v if isinstance(v, yt.Node) else yt.wrap(v, file or "<overrides>", f"{prefix}.{k}")
        if k not in table:
            raise yt.unknown_key(node, k, tuple(table), f"parameter of {name}:")
        kwargs[k] = table[k](node)
    return cls(**kwargs)
