"""The ``policy:`` block of a hardware config: which mapping policy a system runs by default.

::

    policy: {name: flash-windowing, window: 5, sparsity: 0.9}

``name`` selects a registered policy; every other key is one of its parameters, parsed and checked
by the policy's own parameter table (errors name the file and ``policy.<param>``). ``memsim run
--policy NAME`` replaces the block; ``--set policy.<param>=V`` overrides one parameter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memsim.config import yamltree as yt
from memsim.errors import ConfigError


@dataclass(frozen=True)
class PolicyChoice:
    name: str
    params: dict[str, Any] = field(default_factory=dict)  # plain values (for hashing and overrides)
    file: str | None = None


def parse_section(block: yt.Node, root: yt.Node) -> PolicyChoice:
    from memsim.config.loader import _plain
    from memsim.policies.base import get_policy

    body = yt.mapping(block, "a mapping with 'name' and the policy's parameters")
    if "name" not in body:
        raise ConfigError("required key missing; expected a policy name", file=block.file,
                          path=yt.join(block.path, "name"))
    name = yt.text(body["name"])
    params = {k: v for k, v in body.items() if k != "name"}
    get_policy(name, params, file=block.file, prefix=block.path or "policy")  # validate now, at load
    return PolicyChoice(name, {k: _plain(v) for k, v in params.items()}, block.file)
