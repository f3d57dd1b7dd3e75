"""Python API of the flash tier: read / write / erase request lists, sequential reads, chunk-size sweeps.

The system simulator and the CLI call these functions; all of them are deterministic (random offsets
come from a seeded generator). Requests of any size and alignment are split here into page operations
("pieces") and handed to the jitted kernel (:mod:`memsim.flash.kernel`, which states what the timing
model includes and simplifies).

Address mapping (no FTL): byte offset ``o`` lies in logical page ``o // page_size``; logical pages are
striped over the array in the order of ``organization.mapping`` (default ``CWDP``: consecutive pages go
to consecutive channels, then packages, dies, planes), and the page index inside the plane is the
remaining quotient. The page type (LSB/CSB/MSB, selecting tR and tPROG) is the page's index in its
block modulo the number of tR values. A piece moves only the read units (``read_granularity``) it
touches over the channel, and exactly its requested bytes over the host link.

Units: offsets and sizes in bytes, times in picoseconds (``*_ps``) unless a name says ``_ns``/``_us``,
bandwidths in GB/s (10**9 bytes per second), energies in pJ.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import FlashConfig
from . import kernel as K

__all__ = ["FlashResult", "run", "read", "write", "erase", "sequential_read", "random_read", "chunk_sweep",
           "qd1_read_latency_ps", "split_requests"]


@dataclass
class FlashResult:
    """What one replay measured. Times in ps unless the name says otherwise; sizes in bytes.

    ``sim_time_ps`` runs from time 0 to the last completion; latencies run from a request's admission
    (arrival, or a free queue slot) to its completion.
    """

    config_name: str
    queue_depth: int
    requests: int
    reads: int
    writes: int
    erases: int
    page_reads: int
    page_programs: int
    block_erases: int
    array_operations: int
    multi_plane_operations: int
    bytes_read: int
    bytes_written: int
    sim_time_ps: int
    read_latency_ns: dict
    write_latency_ns: dict
    channel_utilisation: list
    host_link_utilisation: dict
    plane_utilisation_mean: float
    energy_pj: dict
    limits_GBps: dict
    request_start_ps: np.ndarray = field(repr=False, default=None)
    request_done_ps: np.ndarray = field(repr=False, default=None)

    @property
    def bandwidth_gbps(self) -> float:
        """Payload bytes (read + written) per second over the whole run, in GB/s."""
        return (self.bytes_read + self.bytes_written) / self.sim_time_ps * 1e3 if self.sim_time_ps else 0.0

    @property
    def iops(self) -> float:
        """Requests completed per second."""
        return self.requests / (self.sim_time_ps * 1e-12) if self.sim_time_ps else 0.0

    @property
    def avg_read_latency_us(self) -> float:
        return self.read_latency_ns["mean"] / 1e3

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if not k.startswith("request_")}
        d.update(bandwidth_GBps=self.bandwidth_gbps, iops=self.iops, sim_time_us=self.sim_time_ps / 1e6,
                 avg_read_latency_us=self.avg_read_latency_us)
        return d


def _latency(lat_ps: np.ndarray) -> dict:
    if lat_ps.size == 0:
        return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    ns = lat_ps / 1e3
    p = np.percentile(ns, [50, 95, 99], method="inverted_cdf")
    return {"count": int(lat_ps.size), "mean": float(ns.mean()), "p50": float(p[0]), "p95": float(p[1]),
            "p99": float(p[2]), "max": float(ns.max())}


def _plane_of(cfg: FlashConfig, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Logical page (or block) index -> (global plane, index inside the plane), striped in mapping order."""
    o = cfg.organization
    radix = {"C": o.channels, "W": o.packages_per_channel, "D": o.dies_per_package, "P": o.planes_per_die}
    digit = {}
    rest = unit.astype(np.int64)
    for letter in o.mapping:
        digit[letter] = rest % radix[letter]
        rest = rest // radix[letter]
    plane = ((digit["C"] * o.packages_per_channel + digit["W"]) * o.dies_per_package + digit["D"]) \
        * o.planes_per_die + digit["P"]
    return plane, rest


