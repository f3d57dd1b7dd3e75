"""Workloads: model descriptions, inference scenarios and transformer operator traces.

* :mod:`memsim.workload.model`: :class:`ModelSpec`, :func:`load_model` (shipped names, YAML files,
  Hugging Face ``config.json``), :func:`import_hf_config`.
* :mod:`memsim.workload.scenario`: :class:`Scenario`, :func:`load_scenario`.
* :mod:`memsim.workload.trace`: :func:`generate` -> :class:`OpTrace` (the schema the system simulator
  consumes), :func:`write_trace` / :func:`read_trace` (Parquet). Loaded on first use (PEP 562): it
  imports pandas, which the command line's registration of ``memsim workload`` should not pay for.
* :mod:`memsim.workload.closed_form`: bytes and FLOPs per step from the model alone.
* :mod:`memsim.workload.torch_import`: optional importer of traces captured from PyTorch.
"""
from memsim.workload.model import ModelSpec, import_hf_config, list_models, load_model, weight_tensors
from memsim.workload.scenario import DTYPE_BITS, Scenario, load_scenario

_FROM_TRACE = ("KINDS", "OpTrace", "generate", "read_trace", "write_trace")

__all__ = ["ModelSpec", "import_hf_config", "list_models", "load_model", "weight_tensors", "DTYPE_BITS",
           "Scenario", "load_scenario", "KINDS", "OpTrace", "generate", "read_trace", "write_trace",
           "load_workload"]


def load_workload(name_or_path: str, **changes) -> Scenario:
    """A scenario file (``workloads/x.yaml`` with ``model:``) or a model (name / YAML / config.json) with
    a default scenario; ``changes`` (batch=, prompt_tokens=, generated_tokens=, weight_dtype=, ...) apply."""
    from pathlib import Path

    from memsim.config import yamltree as yt

    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        data = yt.read_yaml_file(p)
        if isinstance(data, dict) and "model" in data:
            sc = load_scenario(p)
            return sc.with_(**changes) if changes else sc
    model = load_model(name_or_path)
    return Scenario(model=model, **changes)


def __getattr__(name: str):
    if name in _FROM_TRACE:
        import importlib

        return getattr(importlib.import_module("memsim.workload.trace"), name)
    raise AttributeError(f"module 'memsim.workload' has no attribute {name!r}")
