"""Sweep-friendly PIM results: GEMV speed-up over the host vs matrix size and vs PIM units per bank.

Both functions return a tidy :class:`pandas.DataFrame` (one row per point) that a notebook can plot
directly, e.g. ``df.pivot(index="rows", columns="units_per_bank", values="speedup").plot(logx=True)``.
Times in ns, bandwidths in GB/s. Each point is an ordinary :func:`memsim.pim.api.gemv` /
:func:`memsim.pim.api.host_gemv` call, so repeated points are memoised.
"""
from __future__ import annotations

from collections.abc import Iterable

from . import api
from .config import PimConfig

COLUMNS = ("config", "rows", "cols", "banks_per_unit", "units_per_bank", "layout", "pim_time_ns", "host_time_ns",
           "speedup", "bw_ratio", "bandwidth_bound_ns", "pim_energy_uj", "host_energy_uj", "pim_GBps")


def _row(cfg: PimConfig, rows: int, cols: int, layout: str) -> dict:
    pim = api.gemv(cfg, rows, cols, layout=layout)
    host = api.host_gemv(cfg, rows, cols)
    cf = api.closed_forms(cfg, rows, cols)
    return {"config": cfg.name, "rows": rows, "cols": cols, "banks_per_unit": cfg.device.banks_per_unit,
            "units_per_bank": 1.0 / cfg.device.banks_per_unit, "layout": layout, "pim_time_ns": pim.time_ns,
            "host_time_ns": host.time_ns, "speedup": host.time_ps / pim.time_ps, "bw_ratio": cf["bw_ratio"],
            "bandwidth_bound_ns": cf["bandwidth_bound_ps"] / 1000, "pim_energy_uj": pim.energy_pj["total"] / 1e6,
            "host_energy_uj": host.energy_pj["total"] / 1e6,
            "pim_GBps": pim.bytes_internal / pim.time_ps * 1000 if pim.time_ps else 0.0}


def gemv_speedup_sweep(cfg: PimConfig, sizes: Iterable[int | tuple[int, int]] = (512, 1024, 2048, 4096),
                       banks_per_unit: Iterable[int] | None = None, layout: str = "pimgpt"):
    """GEMV speed-up vs matrix size (square ``n`` or ``(rows, cols)``) and vs banks per PIM unit.

    Parameters
    ----------
    cfg : PimConfig
    sizes : iterable of int or (int, int)
    banks_per_unit : iterable of int, optional
        Values to sweep (each a power of two dividing the banks of a pseudo-channel); default: the
        config's own value only.
    layout : str

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`.
    """
    import pandas as pd

    bpus = list(banks_per_unit) if banks_per_unit is not None else [cfg.device.banks_per_unit]
    rows = []
    for b in bpus:
        c = cfg if b == cfg.device.banks_per_unit else api.with_banks_per_unit(cfg, b)
        for sz in sizes:
            r, k = (sz, sz) if isinstance(sz, int) else sz
            rows.append(_row(c, int(r), int(k), layout))
    return pd.DataFrame(rows, columns=list(COLUMNS))