def _times(values: np.ndarray, fn) -> np.ndarray:
    """``fn`` (exact integer arithmetic) applied to each value; values are piece sizes (<= a block), so a
    lookup table over the distinct values is cheap."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    present = np.zeros(int(values.max()) + 1, dtype=bool)
    present[values] = True
    lut = np.zeros(present.size, dtype=np.int64)
    for v in np.flatnonzero(present):
        lut[v] = fn(int(v))
    return lut[values]


def split_requests(cfg: FlashConfig, offsets, sizes, kinds) -> dict:
    """Split requests into page pieces; returns the kernel's per-request and per-piece arrays.

    Raises ValueError for a negative offset, a non-positive size or a request beyond the capacity.
    """
    o, t = cfg.organization, cfg.timing
    off = np.asarray(offsets, dtype=np.int64).reshape(-1)
    off = np.ascontiguousarray(off)
    size = np.ascontiguousarray(np.broadcast_to(np.asarray(sizes, dtype=np.int64), off.shape))
    kind = np.ascontiguousarray(np.broadcast_to(np.asarray(kinds, dtype=np.int64), off.shape))
    if off.size == 0:
        raise ValueError("no requests")
    if (off < 0).any():
        raise ValueError(f"negative offset {int(off[np.argmax(off < 0)])} (request {int(np.argmax(off < 0))})")
    if (size <= 0).any():
        i = int(np.argmax(size <= 0))
        raise ValueError(f"request {i}: size must be positive, got {int(size[i])}")
    if ((kind < 0) | (kind > K.KIND_ERASE)).any():
        raise ValueError("kinds must be 0 (read), 1 (write) or 2 (erase)")
    page = o.page_bytes
    block_bytes = page * o.pages_per_block
    end = off + size
    cap = o.capacity_bytes
    if (end > cap).any():
        i = int(np.argmax(end > cap))
        raise ValueError(f"request {i} ({int(off[i])} + {int(size[i])} B) ends beyond the capacity "
                         f"{cap} B of {cfg.name}")
    order = np.array(["CWDP".index(ch) for ch in o.mapping], dtype=np.int64)
    radix = np.array([o.channels, o.packages_per_channel, o.dies_per_package, o.planes_per_die], dtype=np.int64)
    req_first, count, pkind, plane, in_plane, host_bytes, chan_bytes = K.split(
        off, size, kind, page, block_bytes, o.read_granularity_bytes, order, radix)
    ptype_r = (in_plane % o.pages_per_block) % len(t.tR_ps)
    ptype_w = (in_plane % o.pages_per_block) % len(t.tPROG_ps)
    arr = np.where(pkind == K.KIND_READ, np.asarray(t.tR_ps, dtype=np.int64)[ptype_r],
                   np.where(pkind == K.KIND_WRITE, np.asarray(t.tPROG_ps, dtype=np.int64)[ptype_w], t.tBERS_ps))
    xfer = _times(chan_bytes, t.channel_transfer_ps)
    link = _times(host_bytes, lambda b: cfg.host.transfer_ps(b) if b else 0)
    return {"req_first": req_first, "req_count": count, "req_kind": kind, "req_size": size,
            "pc_plane": np.ascontiguousarray(plane, dtype=np.int64), "pc_kind": np.ascontiguousarray(pkind),
            "pc_array": np.ascontiguousarray(arr, dtype=np.int64), "pc_xfer": xfer, "pc_link": link,
            "pc_host_bytes": host_bytes}


def kernel_params(cfg: FlashConfig, queue_depth: int) -> np.ndarray:
    o, f = cfg.organization, cfg.features
    par = np.zeros(K.N_P, dtype=np.int64)
    par[K.P_QD] = queue_depth
    par[K.P_CMD] = cfg.timing.command_overhead_ps
    par[K.P_LAT] = cfg.host.command_latency_ps
    par[K.P_MP] = int(f.multi_plane)
    par[K.P_CACHE] = int(f.cache_read)
    par[K.P_INTERLEAVE] = int(f.die_interleaving)
    par[K.P_NCH] = o.channels
    par[K.P_PPC] = o.planes_per_channel
    par[K.P_PPD] = o.planes_per_die
    par[K.P_CTRL_T] = cfg.host.controller_time_ps
    par[K.P_CTRL_N] = cfg.host.controller_cores
    return par


def _effective_qd(cfg: FlashConfig, queue_depth: int) -> int:
    if isinstance(queue_depth, bool) or not isinstance(queue_depth, (int, np.integer)) or queue_depth < 0:
        raise ValueError(f"queue_depth must be 0 (the device maximum) or a positive integer, got {queue_depth!r}")
    qd = int(queue_depth)
    return cfg.host.max_queue_depth if qd == 0 else min(qd, cfg.host.max_queue_depth)


def run(cfg: FlashConfig, offsets, sizes, kinds, queue_depth: int = 32, arrival_ps=None) -> FlashResult:
    """Replay a list of requests (reads, writes, erases) through ``cfg``.

    Parameters
    ----------
    cfg : FlashConfig
    offsets : array of int
        Byte offset of each request (any alignment).
    sizes : int or array of int
        Bytes of each request (> 0). For erases, the byte range whose blocks are erased.
    kinds : int or array of int
        ``0`` read, ``1`` write, ``2`` erase (see :mod:`memsim.flash.kernel`).
    queue_depth : int
        Maximum outstanding requests (NVMe queue depth); 0 means the device's ``max_queue_depth``, and
        larger values are capped at it.
    arrival_ps : array of int, optional
        Earliest admission time of each request (ps); requests are admitted in order. Default: all at 0.

    Returns
    -------
    FlashResult
    """
    qd = _effective_qd(cfg, queue_depth)
    s = split_requests(cfg, offsets, sizes, kinds)
    n = s["req_first"].size
    if arrival_ps is None:
        arrival = np.zeros(n, dtype=np.int64)
    else:
        arrival = np.ascontiguousarray(arrival_ps, dtype=np.int64).reshape(-1)
        if arrival.size != n or (arrival < 0).any():
            raise ValueError("arrival_ps must hold one non-negative time per request")
    start, done, pc_done, ch_busy, plane_busy, stats = K.simulate(
        arrival, s["req_first"], s["req_count"], s["pc_plane"], s["pc_kind"], s["pc_array"], s["pc_xfer"],
        s["pc_link"], kernel_params(cfg, qd), cfg.organization.planes)
    if stats[K.S_STATUS] != 0 or (pc_done < 0).any():
        raise RuntimeError("flash kernel stopped before every request completed (a memsim bug)")
    return _result(cfg, qd, s, start, done, ch_busy, plane_busy, stats)


def _result(cfg, qd, s, start, done, ch_busy, plane_busy, stats) -> FlashResult:
    kind = s["req_kind"]
    pk = s["pc_kind"]
    sim = int(done.max())
    lat = done - start
    hb = s["pc_host_bytes"]
    bytes_read = int(hb[pk == K.KIND_READ].sum())
    bytes_written = int(hb[pk == K.KIND_WRITE].sum())
    n_erase_blocks = int((pk == K.KIND_ERASE).sum())
    e = cfg.energy
    energy = {"read": bytes_read * 8 * e.read_pj_per_bit, "write": bytes_written * 8 * e.write_pj_per_bit,
              "erase": n_erase_blocks * e.erase_pj_per_block, "static": e.static_mw * sim * 1e-3}  # mW x ps = 1e-3 pJ
    energy["total"] = sum(energy.values())
    lim = {k: v / 1e9 for k, v in cfg.limits().items()}
    return FlashResult(
        config_name=cfg.name, queue_depth=qd, requests=int(kind.size),
        reads=int((kind == K.KIND_READ).sum()), writes=int((kind == K.KIND_WRITE).sum()),
        erases=int((kind == K.KIND_ERASE).sum()),
        page_reads=int((pk == K.KIND_READ).sum()), page_programs=int((pk == K.KIND_WRITE).sum()),
        block_erases=n_erase_blocks, array_operations=int(stats[K.S_OPS]),
        multi_plane_operations=int(stats[K.S_MP_OPS]), bytes_read=bytes_read, bytes_written=bytes_written,
        sim_time_ps=sim, read_latency_ns=_latency(lat[kind == K.KIND_READ]),
        write_latency_ns=_latency(lat[kind == K.KIND_WRITE]),
        channel_utilisation=[float(b) / sim for b in ch_busy],
        host_link_utilisation={"read": float(stats[K.S_LINK_R]) / sim, "write": float(stats[K.S_LINK_W]) / sim},
        plane_utilisation_mean=float(plane_busy.mean()) / sim, energy_pj=energy, limits_GBps=lim,
        request_start_ps=start, request_done_ps=done)


def read(cfg: FlashConfig, offsets, sizes, queue_depth: int = 32, arrival_ps=None) -> FlashResult:
    """Read requests (byte offsets and sizes, any alignment); see :func:`run`."""
    return run(cfg, offsets, sizes, K.KIND_READ, queue_depth, arrival_ps)


def write(cfg: FlashConfig, offsets, sizes, queue_depth: int = 32, arrival_ps=None) -> FlashResult:
    """Write requests, each page programmed with its page type's tPROG (write-through); see :func:`run`."""
    return run(cfg, offsets, sizes, K.KIND_WRITE, queue_depth, arrival_ps)


