"""Python API of the PIM tier: time and energy of operators on a PIM device, and of the host doing them.

Every function is a pure function of a frozen :class:`~memsim.pim.config.PimConfig` and the operator's
shape, and is memoised (the same arguments return the same, read-only result object). Times are in
picoseconds, energies in picojoules, sizes in bytes.

Typical use (the system simulator)::

    from memsim.pim.config import get_pim_preset
    from memsim.pim import api
    cfg = get_pim_preset("HBM_PIM_AquaboltXL")
    pim = api.gemv(cfg, 4096, 4096)                 # W resident in the banks
    host = api.host_gemv(cfg, 4096, 4096)           # the host streams W through the read path
    speed_up = host.time_ps / pim.time_ps

What is modelled / simplified
-----------------------------
* PIM: each operator is lowered by :mod:`memsim.pim.lowering` into per-PC command streams and timed by
  the kernel of :mod:`memsim.pim.kernel`; the operator takes as long as its slowest PC. Host-side
  additions that finish a reduction are counted in ``host_adds`` but take no simulated time.
* Host (non-PIM): the operands are read (and the result written) as 64 B lines through
  :class:`memsim.dram.engine.DramEngine` with the device's own controller and mapping, reads in address
  order then writes; compute is assumed to keep up. Streams longer than ``HOST_MAX_LINES`` lines are
  simulated for that many lines and the time scaled linearly (streaming is in steady state by then).
* Energy: per command and per bit from the config's ``energy`` block (FGDRAM breakdown, hw_params.md
  section 5): a PIM unit reads a column at the cell energy; the host path adds the bank-group mux, global
  I/O, TSV and I/O energies; activations cost ``cell_act_per_bit`` per bit of the opened row.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Mapping

import numpy as np

from . import commands as C
from .config import DTYPE_BYTES, PimConfig
from .kernel import ST_END, ST_IMPLICIT_ACTS, ST_REFRESHES, run
from .lowering import Program, lower_elementwise, lower_gemv

HOST_MAX_LINES = 1 << 21  # 128 MiB of 64 B lines

__all__ = ["PimOpResult", "gemv", "host_gemv", "elementwise", "host_elementwise", "attention_score",
           "attention_av", "host_attention", "closed_forms", "with_banks_per_unit"]


@dataclass(frozen=True)
class PimOpResult:
    """Time, energy and traffic of one operator.

    Attributes
    ----------
    op : str
        ``"gemv"``, ``"elementwise:add"``, ``"attention_score"``, ... or ``"host_..."`` for the non-PIM path.
    config : str
        Name of the PIM preset (or of the DRAM device for host results).
    shape : tuple of int
        The operator's shape as given.
    dtype, layout, reduction : str
        Element type; layout used (``"host"`` for the non-PIM path); reduction order chosen.
    time_ps : int
        Simulated time in picoseconds (slowest pseudo-channel).
    cycles : int
        The same in memory-clock cycles.
    energy_pj : mapping of str to float
        Energy by component in pJ (``activate``, ``cell``, ``mac``, ``buffer_write``, ``result_read``,
        ``mode``, ``refresh``, ``host_path``; ``total``).
    commands : mapping of str to int
        Commands issued over all pseudo-channels (PIM command names, or ACT/PRE/RD/WR/REF for host).
    bytes_internal : int
        Bytes the PIM units read from or wrote to their banks (0 for host results).
    bytes_external : int
        Bytes crossing the device I/O (input vector, results; everything for host results).
    macs : int
        Useful multiply-accumulates (element operations for element-wise ops).
    host_adds : int
        Additions left to the host to finish the reduction (lanes, tiles, channels).
    refreshes : int
        Refresh operations over all pseudo-channels.
    simulated_commands : int
        Commands the kernel actually timed (identical PCs are simulated once).
    """

    op: str
    config: str
    shape: tuple
    dtype: str
    layout: str
    reduction: str
    time_ps: int
    cycles: int
    energy_pj: Mapping[str, float]
    commands: Mapping[str, int]
    bytes_internal: int
    bytes_external: int
    macs: int
    host_adds: int
    refreshes: int
    simulated_commands: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def time_ns(self) -> float:
        return self.time_ps / 1000.0

    @property
    def effective_bandwidth_bytes_per_s(self) -> float:
        """Operand bytes (internal + external) per second of simulated time."""
        return (self.bytes_internal + self.bytes_external) / (self.time_ps * 1e-12) if self.time_ps else 0.0

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["energy_pj"] = dict(self.energy_pj)
        d["commands"] = dict(self.commands)
        d["shape"] = list(self.shape)
        d["notes"] = list(self.notes)
        d["time_ns"] = self.time_ns
        return d


# ---------------------------------------------------------------------------------------------------
# PIM path
# ---------------------------------------------------------------------------------------------------


def _time_program(cfg: PimConfig, prog: Program, dtype: str, op: str, shape: tuple, layout: str
                  ) -> PimOpResult:
    cp = C.compile_pim(cfg, dtype)
    if prog.n_streams:
        _, stats = run(cp, prog.cmd, prog.first, prog.stride, prog.count, prog.row, prog.starts)
    else:
        stats = np.zeros((0, 5), dtype=np.int64)
    mult = np.array(prog.multiplicity, dtype=np.int64)
    cyc = int(stats[:, ST_END].max()) if len(mult) else 0
    # commands and bank-level work, weighted by the PCs running each stream
    per_cmd = np.zeros(C.N_CMDS, dtype=np.int64)
    bank_ops = np.zeros(C.N_CMDS, dtype=np.int64)
    for s, m in enumerate(mult):
        a, b = prog.starts[s], prog.starts[s + 1]
        per_cmd += m * np.bincount(prog.cmd[a:b], minlength=C.N_CMDS)
        bank_ops += m * np.bincount(prog.cmd[a:b], weights=prog.count[a:b], minlength=C.N_CMDS).astype(np.int64)
    refreshes = int((stats[:, ST_REFRESHES] * mult).sum())
    implicit_acts = int((stats[:, ST_IMPLICIT_ACTS] * mult).sum())
    colb = cfg.column_bytes
    colbits = colb * 8
    rowbits = cfg.memory.organization.row_bytes * 8
    en = cfg.energy
    bank_acts = int(bank_ops[[C.ACT_SB, C.ACT_BG, C.ACT_AB]].sum()) + implicit_acts
    bank_cols = int(bank_ops[[C.MAC_SB, C.MAC_AB, C.ST_AB, C.RD_SB, C.WR_SB]].sum())
    ext_cols = int(per_cmd[C.WR_GB] + per_cmd[C.RD_RES] + per_cmd[C.RD_SB] + per_cmd[C.WR_SB])
    ext_path = en.io_per_bit + en.tsv_per_bit + en.gio_per_bit
    energy = {
        "activate": bank_acts * rowbits * en.cell_act_per_bit,
        "cell": bank_cols * colbits * en.cell_access_per_bit,
        "mac": int(bank_ops[[C.MAC_SB, C.MAC_AB]].sum()) * colb * en.mac_per_byte,
        "buffer_write": int(per_cmd[C.WR_GB]) * colbits * (ext_path + en.register_per_bit),
        "result_read": int(per_cmd[C.RD_RES]) * colbits * (ext_path + en.register_per_bit),
        "host_path": int(per_cmd[C.RD_SB] + per_cmd[C.WR_SB]) * colbits * (ext_path + en.bg_mux_per_bit),
        "mode": int(per_cmd[C.MODE]) * en.mode_switch_pj,
        "refresh": refreshes * cfg.memory.energy.refresh_pj,
    }
    energy["total"] = sum(energy.values())
    cmds = {C.CMD_NAMES[k]: int(per_cmd[k]) for k in range(C.N_CMDS) if per_cmd[k]}
    cmds["REF"] = refreshes
    return PimOpResult(
        op=op, config=cfg.name, shape=shape, dtype=dtype, layout=layout, reduction=prog.reduction,
        time_ps=cyc * cp.tck_ps, cycles=cyc, energy_pj=MappingProxyType(energy),
        commands=MappingProxyType(cmds), bytes_internal=bank_cols * colb, bytes_external=ext_cols * colb,
        macs=prog.macs, host_adds=prog.host_adds, refreshes=refreshes, simulated_commands=int(prog.cmd.shape[0]))


def _dtype(cfg: PimConfig, dtype: str | None) -> str:
    return dtype if dtype is not None else cfg.device.dtypes[0]


@lru_cache(maxsize=4096)
def gemv(cfg: PimConfig, rows: int, cols: int, dtype: str | None = None, layout: str = "pimgpt",
         reduction: str = "auto") -> PimOpResult:
    """``y = W x`` with W (``rows x cols``) resident in the PIM banks.

    Parameters
    ----------
    cfg : PimConfig
    rows, cols : int
        Output and input dimensions (elements).
    dtype : str, optional
        ``"fp16"``, ``"bf16"`` or ``"int8"``; default: the device's first datatype.
    layout : str
        ``"pimgpt"`` (default), ``"tile_per_bank"`` or ``"colsplit"`` (see :mod:`memsim.pim.lowering`).
    reduction : str
        ``"auto"``, ``"in_bank"`` or ``"host"``: order of tiles and row blocks.

    Returns
    -------
    PimOpResult
        ``time_ps`` (ps), ``energy_pj`` (pJ by component), ``commands``, ``bytes_internal`` /
        ``bytes_external`` (bytes).

    Raises
    ------
    MemsimError
        For a non-positive shape, an unsupported datatype or an unknown layout.
    """
    dt = _dtype(cfg, dtype)
    prog = lower_gemv(cfg, rows, cols, dtype=dt, layout=layout, reduction=reduction)
    return _time_program(cfg, prog, dt, "gemv", (rows, cols), layout)


@lru_cache(maxsize=1024)
def elementwise(cfg: PimConfig, n: int, op: str = "add", dtype: str | None = None,
                layout: str = "separate_rows") -> PimOpResult:
    """``y = a + b`` (``op="add"``), ``a * b`` (``"mul"``) or ``relu(a)`` over ``n`` elements, with the
    operands and the result in the banks (layout ``"separate_rows"`` or ``"same_row"``)."""
    dt = _dtype(cfg, dtype)
    prog = lower_elementwise(cfg, n, op=op, dtype=dt, layout=layout)
    return _time_program(cfg, prog, dt, f"elementwise:{op}", (n,), layout)


@lru_cache(maxsize=4096)
def attention_score(cfg: PimConfig, seq_len: int, head_dim: int, heads: int = 1, dtype: str | None = None,
                    layout: str = "pimgpt") -> PimOpResult:
    """Scores ``s_h = K_h q_h`` of ``heads`` heads with the keys (``seq_len x head_dim`` per head) resident
    in PIM: one GEMV per head, tokens partitioned over the PCs of the head (AttAcc-style head mapping)."""
    dt = _dtype(cfg, dtype)
    prog = lower_gemv(cfg, seq_len, head_dim, dtype=dt, layout=layout, heads=heads)
    return _time_program(cfg, prog, dt, "attention_score", (seq_len, head_dim, heads), layout)


@lru_cache(maxsize=4096)
def attention_av(cfg: PimConfig, seq_len: int, head_dim: int, heads: int = 1, dtype: str | None = None,
                 layout: str = "colsplit") -> PimOpResult:
    """Outputs ``o_h = V_h^T p_h`` with the values resident in PIM: a GEMV of ``head_dim x seq_len`` per
    head; by default tokens are split over the head's PCs and the host adds their partial outputs."""
    dt = _dtype(cfg, dtype)
    prog = lower_gemv(cfg, head_dim, seq_len, dtype=dt, layout=layout, heads=heads)
    return _time_program(cfg, prog, dt, "attention_av", (seq_len, head_dim, heads), layout)


