"""Public entry point of the DRAM engine: validate inputs, decode addresses, run the kernel, report.

``simulate(cfg, trace)`` replays a request trace (in memory or streamed from a file in chunks) through
the kernel of ``kernel.py`` and returns a :class:`DramResult`. Everything the kernel needs is compiled
from the frozen :class:`~memsim.config.schema.DramConfig` once per run.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

from ..config.schema import DramConfig, queue_entries_per_channel
from ..errors import TraceError
from . import kernel as K
from .mapping import CompiledMapping, compile_mapping, decode_into, decode_transactions
from .timing import (L_RK, N_CMDS, N_LEVELS, P_REFLEVEL, P_REFRESH, P_REFI, P_REFIPB, P_TXPERREQ,
                     REF_ALLBANK, REF_NONE, CompiledTiming, compile_timing)

# requests decoded per kernel call: small enough that the decoded transactions stay in cache between
# the decode and the kernel, large enough that the per-call cost vanishes (measured on the 1 M-request
# streams: 1.03-1.05x faster than decoding the whole trace first; random traffic unchanged)
DECODE_SLICE = 1 << 15

# a chunk of more than one slice decodes the next slice on a helper thread while the kernel replays this
# one (both release the GIL), so the decoding costs no wall time where a second core is free; results do
# not depend on it (each slice is decoded in full before the kernel reads it). Off: decode in line.
DECODE_AHEAD = True
# a streamed trace (an iterable of chunks, e.g. a file being parsed) reads its next chunk on a helper
# thread while the kernel replays this one. Off: read it before replaying this one.
READ_AHEAD = True

HIST_BINS = 1 << 16  # latency histogram: one bin per memory-clock cycle, the last bin is overflow


def _pow2_at_least(n: int) -> int:
    return 1 << max(1, int(n - 1).bit_length())


@dataclass
class Requests:
    """A batch of front-end requests (one cache line each).

    addr : uint64 byte addresses; is_write : bool; arrival_ps : int64 or None (None = all available at 0).
    """

    addr: np.ndarray
    is_write: np.ndarray
    arrival_ps: np.ndarray | None = None


class KernelState:
    """All arrays of one simulation; survives across chunks of a streamed trace.

    Each array is built in its natural shape and then rebound to a view of its region of ``arena``, the one
    array the kernel takes (see ``memsim.dram.kernel.ARENA_REGIONS``); ``region_log2`` is the regions'
    capacity, which selects the kernel build."""

    def __init__(self, cfg: DramConfig, ct: CompiledTiming, record_requests: int = 0):
        org, ctl = cfg.organization, cfg.controller
        par = ct.par
        counts = [org.channels, org.pseudo_channels, org.ranks, org.bank_groups, org.banks_per_group]
        nodes = np.cumprod(counts)  # nodes per level
        self.lvl_base = np.concatenate([[0], np.cumsum(nodes)[:-1]]).astype(np.int64)
        self.lvl_fan = np.array(counts, dtype=np.int64)
        nbk = int(nodes[-1])
        banks_under = nbk // nodes  # banks below one node of each level
        b = np.arange(nbk, dtype=np.int64)
        self.nob = np.stack([self.lvl_base[lv] + b // banks_under[lv] for lv in range(N_LEVELS)], axis=1)
        self.nob = np.ascontiguousarray(self.nob)
        self.nxt = np.zeros((int(nodes.sum()), N_CMDS), dtype=np.int64)
        n_ranks = int(nodes[L_RK])
        self.faw = np.full((n_ranks, 4), -(1 << 40), dtype=np.int64)
        self.faw_pos = np.zeros(n_ranks, dtype=np.int64)
        self.bank = np.zeros((nbk, K.N_B), dtype=np.int64)
        self.bank[:, K.B_ROW] = -1
        self.bank_stats = np.zeros((nbk, 2), dtype=np.int64)  # ACTs, column commands
        banks_per_ch = nbk // org.channels
        # per bank, a lower bound on the cycle of its next command (0 = unknown), apart from the other bank
        # fields so that a pass over a channel's banks reads one contiguous row
        self.blb = np.zeros(nbk, dtype=np.int64)
        # a pool of queue entries per channel, linked into one list per bank and queue
        pool = queue_entries_per_channel(org, ctl)
        self.ent = np.zeros((org.channels, pool, K.N_F), dtype=np.int64)
        self.lists = np.zeros((nbk, K.N_L), dtype=np.int64)
        self.lists[:, 0:9:3] = -1  # heads
        self.lists[:, 1:9:3] = -1  # tails
        self.lists[:, K.L_MEMO_STAMP:K.L_MEMO_STAMP + 4] = -1
        self.lists[:, K.L_MISS_SCAN] = -1
        self.abk = np.zeros((org.channels, 3, banks_per_ch), dtype=np.int64)
        self.nab = np.zeros((org.channels, K.N_NAB), dtype=np.int64)
        # each queue's entries in arrival order, oldest first, in slots nab[:, 3 + q] up to nab[:, 6 + q]; twice
        # the room a queue needs, so the oldest can leave by moving the start, with a move back to slot 0
        # only when the end of the row is reached
        self.qord = np.zeros((org.channels, 3, 2 * pool), dtype=np.int64)
        # free entries per channel; entries are numbered across channels (channel c owns c * pool ..), so
        # that the kernel reads an entry's fields without its channel; a queue-order slot packs the number
        # beside the bank (``K.QSHIFT`` bits)
        if org.channels * pool >= 1 << K.QSHIFT:  # pragma: no cover - beyond any configuration's queues
            raise ValueError(f"{org.channels} channels x {pool} queue entries exceed the kernel's entry numbers")
        self.freel = np.ascontiguousarray(np.arange(pool, dtype=np.int64)[::-1][None, :]
                                          + (np.arange(org.channels, dtype=np.int64) * pool)[:, None])
        self.qlen = np.zeros((3, org.channels), dtype=np.int64)
        self.chs = np.zeros((org.channels, K.N_C), dtype=np.int64)
        self.chs[:, K.C_NFREE] = pool
        # refresh units
        if par[P_REFRESH] == REF_NONE:
            n_units = 0
        elif par[P_REFRESH] == REF_ALLBANK:
            n_units = int(nodes[par[P_REFLEVEL]])
        else:
            n_units = n_ranks
        interval = int(par[P_REFI] if par[P_REFRESH] == REF_ALLBANK else par[P_REFIPB])
        self.ref = np.zeros((n_units, K.N_U), dtype=np.int64)
        if n_units:
            if ctl.refresh_stagger:
                # DRAMSim3 staggers the refresh of the units (ranks) inside a channel over one interval;
                # every channel runs the same schedule
                per_ch = n_units // org.channels
                self.ref[:, 0] = ((np.arange(n_units) % per_ch + 1) * interval) // per_ch
            else:
                self.ref[:, 0] = interval
        bound = org.channels * (ctl.read_queue + ctl.write_queue) + org.channels * (int(par[K.P_CL] + par[K.P_BURST]) + 2)
        self.ring = np.zeros((_pow2_at_least(2 * bound + 64), K.N_R), dtype=np.int64)
        self.ring[:, K.R_REMAIN] = -1
        self.ring[:, K.R_FREE] = np.arange(self.ring.shape[0])[::-1]  # stack of free slots, top last
        self.fifo = np.zeros((_pow2_at_least(bound + 64), 2), dtype=np.int64)
        self.hist = np.zeros((2, HIST_BINS + 1), dtype=np.int64)
        # the scalar state, then each channel's wake-up cycle (contiguous: the main loop takes their minimum)
        self.S = np.zeros(K.N_S + org.channels, dtype=np.int64)
        self.S[K.S_FREE_TOP] = self.ring.shape[0]
        self.S[K.S_REF_MIN] = int(self.ref[:, 0].min()) if n_units else int(K.INF)
        self.out_done = np.full(record_requests, -1, dtype=np.int64)
        self.par = ct.par
        self.rules = ct.rules
        self.dims = np.zeros(K.N_D, dtype=np.int64)
        self.dims[[K.D_FIFO_ROWS, K.D_UNITS, K.D_BANKS, K.D_POOL, K.D_QORD_W, K.D_HIST_W]] = (
            self.fifo.shape[0], n_units, nbk, pool, self.qord.shape[2], self.hist.shape[1])
        self._into_arena()

    def _into_arena(self) -> None:
        """Copy the kernel's arrays into one arena (``self.arena``, see ``memsim.dram.kernel.ARENA_REGIONS``)
        and rebind each name to its region, a view in the array's own shape."""
        sizes = {name: getattr(self, name).size for name in K.ARENA_REGIONS}
        self.region_log2 = K.region_log2_for(sizes)
        offsets = K.arena_offsets(self.region_log2)
        last = K.ARENA_REGIONS[-1]
        self.arena = np.zeros(offsets[last] + sizes[last], dtype=np.int64)
        for name in K.ARENA_REGIONS:
            a = getattr(self, name)
            view = self.arena[offsets[name]:offsets[name] + a.size].reshape(a.shape)
            view[...] = a
            setattr(self, name, view)


