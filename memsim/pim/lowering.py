"""Layouts and lowering: how operands are placed in the banks, and the PIM command stream that computes.

Matrix layouts (GEMV ``y = W x``, W of ``rows x cols``)
-------------------------------------------------------
``pimgpt``
    PIM-GPT-style row partitioning: the rows of W are split evenly over the pseudo-channels (PCs) and,
    inside a PC, over the PIM units, so that every unit works on every all-bank MAC. Each unit's slice is
    stored in the order the MACs read it (tile by tile, each tile's columns contiguous), and consecutive
    row-sized chunks alternate over the unit's banks, so one all-bank ACT serves ``banks_per_unit`` rows
    of data: the fewest row activations. Partial sums stay in the unit (in-bank reduction).
``tile_per_bank``
    The layout of Samsung's PIMSimulator GEMV: row partitioning as above, but whole input tiles alternate
    over the unit's banks (even tiles in the even bank, odd tiles in the odd bank), each tile contiguous
    inside its bank. A tile larger than a DRAM row costs a row switch inside the tile.
``colsplit``
    The input dimension is split over the PCs (each PC's global buffer receives only its slice of x,
    and the PC computes partial sums of every output row over that slice); inside a PC rows are split
    over the units. The host adds the PCs' partial sums (reduction across channels).

Tiling and reduction
--------------------
The input vector is loaded into the global buffer one tile (``global_buffer`` bytes) at a time. Each unit
holds ``accumulators`` output rows at once. ``in_bank``: for each block of rows, all tiles are streamed
and the block's sums read out once (the global buffer is reloaded for every block when x needs more than
one tile); ``host``: for each tile, every block is processed and its partial sums read out, the host adds
the tiles' partials. ``auto`` (the default) takes the one that issues fewer column commands.

Element-wise layouts (``y = a + b``, ``a * b``, ``relu(a)``; operands spread over all banks)
------------------------------------------------------------------------------------------------
``separate_rows``: each operand is its own array (PIMSimulator's layout), so every register batch
switches rows between the operands; ``same_row``: the operands' chunks are packed into the same DRAM
row, so a batch is served by one activation.

What is simplified
------------------
* The all-bank MAC is broadcast, so a unit with fewer rows than the busiest one idles (no load
  balancing inside a PC beyond the even split).
* An all-bank ACT opens the same row index in every bank; a power-limited device (``act_window_banks``)
  gets the activation split into bank-group (or single-bank) activates.
* Register pressure of element-wise operators uses ``accumulators`` registers per unit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import MemsimError
from . import commands as C
from .config import DTYPE_BYTES, PimConfig

GEMV_LAYOUTS = ("pimgpt", "tile_per_bank", "colsplit")
ELEMENTWISE_LAYOUTS = ("separate_rows", "same_row")
REDUCTIONS = ("auto", "in_bank", "host")


@dataclass(frozen=True)
class Program:
    """Command streams of the distinct PC classes of one operator, plus what the host does."""

    cmd: np.ndarray
    first: np.ndarray
    stride: np.ndarray
    count: np.ndarray
    row: np.ndarray
    starts: np.ndarray  # stream s is starts[s] .. starts[s + 1]
    multiplicity: tuple[int, ...]  # PCs running stream s
    host_adds: int  # additions the host performs to finish the reduction
    macs: int  # useful multiply-accumulates (or element operations)
    reduction: str

    @property
    def n_streams(self) -> int:
        return len(self.multiplicity)


class _Stream:
    """Collects the commands of one PC as runs ``(cmd, first, stride, count, row, times)``."""

    def __init__(self, cfg: PimConfig):
        org = cfg.memory.organization
        self.nb = cfg.banks_per_pc
        self.bpg = org.banks_per_group
        self.bpu = cfg.device.banks_per_unit
        self.limit = cfg.power.act_window_banks
        self.runs: list[tuple[int, int, int, int, int, int]] = []
        self.open_row = -1

    def emit(self, c: int, first: int = 0, stride: int = 1, count: int = 0, row: int = 0, times: int = 1) -> None:
        if times > 0:
            self.runs.append((c, first, stride, count, row, times))

    def open(self, r: int) -> None:
        """Make row ``r`` the open row of every bank (precharge-all and activate when it is not)."""
        if self.open_row == r:
            return
        if self.open_row >= 0:
            self.emit(C.PRE_AB, 0, 1, self.nb)
        if self.limit <= 0 or self.limit >= self.nb:
            self.emit(C.ACT_AB, 0, 1, self.nb, r)
        elif self.limit >= self.bpg:
            for g in range(self.nb // self.bpg):
                self.emit(C.ACT_BG, g * self.bpg, 1, self.bpg, r)
        else:
            for b in range(self.nb):
                self.emit(C.ACT_SB, b, 1, 1, r)
        self.open_row = r

    def close(self) -> None:
        if self.open_row >= 0:
            self.emit(C.PRE_AB, 0, 1, self.nb)
            self.open_row = -1

    def col(self, c: int, parity: int, times: int) -> None:
        """``times`` all-bank column commands on the banks of one parity (every bank if bpu == 1)."""
        self.emit(c, parity, self.bpu, self.nb // self.bpu, 0, times)

    def key(self) -> tuple:
        return tuple(self.runs)


def _modes(s: _Stream, n: int) -> None:
    s.emit(C.MODE, times=n)


def _split(total: int, parts: int) -> list[int]:
    q, r = divmod(total, parts)
    return [q + 1] * r + [q] * (parts - r)


def _gemv_pc(cfg: PimConfig, s: _Stream, dtype: str, rows: int, cols: int, layout: str, reduction: str
             ) -> tuple[int, str]:
    """Lower one GEMV slice (``rows x cols`` of W on one PC) into ``s``; returns (host adds, reduction)."""
    if rows <= 0 or cols <= 0:
        return 0, reduction
    eb = DTYPE_BYTES[dtype]
    colb = cfg.column_bytes
    e = colb // eb  # elements per column access
    g = cfg.device.global_buffer_bytes // eb  # elements per input tile
    ncr = cfg.memory.organization.row_bytes // colb  # column accesses per DRAM row
    units, bpu, acc = cfg.units_per_pc, cfg.device.banks_per_unit, cfg.device.accumulators
    r_u = -(-rows // units)
    tiles = [min(g, cols - t0) for t0 in range(0, cols, g)]
    c_t = [-(-n // e) for n in tiles]  # column accesses per row per tile
    gb_cmds = [-(-n * eb // colb) for n in tiles]
    blocks = [min(acc, r_u - b0) for b0 in range(0, r_u, acc)]
    res_cmds = [-(-units * a * cfg.device.accumulator_bytes // colb) for a in blocks]
    T, NBk = len(tiles), len(blocks)
    if reduction == "auto":
        gb_in = (NBk * sum(gb_cmds)) if T > 1 else sum(gb_cmds)
        cost_in = gb_in + sum(res_cmds)
        cost_host = sum(gb_cmds) + T * sum(res_cmds)
        reduction = "in_bank" if cost_in <= cost_host else "host"
    if reduction == "in_bank" or T == 1:
        order = [(b, t) for b in range(NBk) for t in range(T)]
    else:
        order = [(b, t) for t in range(T) for b in range(NBk)]
    sw_gb, sw_res = cfg.modes.gb_switches, cfg.modes.result_switches
    loaded = -1
    j = 0  # access index in the unit's slice (pimgpt)
    off = [0] * bpu  # per-bank offsets (tile_per_bank)
    seg = 0
    for i, (b, t) in enumerate(order):
        if loaded != t:
            _modes(s, sw_gb // 2)
            s.emit(C.WR_GB, times=gb_cmds[t])
            _modes(s, sw_gb - sw_gb // 2)
            loaded = t
        n = blocks[b] * c_t[t]
        if layout == "tile_per_bank":
            p = seg % bpu
            o = off[p]
            while n > 0:
                r, c0 = divmod(o, ncr)
                k = min(n, ncr - c0)
                s.open(r)
                s.col(C.MAC_AB, p, k)
                o += k
                n -= k
            off[p] = o
        else:
            while n > 0:
                chunk, c0 = divmod(j, ncr)
                k = min(n, ncr - c0)
                s.open(chunk // bpu)
                s.col(C.MAC_AB, chunk % bpu, k)
                j += k
                n -= k
        seg += 1
        last_of_block = (reduction == "host" and T > 1) or t == T - 1
        if last_of_block:
            _modes(s, sw_res // 2)
            s.emit(C.RD_RES, times=res_cmds[b])
            _modes(s, sw_res - sw_res // 2)
    partials = (e if cfg.device.reduction == "lanes" else 1) * (T if reduction == "host" else 1)
    return rows * (partials - 1), reduction


def _assemble(streams: list[_Stream], extra_adds: int, macs: int, reduction: str, adds: list[int]) -> Program:
    classes: dict[tuple, int] = {}
    by_id: dict[int, int] = {}
    reps: list[_Stream] = []
    mult: list[int] = []
    add_total = extra_adds
    for s, a in zip(streams, adds):
        add_total += a
        if not s.runs:
            continue
        if id(s) not in by_id:  # the content key is computed once per distinct stream object
            key = s.key()
            if key not in classes:
                classes[key] = len(reps)
                reps.append(s)
                mult.append(0)
            by_id[id(s)] = classes[key]
        mult[by_id[id(s)]] += 1
    runs = [np.array(s.runs, dtype=np.int64).reshape(-1, 6) for s in reps]
    starts = [0]
    for r in runs:
        starts.append(starts[-1] + int(r[:, 5].sum()))
    allr = np.concatenate(runs) if runs else np.zeros((0, 6), dtype=np.int64)
    times = allr[:, 5]
    cols = [np.repeat(allr[:, i], times) for i in range(5)]
    return Program(*cols, starts=np.array(starts, dtype=np.int64), multiplicity=tuple(mult),
                   host_adds=int(add_total), macs=int(macs), reduction=reduction)


def _check_dtype(cfg: PimConfig, dtype: str) -> None:
    if dtype not in cfg.device.dtypes:
        raise MemsimError(f"{cfg.name} computes in {', '.join(cfg.device.dtypes)}, not {dtype!r}")


def _check_shape(**dims: int) -> None:
    for k, v in dims.items():
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise MemsimError(f"{k} must be a positive integer, got {v!r}")


def _begin(cfg: PimConfig) -> _Stream:
    s = _Stream(cfg)
    _modes(s, cfg.modes.enter_switches)
    s.emit(C.WR_GB, times=cfg.modes.program_writes)
    return s


def _end(cfg: PimConfig, s: _Stream) -> None:
    s.close()
    _modes(s, cfg.modes.exit_switches)


def lower_gemv(cfg: PimConfig, rows: int, cols: int, *, dtype: str, layout: str = "pimgpt",
               reduction: str = "auto", heads: int = 1) -> Program:
    """Lower ``heads`` independent GEMVs of ``rows x cols`` (each with its own input vector).

    With ``heads >= PCs`` each PC computes whole GEMVs one after another; otherwise every GEMV is spread
    over ``PCs // heads`` PCs by ``layout``.
    """
    _check_shape(rows=rows, cols=cols, heads=heads)
    _check_dtype(cfg, dtype)
    if layout not in GEMV_LAYOUTS:
        raise MemsimError(f"unknown GEMV layout {layout!r}; known: {', '.join(GEMV_LAYOUTS)}")
    if reduction not in REDUCTIONS:
        raise MemsimError(f"unknown reduction {reduction!r}; known: {', '.join(REDUCTIONS)}")
    P = cfg.n_pcs
    # the sub-GEMVs (rows, cols) each PC computes, in order; PCs with the same list share one stream
    specs: list[list[tuple[int, int]]] = [[] for _ in range(P)]
    extra = 0
    if heads >= P:
        for pc, nh in enumerate(_split(heads, P)):
            specs[pc] = [(rows, cols)] * nh
    else:
        group = P // heads
        for h in range(heads):
            pcs = range(h * group, (h + 1) * group)
            if layout == "colsplit":
                for pc, c in zip(pcs, _split(cols, group)):
                    specs[pc].append((rows, c))
                extra += rows * (min(group, cols) - 1)  # the host adds the PCs' partial sums
            else:
                for pc, r in zip(pcs, _split(rows, group)):
                    specs[pc].append((r, cols))
    lowered: dict[tuple, tuple[_Stream, int, str]] = {}
    streams, adds = [], []
    used = reduction
    for spec in specs:
        key = tuple(spec)
        if key not in lowered:
            s = _begin(cfg)
            a_total = 0
            for r, c in spec:
                a, used = _gemv_pc(cfg, s, dtype, r, c, layout, reduction)
                a_total += a
            if any(r > 0 and c > 0 for r, c in spec):
                _end(cfg, s)
            else:
                s.runs = []
            lowered[key] = (s, a_total, used)
        s, a_total, used = lowered[key]
        streams.append(s)
        adds.append(a_total)
    return _assemble(streams, extra, heads * rows * cols, used, adds)


def lower_elementwise(cfg: PimConfig, n: int, *, op: str, dtype: str, layout: str = "separate_rows") -> Program:
    """Lower ``y = a + b`` / ``a * b`` / ``relu(a)`` over ``n`` elements spread over every bank."""
    _check_shape(n=n)
    _check_dtype(cfg, dtype)
    if op not in ("add", "mul", "relu"):
        raise MemsimError(f"unknown element-wise op {op!r}; known: add, mul, relu")
    if layout not in ELEMENTWISE_LAYOUTS:
        raise MemsimError(f"unknown element-wise layout {layout!r}; known: {', '.join(ELEMENTWISE_LAYOUTS)}")
    eb = DTYPE_BYTES[dtype]
    e = cfg.column_bytes // eb
    ncr = cfg.memory.organization.row_bytes // cfg.column_bytes
    bpu, regs = cfg.device.banks_per_unit, cfg.device.accumulators
    P, nb = cfg.n_pcs, cfg.banks_per_pc
    n_ops = 3 if op != "relu" else 2  # operands that live in a bank: a, (b,) y
    streams = []
    done: dict[int, _Stream] = {}
    for per_pc in _split(n, P):
        if per_pc in done:
            streams.append(done[per_pc])
            continue
        s = _begin(cfg)
        done[per_pc] = s
        if per_pc == 0:
            s.runs = []
            streams.append(s)
            continue
        cols_b = -(-per_pc // (nb * e))  # columns of each operand per bank (all banks in lock-step)
        per_row = ncr // n_ops if layout == "same_row" else ncr
        region = -(-cols_b // ncr)  # rows of one operand (separate_rows)
        for c0 in range(0, cols_b, regs):
            k = min(regs, cols_b - c0)
            for p in range(bpu):
                # operand i of column c: row of that operand
                if layout == "same_row":
                    rows_of = [c0 // per_row] * n_ops
                else:
                    rows_of = [i * region + c0 // ncr for i in range(n_ops)]
                s.open(rows_of[0])
                s.col(C.MAC_AB, p, k)  # load a (ReLU applied on the way for relu)
                if op != "relu":
                    s.open(rows_of[1])
                    s.col(C.MAC_AB, p, k)  # add / mul b
                s.open(rows_of[-1])
                s.col(C.ST_AB, p, k)  # store y
        _end(cfg, s)
        streams.append(s)
    return _assemble(streams, 0, n, "none", [0] * P)
