"""Validation cases of the SRAM tier (``memsim validate sram``).

* Every CACTI 7 preset (hw_params.md section 3): one bank's conflict-free streaming bandwidth against
  the table's "BW per bank" column (64 B / cycle time [D]; the table's cycle times are rounded to
  0.01 ns, hence a 3 % tolerance).
* Banked scratchpads (16 x 128 KiB at 22 nm, and the same scaled to 7 nm): streaming bandwidth =
  banks x width x clock for a conflict-free (sequential) pattern, exactly.
* Conflict patterns, closed forms: a stride of ``banks`` words sends every access to one bank, so the
  transfer is serialised ``banks`` times (time ratio = banks); a stride of 2 words uses half the banks
  (ratio 2). Uniformly random banks (one port, one-cycle banks): each cycle issues accesses until the
  first repeated bank, so the expected accesses per cycle are Ramanujan's Q(B) = sum_k B!/((B-k)! B^k)
  (the birthday problem) and the fraction of peak is Q(B)/B (3 % tolerance: a finite random sample).
"""
from __future__ import annotations

import numpy as np

from memsim.validate.catalogue import Case, Check

TABLE_BW_GBPS = {  # hw_params.md section 3, "BW per bank" column
    "CACTI7_32KiB_22nm": 261, "CACTI7_128KiB_22nm": 125, "CACTI7_512KiB_22nm": 43, "CACTI7_2MiB_22nm": 104,
    "CACTI7_8MiB_22nm": 104, "CACTI7_32KiB_32nm": 180, "CACTI7_512KiB_32nm": 30, "CACTI7_8MiB_32nm": 30,
}


def _banked(scale_to=None):
    from memsim.config import yamltree as yt

    from .config import parse_section

    block = {"preset": "CACTI7_128KiB_22nm", "organization": {"capacity": "2MiB", "banks": 16}}
    if scale_to:
        block["technology"] = {"scale_to": scale_to}
    return yt.load_block(block, parse_section, key="sram", file="<validation>")


def _stream_case(name):
    def run():
        from . import api
        from .config import get_preset

        cfg = get_preset(name)
        return {"stream_bandwidth_GBps": api.stream(cfg, min(cfg.capacity_bytes, 1 << 20)).bandwidth_gbps}
    return run


def _patterns(cfg_fn):
    def run():
        from . import api

        cfg = cfg_fn()
        n = 4096
        w = cfg.width_bytes
        seq = api.access(cfg, np.arange(n) * w)
        same = api.access(cfg, (np.arange(n) * cfg.banks * w) % cfg.capacity_bytes)
        two = api.access(cfg, (np.arange(n) * 2 * w) % cfg.capacity_bytes)
        rnd = api.access(cfg, np.random.default_rng(0).integers(0, cfg.capacity_bytes // w, 8 * n) * w)
        return {"stream_bandwidth_GBps": seq.bandwidth_gbps,
                "same_bank_serialisation": same.sim_time_ps / seq.sim_time_ps,
                "stride2_serialisation": two.sim_time_ps / seq.sim_time_ps,
                "random_fraction_of_peak": rnd.fraction_of_peak}
    return run


def _closed(cfg_fn, metric):
    cfg = cfg_fn()
    n = 4096
    L, busy = cfg.latency_cycles, cfg.busy_cycles
    per = cfg.banks * cfg.ports
    seq_cycles = (n // per - 1) * busy + L
    if metric == "bw":
        return cfg.banks * cfg.width_bytes * cfg.clock_hz / cfg.busy_cycles / 1e9 * cfg.ports
    if metric == "same":
        return ((n // cfg.ports - 1) * busy + L) / seq_cycles
    if metric == "two":
        return ((n // (per // 2) - 1) * busy + L) / seq_cycles
    return birthday_q(cfg.banks) / cfg.banks


def birthday_q(b: int) -> float:
    """Expected number of uniform draws from ``b`` banks before the first repeat (Ramanujan's Q)."""
    total, term = 0.0, 1.0
    for k in range(1, b + 1):
        term *= (b - k + 1) / b
        total += term
    return total


def cases() -> list[Case]:
    out = []
    for name, bw in TABLE_BW_GBPS.items():
        out.append(Case(id=f"sram/{name}/stream_one_bank", fast=True,
                        source="CACTI 7 table, hw_params.md section 3: BW per bank = 64 B / cycle time",
                        checks=(Check("stream_bandwidth_GBps", float(bw), 0.03),), run=_stream_case(name)))
    for label, fn in (("16x128KiB_22nm", _banked), ("16x128KiB_7nm_scaled", lambda: _banked("7nm"))):
        out.append(Case(
            id=f"sram/{label}/bank_patterns", fast=True,
            source="closed forms: banks x width x clock (sequential); serialisation by the number of banks "
                   "(stride = banks words) and 2 (stride 2 words), with the access latency added once",
            checks=(Check("stream_bandwidth_GBps", _closed(fn, "bw"), 0.001),
                    Check("same_bank_serialisation", _closed(fn, "same"), 0.001),
                    Check("stride2_serialisation", _closed(fn, "two"), 0.001),
                    Check("random_fraction_of_peak", _closed(fn, "random"), 0.03)),
            run=_patterns(fn)))
    return out
