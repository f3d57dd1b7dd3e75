"""Design-space sweeps: a sweep file's points, validated up front, run on a local pool or Dask, gathered.

- :mod:`memsim.sweep.spec` parses ``SWEEP.yaml`` (base settings + axes / zip groups / explicit points)
  and validates every point before anything runs.
- :mod:`memsim.sweep.runners` resolves and runs one point of each kind (``dram``: a trace through the
  DRAM engine; ``system``: a ``memsim.system.api.run_point`` call); :data:`POINT_RUNNERS` is the registry.
- :mod:`memsim.sweep.execute` runs the points (serial, process pool, Dask), writes one content-addressed
  run folder per point (:mod:`memsim.results`) and gathers the tidy table (Parquet + CSV).

Typical use::

    from memsim.sweep import run_sweep
    report = run_sweep("sweeps/hbm3_channels.yaml", out="results/hbm3_channels", jobs=2)
    report.table[["memory.organization.channels", "bandwidth_GBps"]]
"""
from memsim.sweep.execute import SweepReport, execute_point, gather_table, load_table, run_sweep
from memsim.sweep.runners import POINT_RUNNERS, DramRunner, PointOutput, Resolved, SystemRunner
from memsim.sweep.spec import Point, SweepError, SweepSpec, load_sweep, parse_sweep, validate_sweep

__all__ = [
    "POINT_RUNNERS",
    "DramRunner",
    "SystemRunner",
    "PointOutput",
    "Resolved",
    "Point",
    "SweepError",
    "SweepSpec",
    "SweepReport",
    "load_sweep",
    "parse_sweep",
    "validate_sweep",
    "run_sweep",
    "execute_point",
    "gather_table",
    "load_table",
]
