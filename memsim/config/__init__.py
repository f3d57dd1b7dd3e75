"""Hardware configuration: frozen dataclasses (:mod:`.schema`) and the YAML loader (:mod:`.loader`).

Typical use::

    from memsim.config import load_hw_config, get_preset
    hw = load_hw_config("hw_configs/hbm3.yaml", overrides={"memory.controller.row_policy": "closed"})
    hw.memory.timing.t_rcdrd_ps
"""
from memsim.config.loader import (
    HardwareConfig,
    get_preset,
    list_presets,
    load_dram_config,
    load_hw_config,
)
from memsim.config.schema import (
    TIMING_YAML_NAMES,
    AddressMapping,
    ControllerConfig,
    DramConfig,
    DramEnergy,
    DramOrganization,
    DramTiming,
)

__all__ = [
    "HardwareConfig",
    "load_hw_config",
    "load_dram_config",
    "get_preset",
    "list_presets",
    "TIMING_YAML_NAMES",
    "AddressMapping",
    "ControllerConfig",
    "DramConfig",
    "DramEnergy",
    "DramOrganization",
    "DramTiming",
]
