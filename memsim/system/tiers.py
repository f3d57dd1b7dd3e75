"""Memory-tier models for the system simulator: one class per device kind, one small interface.

A tier model answers, for one device of the tier: its capacity, its peak bandwidth, and the time and
energy of a sequential stream of ``nbytes`` (read or write) at a fidelity (see
:mod:`memsim.system.service` for what the fidelities mean). The simulator splits every op's traffic
evenly over the tier's ``count`` devices and asks the model for one device's share.

* :class:`DramTier` (``memory`` / ``dram`` / ``pim`` tiers): the DRAM engine (:mod:`memsim.system.service`).
* :class:`FlashTier` (``flash``): :mod:`memsim.flash.api`; a stream is read as consecutive chunks of
  ``STREAM_CHUNK_BYTES`` with ``STREAM_PARALLEL`` requests in flight (an NVMe driver's large sequential
  reads); analytical = bytes / the lowest of the channel, host-link and array ceilings; event = bytes /
  the measured sequential bandwidth + one QD1 read latency; cycle = the stream through the flash kernel
  (bucketed lengths as for DRAM, beyond ``FLASH_SAMPLE_BYTES`` extrapolated).
* :class:`SramTier` (``sram``): :mod:`memsim.sram.api`; analytical and event = bytes / the
  conflict-free bandwidth (banks x ports x width per bank cycle), plus the access latency for event;
  cycle = the word stream through the SRAM kernel (bucketed, extrapolated beyond ``SRAM_SAMPLE_BYTES``).

What is simplified: every stream is sequential from an aligned base; flash writes are charged the same
way through ``memsim.flash.api.write`` (no FTL, garbage collection or wear, as the flash model states).
"""
from __future__ import annotations

from functools import lru_cache

from memsim.system import service
from memsim.system.service import StreamTiming

STREAM_CHUNK_BYTES = 1 << 20
STREAM_PARALLEL = 32
FLASH_SAMPLE_BYTES = 64 << 20
SRAM_SAMPLE_BYTES = 4 << 20


class TierModel:
    """Interface: ``capacity_bytes``, ``peak_bandwidth`` (B/s), ``stream(fidelity, nbytes, write)`` and
    ``first_access_ps()`` (the unloaded latency that event fidelity charges once per op)."""

    capacity_bytes: int
    peak_bandwidth: float

    def stream(self, fidelity: str, nbytes: float, write: bool) -> StreamTiming:  # pragma: no cover
        raise NotImplementedError

    def linear(self, fidelity: str) -> bool:
        """True if stream time is proportional to bytes at this fidelity (the simulator vectorises then)."""
        return fidelity == "analytical"

    def first_access_ps(self) -> float:  # pragma: no cover
        raise NotImplementedError


class DramTier(TierModel):
    def __init__(self, cfg):
        self.cfg = cfg
        self.capacity_bytes = cfg.organization.capacity_bytes
        self.peak_bandwidth = cfg.peak_bandwidth_bytes_per_s

    def linear(self, fidelity: str) -> bool:
        return fidelity in ("analytical", "event")

    def stream(self, fidelity, nbytes, write):
        return service.stream_timing(fidelity, self.cfg, nbytes, write)

    def first_access_ps(self) -> float:
        return service.unloaded_read_latency_ps(self.cfg)


def _bucket_bytes(nbytes: float, unit: int) -> int:
    units = max(1, int(-(-int(nbytes) // unit)))
    return service.bucket_lines(units) * unit


@lru_cache(maxsize=None)
def _flash_stream(cfg, nbytes: int, write: bool) -> tuple[float, float]:
    from memsim.flash import api

    chunk = min(STREAM_CHUNK_BYTES, nbytes)
    if write:
        import numpy as np

        offs = np.arange(0, nbytes, chunk, dtype=np.int64)
        res = api.write(cfg, offs, np.minimum(chunk, nbytes - offs), STREAM_PARALLEL)
    else:
        res = api.sequential_read(cfg, nbytes, chunk, STREAM_PARALLEL)
    return float(res.sim_time_ps), float(res.energy_pj.get("total", 0.0))


class FlashTier(TierModel):
    def linear(self, fidelity: str) -> bool:
        return fidelity in ("analytical", "event")

    def first_access_ps(self) -> float:
        from memsim.flash import api

        return float(api.qd1_read_latency_ps(self.cfg, min(4096, self.cfg.organization.page_bytes)))

    def __init__(self, cfg):
        self.cfg = cfg
        self.capacity_bytes = cfg.capacity_bytes
        lim = cfg.limits()
        self.peak_bandwidth = min(lim["channel"], lim["host_link"], lim["array_read"])

    def _energy(self, nbytes: float, write: bool) -> float:
        e = self.cfg.energy
        return nbytes * 8 * (e.write_pj_per_bit if write else e.read_pj_per_bit)

    def stream(self, fidelity, nbytes, write):
        if nbytes <= 0:
            return StreamTiming(0.0, 0.0)
        if fidelity == "analytical":
            return StreamTiming(nbytes / self.peak_bandwidth * 1e12, self._energy(nbytes, write))
        if fidelity == "event":
            t, _ = _flash_stream(self.cfg, FLASH_SAMPLE_BYTES, write)
            return StreamTiming(nbytes / FLASH_SAMPLE_BYTES * t, self._energy(nbytes, write))
        run = _bucket_bytes(min(nbytes, FLASH_SAMPLE_BYTES), self.cfg.organization.page_bytes)
        t, e = _flash_stream(self.cfg, run, write)
        scale = nbytes / run
        return StreamTiming(t * scale, (e if e else self._energy(run, write)) * scale)


@lru_cache(maxsize=None)
def _sram_stream(cfg, nbytes: int, write: bool) -> tuple[float, float]:
    from memsim.sram import api

    res = api.stream(cfg, nbytes, 0, write)
    return float(res.sim_time_ps), float(res.energy_pj.get("total", 0.0))


class SramTier(TierModel):
    def __init__(self, cfg):
        self.cfg = cfg
        self.capacity_bytes = cfg.capacity_bytes
        self.peak_bandwidth = cfg.peak_bandwidth_bytes_per_s

    def _energy(self, nbytes: float, write: bool) -> float:
        per_access = self.cfg.write_pj if write else self.cfg.read_pj
        return nbytes / self.cfg.width_bytes * per_access

    def linear(self, fidelity: str) -> bool:
        return fidelity in ("analytical", "event")

    def stream(self, fidelity, nbytes, write):
        if nbytes <= 0:
            return StreamTiming(0.0, 0.0)
        if fidelity in ("analytical", "event"):
            # event adds the access latency once per op in the simulator (first_access_ps)
            return StreamTiming(nbytes / self.peak_bandwidth * 1e12, self._energy(nbytes, write))
        run = _bucket_bytes(min(nbytes, SRAM_SAMPLE_BYTES), self.cfg.width_bytes)
        t, e = _sram_stream(self.cfg, run, write)
        scale = nbytes / run
        return StreamTiming(t * scale, e * scale)

    def first_access_ps(self) -> float:
        return float(self.cfg.access_time_ps)


def tier_model(tier) -> TierModel:
    """The model of a :class:`memsim.system.config.TierConfig`."""
    if tier.dram is not None:
        return DramTier(tier.dram)
    if tier.device == "flash":
        return FlashTier(tier.other)
    if tier.device == "sram":
        return SramTier(tier.other)
    raise ValueError(f"tier '{tier.name}': no model for device kind '{tier.device}'")