# ---------------------------------------------------------------------------------------------------
# Host (non-PIM) path
# ---------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1024)
def _host_stream(cfg: PimConfig, read_bytes: int, write_bytes: int, op: str, shape: tuple, dtype: str,
                 macs: int) -> PimOpResult:
    from ..dram.engine import DramEngine, Requests

    mem = cfg.memory
    line = mem.line_bytes
    n_rd = -(-read_bytes // line)
    n_wr = -(-write_bytes // line)
    total = n_rd + n_wr
    if (n_rd + n_wr) * line > mem.organization.capacity_bytes:
        from ..errors import MemsimError

        raise MemsimError(f"{op} {shape} needs {(n_rd + n_wr) * line:,} B, more than the "
                          f"{mem.organization.capacity_bytes:,} B of {mem.name}")
    scale = 1.0
    notes: tuple[str, ...] = ()
    if total > HOST_MAX_LINES:
        scale = total / HOST_MAX_LINES
        n_rd_s = max(1, round(n_rd / scale)) if n_rd else 0
        n_wr_s = HOST_MAX_LINES - n_rd_s
        n_rd, n_wr = n_rd_s, n_wr_s
        scale = total / (n_rd + n_wr)
        notes = (f"simulated the first {n_rd + n_wr:,} of {total:,} lines, time scaled by {scale:.3f}",)
    addr = np.arange(n_rd + n_wr, dtype=np.uint64) * np.uint64(line)
    is_write = np.zeros(n_rd + n_wr, dtype=bool)
    is_write[n_rd:] = True
    res = DramEngine(mem).run(Requests(addr, is_write))
    cyc = int(math.ceil(res.sim_time_ps / res.tck_ps * scale))
    colb = mem.organization.transaction_bytes
    colbits = colb * 8
    en = cfg.energy
    cmds = {k: int(round(v * scale)) for k, v in res.commands.items()}
    path = en.cell_access_per_bit + en.bg_mux_per_bit + en.gio_per_bit + en.tsv_per_bit + en.io_per_bit
    energy = {
        "activate": cmds["ACT"] * mem.organization.row_bytes * 8 * en.cell_act_per_bit,
        "host_path": (cmds["RD"] + cmds["WR"]) * colbits * path,
        "refresh": cmds["REF"] * mem.energy.refresh_pj,
    }
    energy["total"] = sum(energy.values())
    return PimOpResult(
        op=f"host_{op}", config=mem.name, shape=shape, dtype=dtype, layout="host", reduction="host",
        time_ps=cyc * res.tck_ps, cycles=cyc, energy_pj=MappingProxyType(energy),
        commands=MappingProxyType(cmds), bytes_internal=0, bytes_external=int(round(res.bytes_transferred * scale)),
        macs=macs, host_adds=0, refreshes=cmds["REF"], simulated_commands=0, notes=notes)


def host_gemv(cfg: PimConfig, rows: int, cols: int, dtype: str | None = None) -> PimOpResult:
    """The same GEMV without PIM: the host reads W and x through the normal read path and writes y.

    Uses the DRAM device ``cfg.memory`` (same organisation, timing, controller and mapping).
    """
    from .lowering import _check_shape

    _check_shape(rows=rows, cols=cols)
    dt = _dtype(cfg, dtype)
    eb = DTYPE_BYTES[dt]
    return _host_stream(cfg, rows * cols * eb + cols * eb, rows * eb, "gemv", (rows, cols), dt, rows * cols)


def host_elementwise(cfg: PimConfig, n: int, op: str = "add", dtype: str | None = None) -> PimOpResult:
    """Element-wise op by the host: reads ``a`` (and ``b``), writes ``y``."""
    from .lowering import _check_shape

    _check_shape(n=n)
    dt = _dtype(cfg, dtype)
    eb = DTYPE_BYTES[dt]
    reads = (1 if op == "relu" else 2) * n * eb
    return _host_stream(cfg, reads, n * eb, f"elementwise:{op}", (n,), dt, n)


def host_attention(cfg: PimConfig, seq_len: int, head_dim: int, heads: int = 1, dtype: str | None = None
                   ) -> PimOpResult:
    """Score or attention x V by the host: reads K (or V) of every head plus the small vectors."""
    from .lowering import _check_shape

    _check_shape(seq_len=seq_len, head_dim=head_dim, heads=heads)
    dt = _dtype(cfg, dtype)
    eb = DTYPE_BYTES[dt]
    reads = heads * (seq_len * head_dim + head_dim) * eb
    return _host_stream(cfg, reads, heads * seq_len * eb, "attention", (seq_len, head_dim, heads), dt,
                        heads * seq_len * head_dim)


# ---------------------------------------------------------------------------------------------------
# Closed forms and variants
# ---------------------------------------------------------------------------------------------------


def closed_forms(cfg: PimConfig, rows: int, cols: int, dtype: str | None = None) -> dict[str, float]:
    """Bounds of a PIM GEMV (``pimgpt`` layout), in ps unless stated.

    ``bandwidth_bound_ps`` = bytes(W) / internal bandwidth; ``compute_bound_ps`` = MACs / (units x lanes x
    clock); ``bw_ratio`` = internal / external peak bandwidth. An in-order all-bank unit cannot overlap a
    row switch with MACs (every bank computes), so each all-bank activation adds ``switch_ps`` = tRTP + tRP
    + tRCD (+ the activation window: (ceil(banks / act_window_banks) - 1) x tFAW) - one MAC interval;
    ``activations`` is the number of all-bank activations per PC and ``switch_bound_ps`` = max(bandwidth,
    compute bound) + activations x switch_ps. ``load_ps`` (x into the global buffer once) and
    ``readout_ps`` (tMACLAT plus the result bursts of every block of rows) complete
    ``schedule_bound_ps``, the time an in-order GEMV whose x fits the global buffer approaches.
    """
    dt = _dtype(cfg, dtype)
    w_bytes = rows * cols * DTYPE_BYTES[dt]
    units = cfg.n_pcs * cfg.units_per_pc
    bw = w_bytes / cfg.internal_bandwidth_bytes_per_s * 1e12
    compute = rows * cols / (units * cfg.device.lanes * cfg.device.clock_hz) * 1e12
    cp = C.compile_pim(cfg, dt)
    t, tck = cfg.memory.timing, cfg.memory.timing.t_ck_ps
    cyc = lambda ps: -(-ps // tck)  # noqa: E731
    window = 0
    limit = cfg.power.act_window_banks
    if 0 < limit < cfg.banks_per_pc:
        window = (-(-cfg.banks_per_pc // max(limit, cfg.memory.organization.banks_per_group)) - 1) * cyc(t.t_faw_ps)
    switch = (cyc(t.t_rtp_ps) + cyc(t.t_rp_ps) + cyc(t.t_rcdrd_ps) + window - cp.mac_cycles) * tck
    per_pc = w_bytes / cfg.n_pcs
    acts = math.ceil(per_pc / (cfg.banks_per_pc * cfg.memory.organization.row_bytes))
    # fixed costs of one pass with x in the global buffer: loading x, and reading each block of results
    colb = cfg.column_bytes
    data = max(cyc(t.t_ccd_s_ps), cp.burst_cycles)
    gb_cmds = -(-cols * DTYPE_BYTES[dt] // colb)
    gb = (gb_cmds * cyc(cfg.timing.t_ccd_gb_ps) + cp.cwl + cp.burst_cycles + cyc(t.t_wtr_l_ps)) * tck
    r_u = -(-rows // (cfg.n_pcs * cfg.units_per_pc))
    acc = cfg.device.accumulators
    blocks = -(-r_u // acc)
    n_res = -(-cfg.units_per_pc * min(acc, r_u) * cfg.device.accumulator_bytes // colb)
    readout = blocks * (cyc(cfg.timing.t_mac_lat_ps) + n_res * data) * tck
    return {
        "bandwidth_bound_ps": bw,
        "compute_bound_ps": compute,
        "bw_ratio": cfg.internal_bandwidth_bytes_per_s / cfg.external_bandwidth_bytes_per_s,
        "switch_ps": float(switch),
        "activations": float(acts),
        "switch_bound_ps": max(bw, compute) + acts * switch,
        "load_ps": float(gb),
        "readout_ps": float(readout),
        "schedule_bound_ps": max(bw, compute) + acts * switch + gb + readout,
    }


def with_banks_per_unit(cfg: PimConfig, banks_per_unit: int) -> PimConfig:
    """The same device with a PIM unit per ``banks_per_unit`` banks (for sweeps)."""
    return replace(cfg, name=f"{cfg.name}[bpu={banks_per_unit}]",
                   device=replace(cfg.device, banks_per_unit=banks_per_unit))
