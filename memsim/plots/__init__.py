"""Standard figures of memsim results (matplotlib, no pyplot state): see :mod:`memsim.plots.figures`.

``memsim plot KIND RESULTS`` draws them from the command line (:mod:`memsim.plots.cli`);
:mod:`memsim.plots.data` finds a sweep's table, a run's op rows and the roofline peaks.
"""
from memsim.plots.data import load_ops, load_table, peaks_from_resolved, run_folders
from memsim.plots.figures import (PlotError, energy_breakdown, latency_breakdown, metric_label, metric_vs_axis,
                                  ops_from_chrome_trace, policy_comparison, roofline, timeline)

__all__ = ["PlotError", "metric_label", "metric_vs_axis", "latency_breakdown", "energy_breakdown", "roofline",
           "timeline", "policy_comparison", "ops_from_chrome_trace", "load_table", "load_ops", "run_folders",
           "peaks_from_resolved"]