@dataclass
class DramResult:
    """What one replay measured. Times in ps unless the name says cycles; sizes in bytes."""

    config_name: str
    standard: str
    requests: int
    reads: int
    writes: int
    sim_time_ps: int
    tck_ps: int
    bytes_transferred: int
    peak_bandwidth_bytes_per_s: float
    read_latency_cycles: dict
    write_latency_cycles: dict
    row_hits: int
    row_misses: int
    row_conflicts: int
    commands: dict
    refreshes: int
    refresh_cycles: int
    forwarded_reads: int
    per_channel: dict
    per_bank: dict
    energy_pj: dict
    #: scheduler decisions the kernel took (one per channel per cycle it examined): a cost figure of the
    #: replay itself, not of the hardware; ``benchmarks/run.py`` reports the wall time per decision
    controller_decisions: int = 0
    completion_cycles: np.ndarray | None = field(default=None, repr=False)

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bytes_transferred / (self.sim_time_ps * 1e-12) if self.sim_time_ps else 0.0

    @property
    def bandwidth_gbps(self) -> float:
        """Bandwidth in GB/s (10^9 bytes per second)."""
        return self.bandwidth_bytes_per_s / 1e9

    @property
    def fraction_of_peak(self) -> float:
        return self.bandwidth_bytes_per_s / self.peak_bandwidth_bytes_per_s

    @property
    def row_hit_rate(self) -> float:
        n = self.row_hits + self.row_misses + self.row_conflicts
        return self.row_hits / n if n else 0.0

    @property
    def avg_read_latency_ns(self) -> float:
        return self.read_latency_cycles["mean"] * self.tck_ps / 1000.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "completion_cycles"}
        d.update(bandwidth_GBps=self.bandwidth_gbps, fraction_of_peak=self.fraction_of_peak,
                 row_hit_rate=self.row_hit_rate, avg_read_latency_ns=self.avg_read_latency_ns,
                 sim_time_us=self.sim_time_ps / 1e6)
        return d


