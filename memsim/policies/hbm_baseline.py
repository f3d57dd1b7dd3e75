"""``hbm-baseline``: everything in the accelerator's own memory, every op on the accelerator.

The reference point of every other policy: weights, KV cache and activations live in the tier that the
(first) accelerator unit reads directly (its ``memory``), every op runs on that unit, nothing moves
between tiers. With an HBM system this is a GPU running the model from its HBM.
"""
from __future__ import annotations

import numpy as np

from memsim.config import yamltree as yt
from memsim.policies.base import Plan, register


@register("hbm-baseline")
class HbmBaseline:
    PARAMS = {"unit": yt.text}  # which unit runs everything (default: the first GPU/NPU)

    def __init__(self, unit: str | None = None):
        self.unit = unit

    def plan(self, trace, system) -> Plan:
        units = system.units
        if self.unit is not None:
            if self.unit not in units:
                from memsim.errors import ConfigError

                raise ConfigError(f"hbm-baseline: unknown unit {self.unit!r}; units: {', '.join(units)}",
                                  path="policy.unit")
            unit = units[self.unit]
        else:
            accel = [u for u in units.values() if u.kind in ("gpu", "npu")]
            unit = accel[0] if accel else next(iter(units.values()))
        tier = unit.memory
        n = len(trace.ops)
        return Plan(default_tier={"weight": tier, "kv": tier, "activation": tier},
                    op_unit=np.full(n, unit.name, dtype=object),
                    notes=[f"all tensors in '{tier}', all ops on '{unit.name}' ({unit.preset})"])
