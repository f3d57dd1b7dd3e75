"""Memory-request traces: reading, writing and generating them.

- :mod:`memsim.traces.formats` streams the four trace formats (``memsim`` Parquet, ``dramsim3``,
  ``ramulator1``, ``ramulator2``) in bounded-memory chunks and writes them atomically.
- :mod:`memsim.traces.synthetic` regenerates the reference traces (seq, rand, mix2:1, gemv,
  rand-unloaded) bit for bit.
"""
from __future__ import annotations

from memsim.traces.formats import (
    FORMATS,
    MEMSIM_TRACE_VERSION,
    TraceChunk,
    detect_format,
    open_trace,
    read_trace,
    write_trace,
)
from memsim.traces.synthetic import REFERENCE_TRACES, gemv, mix, rand, rand_unloaded, seq

__all__ = [
    "FORMATS",
    "MEMSIM_TRACE_VERSION",
    "REFERENCE_TRACES",
    "TraceChunk",
    "detect_format",
    "gemv",
    "mix",
    "open_trace",
    "rand",
    "rand_unloaded",
    "read_trace",
    "seq",
    "write_trace",
]