def _latency_summary(hist: np.ndarray, total: int, count: int, mx: int) -> dict:
    if count == 0:
        return {"count": 0, "mean": 0.0, "p50": 0, "p95": 0, "p99": 0, "max": 0}
    cdf = np.cumsum(hist)

    def pct(p: float) -> int:
        return int(np.searchsorted(cdf, math.ceil(p * count)))

    return {"count": int(count), "mean": total / count, "p50": pct(0.50), "p95": pct(0.95),
            "p99": pct(0.99), "max": int(mx)}


def _chunks(requests: Requests | Iterable[Requests]) -> Iterator[Requests]:
    """The non-empty chunks of ``requests`` (an empty one would hold back the final drain)."""
    if isinstance(requests, Requests):
        chunks: Iterable[Requests] = (requests,)
    else:
        chunks = requests
    for chunk in chunks:
        if np.shape(chunk.addr)[0] > 0:
            yield chunk


class DramEngine:
    """Compiled form of one :class:`DramConfig`: decode addresses and replay request streams.

    Parameters
    ----------
    cfg : DramConfig
    """

    def __init__(self, cfg: DramConfig):
        self.cfg = cfg
        self.timing = compile_timing(cfg)
        self.mapping: CompiledMapping = compile_mapping(cfg.mapping, cfg.organization)
        org = cfg.organization
        self.tx_per_req = int(self.timing.par[P_TXPERREQ])
        self.capacity = org.capacity_bytes
        self._tables = self.mapping.byte_tables()
        self._fan = np.array([org.channels, org.pseudo_channels, org.ranks, org.bank_groups,
                              org.banks_per_group], dtype=np.int64)
        #: the timing kernel, specialised to this controller structure where memsim has a build for it
        #: (:func:`memsim.dram.kernel.kernel_for`; compiled or loaded from the cache at the first run)
        self.kernel = K.kernel_for(self.timing.par)

    def check_capacity(self, addr: np.ndarray, source: str | None = None, first_line: int = 1) -> None:
        """Raise :class:`TraceError` (file and line) for the first address beyond the device's capacity."""
        if addr.size and int(addr.max()) >= self.capacity:
            bad = int(np.argmax(addr >= np.uint64(self.capacity)))
            raise TraceError(f"address {int(addr[bad]):#x} is beyond the device capacity "
                             f"({self.capacity:#x} bytes) of {self.cfg.name}", file=source, line=first_line + bad)

    def decode(self, addr: np.ndarray, source: str | None = None, first_line: int = 1):
        """Split line requests into transactions and decode them. Returns (ch, bank, row, tx_addr)."""
        addr = np.asarray(addr, dtype=np.uint64)
        self.check_capacity(addr, source, first_line)
        return decode_transactions(addr, self.cfg.line_bytes, self.tx_per_req,
                                   self.cfg.organization.transaction_bytes, self.mapping.offset_bits,
                                   *self._tables, self._fan)

    def run(self, requests: Requests | Iterable[Requests], *, queue_depth: int = 0,
            record_requests: int = 0, source: str | None = None) -> DramResult:
        """Replay requests; see :func:`simulate`."""
        cfg, ct = self.cfg, self.timing
        st = KernelState(cfg, ct, record_requests)
        n_total = n_writes = 0
        it = _chunks(requests)
        chunk = next(it, None)
        if chunk is None:
            raise TraceError("the trace holds no requests", file=source)
        first_line = 1
        tx = self.tx_per_req
        org = cfg.organization
        bufs: list = []  # one set of decode buffers, or two where the next slice is decoded ahead
        pool = None
        reader = None
        if READ_AHEAD and not isinstance(requests, Requests):
            reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsim-read")
        try:
            while chunk is not None:
                following = reader.submit(next, it, None) if reader is not None else None
                addr = np.asarray(chunk.addr, dtype=np.uint64)
                n = int(addr.shape[0])
                self.check_capacity(addr, source, first_line)  # the whole chunk, before any of it runs
                w = np.ascontiguousarray(np.asarray(chunk.is_write, dtype=np.uint8))
                if chunk.arrival_ps is not None:
                    arr = -(-np.asarray(chunk.arrival_ps, dtype=np.int64) // ct.tck_ps)
                else:
                    arr = np.zeros(n, dtype=np.int64)
                # decoded a slice at a time into the same buffers, which stay in cache for the kernel; the
                # kernel resumes each slice where the last one stopped, so results do not depend on the slicing
                starts = range(0, n, DECODE_SLICE)
                if DECODE_AHEAD and len(starts) > 1 and pool is None:
                    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsim-decode")
                n_sets = 2 if pool is not None else 1
                size = min(n, DECODE_SLICE) * tx
                if len(bufs) != n_sets or bufs[0][0].shape[0] < size:
                    bufs = [tuple(np.empty(size, dtype=np.int64) for _ in range(4)) for _ in range(n_sets)]

                def decode_slice(j, addr=addr, n=n, starts=starts, sets=bufs):
                    s0 = starts[j]
                    s1 = min(n, s0 + DECODE_SLICE)
                    out = tuple(b[:(s1 - s0) * tx] for b in sets[j % len(sets)])
                    decode_into(addr[s0:s1], cfg.line_bytes, tx, org.transaction_bytes,
                                self.mapping.offset_bits, *self._tables, self._fan, *out)
                    return out

                ahead = None
                for j, s0 in enumerate(starts):
                    s1 = min(n, s0 + DECODE_SLICE)
                    ch, bank, row, txa = decode_slice(j) if ahead is None else ahead.result()
                    # the other buffer set is free: the kernel that read it has returned
                    ahead = pool.submit(decode_slice, j + 1) if pool is not None and j + 1 < len(starts) else None
                    if s1 == n:  # the chunk's last slice: whether the trace ends with it
                        nxt_chunk = following.result() if following is not None else next(it, None)
                    final = s1 == n and nxt_chunk is None
                    got = self.kernel(st, ch, bank, row, txa, w[s0:s1], arr[s0:s1], int(queue_depth), final)
                    if got != s1 - s0:  # pragma: no cover - a kernel bug, not a user error
                        raise RuntimeError(f"kernel accepted {got} of {s1 - s0} requests")
                n_total += n
                n_writes += int(w.sum())
                first_line += n
                chunk = nxt_chunk
        finally:
            for ex in (pool, reader):
                if ex is not None:
                    ex.shutdown(wait=True, cancel_futures=True)
        return self._result(st, n_total, n_writes)

    def _result(self, st: KernelState, n: int, n_writes: int) -> DramResult:
        cfg, ct, S = self.cfg, self.timing, st.S
        done = int(S[K.S_DONE_READS] + S[K.S_DONE_WRITES])
        if done != n or int(S[K.S_OUTSTANDING]) != 0 or int(S[K.S_QUEUED]) != 0:
            raise RuntimeError(f"request accounting failed: {n} requests, {done} completed, "
                               f"{int(S[K.S_OUTSTANDING])} outstanding, {int(S[K.S_QUEUED])} queued")
        chs = st.chs
        org = cfg.organization
        sim_cycles = int(S[K.S_LAST_DONE])
        cmds = {"ACT": int(chs[:, K.C_ACT].sum()), "PRE": int(chs[:, K.C_PRE].sum()),
                "RD": int(chs[:, K.C_RD].sum()), "WR": int(chs[:, K.C_WR].sum()),
                "REF": int(chs[:, K.C_REF].sum())}
        bl = ct.burst_cycles
        busy = (chs[:, K.C_RD] + chs[:, K.C_WR]) * bl / max(1, org.pseudo_channels)
        e = cfg.energy
        tbits = org.transaction_bytes * 8
        energy = {
            "activate": cmds["ACT"] * e.act_pj,
            "read": cmds["RD"] * tbits * e.read_pj_per_bit,
            "write": cmds["WR"] * tbits * e.write_pj_per_bit,
            "refresh": cmds["REF"] * e.refresh_pj,
            "background": e.background_mw_per_channel * org.channels * sim_cycles * ct.tck_ps * 1e-12 * 1e9,
        }
        energy["total"] = sum(energy.values())
        out = st.out_done.copy() if st.out_done.size else None
        return DramResult(
            config_name=cfg.name, standard=cfg.standard, requests=n, reads=n - n_writes, writes=n_writes,
            sim_time_ps=sim_cycles * ct.tck_ps, tck_ps=ct.tck_ps, bytes_transferred=n * cfg.line_bytes,
            peak_bandwidth_bytes_per_s=cfg.peak_bandwidth_bytes_per_s,
            read_latency_cycles=_latency_summary(st.hist[0], int(S[K.S_LAT_SUM_R]), int(S[K.S_DONE_READS]),
                                                 int(S[K.S_LAT_MAX_R])),
            write_latency_cycles=_latency_summary(st.hist[1], int(S[K.S_LAT_SUM_W]), int(S[K.S_DONE_WRITES]),
                                                  int(S[K.S_LAT_MAX_W])),
            row_hits=int(chs[:, K.C_HIT].sum()), row_misses=int(chs[:, K.C_MISS].sum()),
            row_conflicts=int(chs[:, K.C_CONF].sum()), commands=cmds, refreshes=cmds["REF"],
            refresh_cycles=int(S[K.S_REF_CYCLES]), forwarded_reads=int(chs[:, K.C_FWD].sum()),
            per_channel={"data_bus_utilisation": (busy / max(1, sim_cycles)).tolist(),
                         "reads": chs[:, K.C_RD].tolist(), "writes": chs[:, K.C_WR].tolist(),
                         "activates": chs[:, K.C_ACT].tolist()},
            per_bank={"activates": st.bank_stats[:, 0].tolist(), "column_commands": st.bank_stats[:, 1].tolist(),
                      "utilisation": (st.bank_stats[:, 1] * bl / max(1, sim_cycles)).tolist()},
            energy_pj=energy, controller_decisions=int(S[K.S_SCAN_ID]), completion_cycles=out)


def simulate(cfg: DramConfig, requests: Requests | Iterable[Requests], *, queue_depth: int = 0,
             record_requests: int = 0, source: str | None = None) -> DramResult:
    """Replay a request stream through one DRAM device.

    Parameters
    ----------
    cfg : DramConfig
    requests : Requests or an iterable of Requests chunks (streamed; bounded memory).
    queue_depth : int
        Maximum outstanding requests at the front end (1 = unloaded latency); 0 = unlimited (saturating).
    record_requests : int
        Keep the completion cycle of the first ``record_requests`` requests (for tests and small traces).
    source : str, optional
        File name used in error messages.
    """
    return DramEngine(cfg).run(requests, queue_depth=queue_depth, record_requests=record_requests, source=source)