def erase(cfg: FlashConfig, offsets, sizes, queue_depth: int = 32) -> FlashResult:
    """Erase the blocks covering each byte range (tBERS per block); see :func:`run`."""
    return run(cfg, offsets, sizes, K.KIND_ERASE, queue_depth)


def sequential_read(cfg: FlashConfig, nbytes: int, chunk_bytes: int = 128 * 1024, parallel_requests: int = 32,
                    start: int = 0) -> FlashResult:
    """Read ``nbytes`` from ``start`` in consecutive ``chunk_bytes`` requests, ``parallel_requests`` at a time."""
    if nbytes <= 0 or chunk_bytes <= 0:
        raise ValueError(f"nbytes and chunk_bytes must be positive, got {nbytes} and {chunk_bytes}")
    offs = np.arange(start, start + nbytes, chunk_bytes, dtype=np.int64)
    sizes = np.minimum(chunk_bytes, start + nbytes - offs)
    return read(cfg, offs, sizes, parallel_requests)


def random_offsets(cfg: FlashConfig, n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` offsets aligned to ``size``, uniform over the device (deterministic for a seed)."""
    slots = cfg.capacity_bytes // size
    rng = np.random.default_rng(seed)
    return rng.integers(0, slots, size=n, dtype=np.int64) * size


def random_read(cfg: FlashConfig, n: int, size: int = 4096, queue_depth: int = 32, seed: int = 0) -> FlashResult:
    """``n`` reads of ``size`` bytes at random ``size``-aligned offsets."""
    return read(cfg, random_offsets(cfg, n, size, seed), size, queue_depth)


def qd1_read_latency_ps(cfg: FlashConfig, size: int = 4096, page_type: int = 0) -> int:
    """Closed form of one unloaded read that lies inside one page: controller time + command latency +
    command/address cycles + tR + channel transfer (read units touched, here from the page start) + host-link transfer."""
    t = cfg.timing
    g = cfg.organization.read_granularity_bytes
    if size > cfg.organization.page_bytes:
        raise ValueError("the closed form covers reads inside one page")
    return (cfg.host.controller_time_ps + cfg.host.command_latency_ps + t.command_overhead_ps
            + t.tR_ps[page_type % len(t.tR_ps)]
            + t.channel_transfer_ps(-(-size // g) * g) + cfg.host.transfer_ps(size))


DEFAULT_CHUNKS = tuple(4096 << i for i in range(11))  # 4 KiB .. 4 MiB


def chunk_sweep(cfg: FlashConfig, chunk_sizes=DEFAULT_CHUNKS, parallel_requests: int = 8,
                bytes_per_point: int = 64 << 20, min_requests: int = 64, seed: int = 0):
    """Read throughput against chunk size: random chunk-aligned reads, ``parallel_requests`` at a time.

    Each point reads ``max(min_requests, bytes_per_point // chunk)`` chunks at random chunk-aligned
    offsets (the access pattern of "LLM in a flash": neuron bundles of one chunk each).

    Returns
    -------
    pandas.DataFrame
        One row per chunk size: ``chunk_bytes``, ``requests``, ``bandwidth_GBps``, ``iops``,
        ``mean_latency_us``, ``p99_latency_us``, ``fraction_of_limit`` (of the lowest of the channel and
        host-link ceilings) and ``channel_util`` / ``link_util``.
    """
    import pandas as pd

    lim = cfg.limits()
    ceiling = min(lim["channel"], lim["host_link"])
    rows = []
    for chunk in chunk_sizes:
        n = max(min_requests, bytes_per_point // chunk)
        res = random_read(cfg, n, int(chunk), parallel_requests, seed)
        rows.append({"chunk_bytes": int(chunk), "requests": n, "bandwidth_GBps": res.bandwidth_gbps,
                     "iops": res.iops, "mean_latency_us": res.read_latency_ns["mean"] / 1e3,
                     "p99_latency_us": res.read_latency_ns["p99"] / 1e3,
                     "fraction_of_limit": res.bandwidth_gbps * 1e9 / ceiling,
                     "channel_util": float(np.mean(res.channel_utilisation)),
                     "link_util": res.host_link_utilisation["read"]})
    return pd.DataFrame(rows)
