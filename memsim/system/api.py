"""Library entry points of the system simulator (used by ``memsim run`` and by sweeps).

::

    from memsim.system.api import run_point
    res = run_point("hw_configs/h100_sxm.yaml", "workloads/llama2_7b_decode.yaml", fidelity="cycle")
    res.metrics()["tpot_s"]
    folder = write_results(res, "results")      # results/<hash of the resolved inputs>/

Overrides are dotted paths: ``memory.organization.channels`` (and any other hardware-config path) go to
the hardware config, ``workload.<key>`` to the scenario's top-level keys (``workload.batch=8``), and
``policy.<param>`` to the policy's parameters.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from memsim import __version__
from memsim.config import load_hw_config
from memsim.errors import ConfigError
from memsim.system.results import SystemResult

DEFAULT_POLICY = "hbm-baseline"


def split_overrides(overrides: Mapping[str, Any] | None) -> tuple[dict, dict, dict]:
    """(hardware, workload, policy) overrides from one dotted mapping."""
    hw, wl, pol = {}, {}, {}
    for k, v in (overrides or {}).items():
        if k.startswith("workload."):
            wl[k[len("workload."):]] = v
        elif k.startswith("policy."):
            pol[k[len("policy."):]] = v
        else:
            hw[k] = v
    return hw, wl, pol


def parse_override_value(v: Any) -> Any:
    """An override given as text (``--set k=8``) read as YAML (8); other values and unparsable text as given."""
    if not isinstance(v, str):
        return v
    import yaml

    try:
        return yaml.safe_load(v)
    except yaml.YAMLError:
        return v


def load_workload(workload: str | Path, overrides: Mapping[str, Any] | None = None):
    """A scenario YAML file, or a model (name or path) with the default scenario."""
    from memsim.workload.model import load_model
    from memsim.workload.scenario import Scenario, load_scenario

    ov = {k: parse_override_value(v) for k, v in (overrides or {}).items()}
    p = Path(workload)
    if p.suffix in (".yaml", ".yml") and p.exists():
        from memsim.config import yamltree as yt

        head = yt.read_yaml_file(p)  # a malformed file fails here with its line, as a ConfigError
        if isinstance(head, dict) and "model" in head:
            return load_scenario(p, overrides=ov or None)
    model = load_model(workload)
    fields = {"batch": "batch", "prompt_tokens": "prompt_tokens", "generated_tokens": "generated_tokens"}
    kw = {}
    for k, v in ov.items():
        if k not in fields:
            raise ConfigError(f"unknown workload override '{k}' for a bare model; allowed: {', '.join(fields)} "
                              f"(or give a scenario file)", file="<overrides>", path=f"workload.{k}")
        kw[fields[k]] = v
    return Scenario(model=model, **kw)


def resolved_inputs(hw, scenario, policy_name: str, policy_params: Mapping, fidelity: str) -> dict:
    """Everything that changes a run's results (hashed to name its folder)."""
    from memsim.results import to_jsonable

    return {"memsim_version": __version__, "kind": "system",
            "hardware": to_jsonable({"memory": hw.memory, "sections": dict(hw.sections)}),
            "workload": scenario.resolved(), "policy": {"name": policy_name, "params": dict(policy_params)},
            "fidelity": fidelity}


def _prepare(hw, workload, policy, fidelity, overrides):
    """Load and validate everything a point needs: (hardware, scenario, policy name, params, policy)."""
    from memsim.policies import get_policy
    from memsim.system.service import FIDELITIES

    if fidelity not in FIDELITIES:
        raise ConfigError(f"unknown fidelity {fidelity!r}; expected one of {', '.join(FIDELITIES)}", path="fidelity")
    hw_ov, wl_ov, pol_ov = split_overrides(overrides)
    hwc = load_hw_config(hw, overrides=hw_ov)
    if "system" not in hwc.sections:
        raise ConfigError("a system run needs a 'system:' block (units, tiers)", file=str(hw), path="system")
    scenario = load_workload(workload, wl_ov)
    choice = hwc.sections.get("policy")
    if policy is not None or choice is None:
        name, params = policy or DEFAULT_POLICY, {}
    else:
        name, params = choice.name, dict(choice.params)
    params.update({k: parse_override_value(v) for k, v in pol_ov.items()})
    pol = get_policy(name, params)
    check = getattr(pol, "check", None)
    if callable(check):  # a policy's cheap structural checks (the tiers and units it needs)
        check(hwc.section("system"), scenario)
    return hwc, scenario, name, params, pol


def policies() -> list[str]:
    """Names of the registered policies."""
    from memsim.policies import known_policies

    return known_policies()


def resolve_point(hw: str | Path, workload: str | Path, *, policy: str | None = None,
                  fidelity: str = "analytical", overrides: Mapping[str, Any] | None = None) -> dict:
    """The resolved inputs of a point (what names its results folder), after validating all of them."""
    hwc, scenario, name, params, _ = _prepare(hw, workload, policy, fidelity, overrides)
    return resolved_inputs(hwc, scenario, name, params, fidelity)


def run_point(hw: str | Path, workload: str | Path, *, policy: str | None = None,
              fidelity: str = "analytical", overrides: Mapping[str, Any] | None = None,
              progress: Callable[[int, int], None] | None = None) -> SystemResult:
    """Simulate one (hardware, workload, policy, fidelity) point.

    Parameters
    ----------
    hw : path of a hardware YAML with a ``system:`` block.
    workload : a scenario YAML (``workloads/*.yaml``) or a model name / path.
    policy : a registered policy name; default: the config's ``policy:`` block, else ``hbm-baseline``.
    fidelity : ``analytical`` | ``event`` | ``cycle``.
    overrides : dotted overrides (see the module docstring); values may be YAML text.
    progress : called as ``progress(done_ops, total_ops)`` while the schedule runs.
    """
    from memsim.system.simulator import simulate
    from memsim.workload.trace import generate

    hwc, scenario, name, params, pol = _prepare(hw, workload, policy, fidelity, overrides)
    t0 = time.perf_counter()
    trace = generate(scenario.model, scenario)
    t1 = time.perf_counter()
    res = simulate(hwc, trace, scenario, pol, fidelity=fidelity, progress=progress)
    res.wall_s["trace_generation"] = t1 - t0
    res.resolved = resolved_inputs(hwc, scenario, name, params, fidelity)
    return res


def write_results(res: SystemResult, root: str | Path = "results") -> Path:
    """Write the run folder ``root/<hash>/`` atomically (resolved.json, stats.json, ops.parquet, ...)."""
    from memsim.results import write_run_folder

    return write_run_folder(root, res.resolved, res.files())
