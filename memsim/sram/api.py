"""Python API of the SRAM tier: timed accesses, streaming, and a capacity-enforcing allocator.

* :func:`access` replays byte addresses (each access one ``width``-byte word, or ``nbytes`` per access,
  split into words) through the bank-conflict kernel (:mod:`memsim.sram.kernel`) and returns an
  :class:`SramResult` (time, bandwidth, conflicts, latency, energy).
* :func:`stream` / :func:`stream_time` time a sequential (conflict-free) transfer of ``nbytes``.
* :class:`Scratchpad` places named buffers and refuses, with :class:`SramCapacityError`, anything that
  does not fit, unless the caller asks for an explicit spill (the part that does not fit is returned, to
  be placed in the next tier). Nothing is silently dropped or overlapped.

Address mapping: word ``a // width``; bank ``(a // interleave) % banks``. Addresses must lie inside
the capacity. Units: bytes, ps (``*_ps``), clock cycles (``*_cycles``), GB/s = 10**9 B/s, pJ.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from memsim.errors import MemsimError

from .config import SramConfig
from . import kernel as K

__all__ = ["SramResult", "SramCapacityError", "Allocation", "Scratchpad", "access", "stream", "stream_time",
           "words_of"]


class SramCapacityError(MemsimError):
    """A buffer or access does not fit in the scratchpad (and no spill was asked for)."""


@dataclass
class SramResult:
    """What one replay measured. Times in ps unless the name says cycles; sizes in bytes."""

    config_name: str
    accesses: int
    reads: int
    writes: int
    bytes_transferred: int
    sim_time_ps: int
    cycles: int
    clock_period_ps: int
    conflict_stall_cycles: int
    conflicted_accesses: int
    latency_cycles: dict
    per_bank_accesses: list
    per_bank_utilisation: list
    energy_pj: dict
    peak_bandwidth_GBps: float
    done_cycles: np.ndarray = field(repr=False, default=None)

    @property
    def bandwidth_gbps(self) -> float:
        return self.bytes_transferred / self.sim_time_ps * 1e3 if self.sim_time_ps else 0.0

    @property
    def fraction_of_peak(self) -> float:
        return self.bandwidth_gbps / self.peak_bandwidth_GBps if self.peak_bandwidth_GBps else 0.0

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if k != "done_cycles"}
        d.update(bandwidth_GBps=self.bandwidth_gbps, fraction_of_peak=self.fraction_of_peak,
                 sim_time_ns=self.sim_time_ps / 1e3)
        return d


def words_of(cfg: SramConfig, addr, nbytes=None) -> tuple[np.ndarray, np.ndarray]:
    """Byte addresses (and optional sizes) -> (word byte address of every word touched, owner index)."""
    a = np.asarray(addr, dtype=np.int64).reshape(-1)
    w = cfg.width_bytes
    if nbytes is None:
        return a // w * w, None  # one word per access: the owner of word i is access i
    else:
        n = np.broadcast_to(np.asarray(nbytes, dtype=np.int64), a.shape)
        if (n <= 0).any():
            raise ValueError(f"access sizes must be positive, got {int(n[np.argmax(n <= 0)])}")
        first = a // w
        count = (a + n - 1) // w - first + 1
    owner = np.repeat(np.arange(a.size), count)
    starts = np.concatenate([[0], np.cumsum(count)[:-1]])
    word = first[owner] + (np.arange(int(count.sum())) - starts[owner])
    return word * w, owner


def access(cfg: SramConfig, addr, is_write=False, nbytes=None, arrival_cycle=None,
           issue_width: int | None = None) -> SramResult:
    """Replay accesses through the banks.

    Parameters
    ----------
    cfg : SramConfig
    addr : array of int
        Byte address of each access (0 <= addr < capacity).
    is_write : bool or array of bool
    nbytes : int or array of int, optional
        Bytes of each access (split into ``width``-byte words, each a bank access). Default: one word.
    arrival_cycle : array of int, optional
        Earliest issue cycle of each access (one per access in ``addr``). Default: all at cycle 0.
    issue_width : int, optional
        Accesses the front end can issue per cycle (default banks x ports: not limiting).

    Raises
    ------
    SramCapacityError
        An access reaches beyond the capacity.
    """
    a = np.asarray(addr, dtype=np.int64).reshape(-1)
    if a.size == 0:
        raise ValueError("no accesses")
    words, owner = words_of(cfg, a, nbytes)
    if a.min() < 0 or words.max() + cfg.width_bytes > cfg.capacity_bytes:
        j = int(np.argmax((words < 0) | (words + cfg.width_bytes > cfg.capacity_bytes)))
        i = j if owner is None else int(owner[j])
        raise SramCapacityError(f"access {i} at byte {int(a[i])} lies outside the {cfg.capacity_bytes} B of "
                                f"{cfg.name}")
    wr = np.broadcast_to(np.asarray(is_write, dtype=bool), a.shape)
    if owner is not None:
        wr = wr[owner]
    bank = K.bank_of(np.ascontiguousarray(words, dtype=np.int64), cfg.interleave_bytes, cfg.banks)
    if arrival_cycle is None:
        arr = np.zeros(words.size, dtype=np.int64)
    else:
        arr = np.asarray(arrival_cycle, dtype=np.int64).reshape(-1)
        if arr.size != a.size or (arr < 0).any():
            raise ValueError("arrival_cycle must hold one non-negative cycle per access")
        if owner is not None:
            arr = arr[owner]
    width = cfg.banks * cfg.ports if issue_width is None else int(issue_width)
    if width < 1:
        raise ValueError(f"issue_width must be positive, got {issue_width}")
    issue, done, count, stall, n_stalled = K.simulate(bank, np.ascontiguousarray(arr),
                                           cfg.banks, cfg.ports, cfg.busy_cycles, cfg.latency_cycles, width)
    cycles = int(done.max())
    sim_ps = cycles * cfg.clock_period_ps
    lat = done - arr
    writes = int(np.count_nonzero(wr))
    reads = int(words.size) - writes
    energy = {"read": reads * cfg.read_pj, "write": writes * cfg.write_pj, "leakage": cfg.leakage_mw * sim_ps * 1e-3}
    energy["total"] = sum(energy.values())
    p = np.percentile(lat, [50, 95, 99], method="inverted_cdf")
    return SramResult(
        config_name=cfg.name, accesses=int(words.size), reads=reads, writes=writes,
        bytes_transferred=int(words.size) * cfg.width_bytes, sim_time_ps=sim_ps, cycles=cycles,
        clock_period_ps=cfg.clock_period_ps, conflict_stall_cycles=int(stall.sum()),
        conflicted_accesses=int(n_stalled),
        latency_cycles={"count": int(lat.size), "mean": float(lat.sum()) / lat.size, "p50": float(p[0]), "p95": float(p[1]),
                        "p99": float(p[2]), "max": float(lat.max())},
        per_bank_accesses=count.tolist(),
        per_bank_utilisation=(count * cfg.busy_cycles / (cycles * cfg.ports)).tolist(),
        energy_pj=energy, peak_bandwidth_GBps=cfg.peak_bandwidth_bytes_per_s / 1e9, done_cycles=done)


def stream(cfg: SramConfig, nbytes: int, start: int = 0, is_write: bool = False) -> SramResult:
    """A sequential transfer of ``nbytes`` from byte ``start`` (word after word)."""
    if nbytes <= 0:
        raise ValueError(f"nbytes must be positive, got {nbytes}")
    w = cfg.width_bytes
    words = np.arange(start // w * w, start + nbytes, w, dtype=np.int64)
    return access(cfg, words, is_write)


def stream_time(cfg: SramConfig, nbytes: int, start: int = 0, is_write: bool = False) -> int:
    """Time in ps of :func:`stream`."""
    return stream(cfg, nbytes, start, is_write).sim_time_ps


@dataclass(frozen=True)
class Allocation:
    """A placed buffer: ``resident`` bytes at ``offset`` in the scratchpad, ``spilled`` bytes elsewhere."""

    name: str
    offset: int
    nbytes: int
    resident: int
    spilled: int


class Scratchpad:
    """A capacity-checked bump allocator over one SRAM (buffers aligned to ``align``, default the width)."""

    def __init__(self, cfg: SramConfig, align: int | None = None):
        self.cfg = cfg
        self.align = align or cfg.width_bytes
        self.allocations: dict[str, Allocation] = {}
        self._top = 0

    @property
    def used(self) -> int:
        return self._top

    @property
    def free(self) -> int:
        return self.cfg.capacity_bytes - self._top

    def _aligned(self, n: int) -> int:
        return -(-n // self.align) * self.align

    def fits(self, nbytes: int) -> bool:
        """Whether a buffer of ``nbytes`` can still be placed entirely."""
        return nbytes >= 0 and self._aligned(nbytes) <= self.free

    def allocate(self, name: str, nbytes: int, *, allow_spill: bool = False) -> Allocation:
        """Place buffer ``name`` of ``nbytes``.

        Raises
        ------
        SramCapacityError
            If it does not fit and ``allow_spill`` is False (the message gives sizes and what is placed).
            With ``allow_spill`` the part that fits is placed and the rest is reported in ``spilled``.
        ValueError
            For a negative size or a name already placed.
        """
        if nbytes < 0:
            raise ValueError(f"buffer size must be non-negative, got {nbytes}")
        if name in self.allocations:
            raise ValueError(f"buffer {name!r} is already allocated")
        need = self._aligned(nbytes)
        if need > self.free and not allow_spill:
            placed = ", ".join(f"{a.name} {a.resident} B" for a in self.allocations.values()) or "nothing"
            raise SramCapacityError(
                f"{self.cfg.name}: buffer {name!r} of {nbytes} B does not fit: {self.free} B free of "
                f"{self.cfg.capacity_bytes} B (placed: {placed}); free something or allocate with allow_spill=True")
        resident = min(nbytes, self.free // self.align * self.align)
        a = Allocation(name, self._top, nbytes, resident, nbytes - resident)
        self._top += self._aligned(resident)
        self.allocations[name] = a
        return a

    def release(self, name: str) -> None:
        """Free buffer ``name``; the space is reused only when it is the most recent (a stack)."""
        a = self.allocations.pop(name)
        if a.offset + self._aligned(a.resident) == self._top:
            self._top = a.offset
            while self.allocations:
                last = max(self.allocations.values(), key=lambda x: x.offset)
                end = last.offset + self._aligned(last.resident)
                if end >= self._top:
                    break
                self._top = end
            if not self.allocations:
                self._top = 0
