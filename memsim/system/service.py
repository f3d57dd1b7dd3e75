"""Service-time models of a memory tier, at the three fidelities of the system simulator.

Every op's memory phase is a set of *streams*: (tier, bytes, read or write). A tier is ``count``
identical devices with the traffic split evenly, so each stream is timed on one device with
``bytes / count``. The fidelity decides how a stream becomes a time:

``analytical``
    Roofline: ``bytes / (peak bandwidth x unit memory efficiency)``. No device model runs.
``event``
    The tier's *measured* streaming bandwidth: the device kernel replays one long sequential read
    stream and one long write stream per device configuration (memoised), and every stream is charged
    ``bytes / (measured bandwidth x unit memory efficiency)`` plus, once per op, the device's unloaded
    read latency (the first access of a kernel is not overlapped).
``cycle``
    The stream itself, as the device's sequence of line addresses from the tensor's placed base
    address, through the device kernel. Memoised by (device config, bytes per device, direction):
    tensors are placed at bases aligned to a whole mapping period (:data:`ALIGN_BYTES`), so two streams
    of equal length see identical device behaviour. Streams longer than :data:`SAMPLE_LINES` lines per
    device are simulated for their first SAMPLE_LINES lines and extrapolated linearly (the steady state of
    a sequential stream is reached within a few thousand lines; the sample is 64 times that). Shorter
    streams are simulated at their length rounded up to one of :data:`BUCKETS_PER_OCTAVE` sizes per
    power of two and scaled back linearly, so that a KV cache growing by one token per step does not
    cost one kernel run per step (the rounding moves the simulated length by at most 1/64).

The unit's memory efficiency (the fraction of the memory bandwidth a real kernel's access pattern can
draw, e.g. AttAcc's MAX_OFF_MEM_BW_UTIL) applies at every fidelity: it models the compute unit's side.
The device kernel models the memory side (refresh, row switches, bank timing). So cycle and event
fidelity differ from analytical by the device's streaming efficiency, as the closed-form tests check.

What is simplified: reads and writes of one op are timed as separate streams and added (no read/write
interleaving inside an op); activations are read and written as sequential streams.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from memsim.config.schema import DramConfig

#: Placed tensors start at multiples of this (bytes per device), so equal-length streams time equally.
ALIGN_BYTES = 1 << 21
#: Longest stream (in lines per device) replayed in full at cycle fidelity; longer ones are extrapolated.
SAMPLE_LINES = 1 << 16
#: Stream lengths simulated at cycle fidelity: this many sizes per power of two (see the module docstring).
BUCKETS_PER_OCTAVE = 64
#: Length of the calibration streams of event fidelity (lines per device).
CALIBRATION_LINES = 1 << 16

FIDELITIES = ("analytical", "event", "cycle")


@dataclass(frozen=True)
class StreamTiming:
    """Time and DRAM energy of one stream on one device (before the unit's efficiency is applied)."""

    time_ps: float
    energy_pj: float
    row_hits: float = 0.0
    row_misses: float = 0.0


def dram_energy_per_byte(cfg: DramConfig, write: bool) -> float:
    """pJ per byte of a streaming access: I/O + core per bit, plus one ACT per row, amortised."""
    e = cfg.energy
    per_bit = e.write_pj_per_bit if write else e.read_pj_per_bit
    row_bytes = cfg.organization.row_bytes
    return 8 * per_bit + e.act_pj / row_bytes


def peak_bandwidth(cfg: DramConfig) -> float:
    return cfg.peak_bandwidth_bytes_per_s


def analytical_stream(cfg: DramConfig, nbytes: float, write: bool) -> StreamTiming:
    """Roofline time of ``nbytes`` on one device at its peak bandwidth (ps), with streaming energy."""
    return StreamTiming(nbytes / peak_bandwidth(cfg) * 1e12, nbytes * dram_energy_per_byte(cfg, write))


@lru_cache(maxsize=None)
def _kernel_stream(cfg: DramConfig, lines: int, write: bool) -> tuple[float, float, float, float]:
    from memsim.dram.engine import DramEngine, Requests

    line = cfg.line_bytes
    addr = (np.arange(lines, dtype=np.uint64) * np.uint64(line)) % np.uint64(cfg.organization.capacity_bytes)
    res = DramEngine(cfg).run(Requests(addr, np.full(lines, write, dtype=bool)))
    return (float(res.sim_time_ps), float(res.energy_pj["total"]), float(res.row_hits), float(res.row_misses))


def measured_stream_bandwidth(cfg: DramConfig, write: bool) -> float:
    """Sustained sequential bandwidth of one device (B/s), from the device kernel (memoised)."""
    t_ps, _, _, _ = _kernel_stream(cfg, CALIBRATION_LINES, write)
    return CALIBRATION_LINES * cfg.line_bytes / (t_ps * 1e-12)


@lru_cache(maxsize=None)
def unloaded_read_latency_ps(cfg: DramConfig) -> float:
    """The device's QD1 read latency on a fresh row (ps), from the kernel: the first access of an op."""
    from memsim.dram.engine import DramEngine, Requests

    res = DramEngine(cfg).run(Requests(np.zeros(1, dtype=np.uint64), np.zeros(1, dtype=bool)), queue_depth=1)
    return float(res.sim_time_ps)


def event_stream(cfg: DramConfig, nbytes: float, write: bool) -> StreamTiming:
    bw = measured_stream_bandwidth(cfg, write)
    return StreamTiming(nbytes / bw * 1e12, nbytes * dram_energy_per_byte(cfg, write))


def bucket_lines(lines: int) -> int:
    """``lines`` rounded up to the next of BUCKETS_PER_OCTAVE sizes per power of two (exact below 128)."""
    if lines <= 2 * BUCKETS_PER_OCTAVE:
        return lines
    step = 1 << (lines.bit_length() - 1 - BUCKETS_PER_OCTAVE.bit_length() + 1)
    return -(-lines // step) * step


def cycle_stream(cfg: DramConfig, nbytes: float, write: bool) -> StreamTiming:
    """The stream through the device kernel (sampled beyond SAMPLE_LINES lines, see the module docstring)."""
    line = cfg.line_bytes
    lines = int(-(-int(nbytes) // line))
    if lines == 0:
        return StreamTiming(0.0, 0.0)
    run = bucket_lines(min(lines, SAMPLE_LINES))
    t, e, hits, misses = _kernel_stream(cfg, run, write)
    scale = lines / run
    return StreamTiming(t * scale, e * scale, hits * scale, misses * scale)


def stream_timing(fidelity: str, cfg: DramConfig, nbytes: float, write: bool) -> StreamTiming:
    if fidelity == "analytical":
        return analytical_stream(cfg, nbytes, write)
    if fidelity == "event":
        return event_stream(cfg, nbytes, write)
    if fidelity == "cycle":
        return cycle_stream(cfg, nbytes, write)
    raise ValueError(f"unknown fidelity {fidelity!r}; expected one of {', '.join(FIDELITIES)}")
