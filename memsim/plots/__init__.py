"""Standard figures of memsim results (matplotlib, no pyplot state): see :mod:`memsim.plots.figures`.

``memsim plot KIND RESULTS`` draws them from the command line (:mod:`memsim.plots.cli`);
:mod:`memsim.plots.data` finds a sweep's table, a run's op rows and the roofline peaks.

The names below are loaded on first use (PEP 562), so that importing the package, as the command line
does to register ``memsim plot``, does not import matplotlib and pandas (about a second).
"""
from __future__ import annotations

import importlib

_FROM_DATA = ("load_ops", "load_table", "peaks_from_resolved", "run_folders")
_FROM_FIGURES = ("PlotError", "metric_label", "metric_vs_axis", "latency_breakdown", "energy_breakdown",
                 "roofline", "timeline", "policy_comparison", "ops_from_chrome_trace")

__all__ = [*_FROM_FIGURES, *_FROM_DATA]


def __getattr__(name: str):
    if name in _FROM_DATA:
        return getattr(importlib.import_module("memsim.plots.data"), name)
    if name in _FROM_FIGURES:
        return getattr(importlib.import_module("memsim.plots.figures"), name)
    raise AttributeError(f"module 'memsim.plots' has no attribute {name!r}")
