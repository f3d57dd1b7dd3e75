"""Synthetic traces, including exact regenerations of the reference traces.

The reference figures (``dram_reference.csv``) were measured with five synthetic traces of 64-byte,
64-byte-aligned line requests. The generators here reproduce them request for request: the random ones
make the same numpy ``default_rng`` calls in the same order, so the same seed gives the same addresses.

=========================  ================================================================  ==========
name                       definition                                                        requests
=========================  ================================================================  ==========
``seq``                    sequential reads from address 0                                   1,048,576
``rand``                   uniform random line reads over a 4 GiB window, seed 1             1,048,576
``mix2:1``                 uniform random over 4 GiB, each a write with p = 1/3, seed 2      1,048,576
``gemv``                   fp16 y = W x, W 8192x4096 read row-major, x read first, y written  1,048,960
``rand-unloaded(QD1,20k)`` the first 20,000 requests of ``rand`` (replayed at queue depth 1)  20,000
=========================  ================================================================  ==========

Every generator returns ``(addr, is_write)``: ``addr`` a ``uint64`` array of byte addresses and
``is_write`` a ``bool`` array of the same length. None carries arrival times (saturation replay). The
queue-depth-1 replay of ``rand-unloaded`` is a property of the experiment, not of the trace.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["LINE_BYTES", "REFERENCE_N", "RAND_WINDOW_BYTES", "REFERENCE_TRACES",
           "seq", "rand", "mix", "gemv", "rand_unloaded"]

#: Bytes per request (one cache line).
LINE_BYTES = 64
#: Requests in the seq, rand and mix reference traces.
REFERENCE_N = 1 << 20
#: Span of the random traces' addresses, bytes (4 GiB, fits every configured device).
RAND_WINDOW_BYTES = 4 << 30


def seq(n: int = REFERENCE_N) -> tuple[np.ndarray, np.ndarray]:
    """Sequential line reads from address 0.

    Parameters
    ----------
    n : int, default 2**20
        Number of requests.

    Returns
    -------
    addr : numpy.ndarray
        ``uint64`` byte addresses ``0, 64, 128, ...``.
    is_write : numpy.ndarray
        ``bool``, all False.
    """
    addr = np.arange(n, dtype=np.uint64) * np.uint64(LINE_BYTES)
    return addr, np.zeros(n, dtype=bool)


def _random_lines(rng: np.random.Generator, n: int, window: int) -> np.ndarray:
    if window < LINE_BYTES or window % LINE_BYTES:
        raise ValueError(f"window must be a positive multiple of {LINE_BYTES} bytes, got {window}")
    return rng.integers(0, window // LINE_BYTES, size=n, dtype=np.uint64) * np.uint64(LINE_BYTES)


def rand(n: int = REFERENCE_N, seed: int = 1,
         window: int = RAND_WINDOW_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random line reads.

    ``numpy.random.default_rng(seed).integers(0, window // 64, size=n, dtype=uint64) * 64``.

    Parameters
    ----------
    n : int, default 2**20
        Number of requests.
    seed : int, default 1
        Seed of ``numpy.random.default_rng``.
    window : int, default 4 GiB
        Addresses lie in ``[0, window)`` bytes; a multiple of 64.

    Returns
    -------
    addr : numpy.ndarray
        ``uint64`` 64-byte-aligned byte addresses.
    is_write : numpy.ndarray
        ``bool``, all False.
    """
    addr = _random_lines(np.random.default_rng(seed), n, window)
    return addr, np.zeros(n, dtype=bool)


def mix(n: int = REFERENCE_N, seed: int = 2, write_fraction: float = 1.0 / 3.0,
        window: int = RAND_WINDOW_BYTES) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly random line reads and writes (2:1 by default).

    From one ``default_rng(seed)``: first all ``n`` addresses as in :func:`rand`, then the write flags
    as ``rng.random(n) < write_fraction``.

    Parameters
    ----------
    n : int, default 2**20
        Number of requests.
    seed : int, default 2
        Seed of ``numpy.random.default_rng``.
    write_fraction : float, default 1/3
        Probability that a request is a write.
    window : int, default 4 GiB
        Addresses lie in ``[0, window)`` bytes; a multiple of 64.

    Returns
    -------
    addr : numpy.ndarray
        ``uint64`` 64-byte-aligned byte addresses.
    is_write : numpy.ndarray
        ``bool``; the reference trace has 699,434 reads and 349,142 writes.
    """
    rng = np.random.default_rng(seed)
    addr = _random_lines(rng, n, window)
    is_write = rng.random(n) < write_fraction
    return addr, is_write


def gemv(rows: int = 8192, cols: int = 4096, elem_bytes: int = 2, w_base: int = 0x4000_0000,
         x_base: int = 0x8000_0000, y_base: int = 0x8010_0000) -> tuple[np.ndarray, np.ndarray]:
    """Memory traffic of a GEMV ``y = W x`` streamed once through the memory.

    Order: the vector ``x`` (``cols * elem_bytes`` bytes at ``x_base``) is read once, line by line,
    first (it is assumed to stay on chip afterwards). Then, for each block of ``64 // elem_bytes``
    consecutive rows of ``W`` (row-major at ``w_base``), every 64-byte line of those rows is read in
    address order, followed by one 64-byte write of the finished outputs to ``y_base + 64 * block``.
    No cache, no reuse: every line is requested exactly once.

    Parameters
    ----------
    rows, cols : int, default 8192, 4096
        Shape of ``W`` in elements. ``cols * elem_bytes`` must be a multiple of 64 and ``rows`` a
        multiple of ``64 // elem_bytes``.
    elem_bytes : int, default 2
        Bytes per element (2 for fp16); must divide 64.
    w_base, x_base, y_base : int
        Byte addresses of ``W``, ``x`` and ``y``.

    Returns
    -------
    addr : numpy.ndarray
        ``uint64`` byte addresses; the default has 1,048,960 requests (128 x reads, 1,048,576 W reads,
        256 y writes), the first at ``0x8000_0000`` and the 129th at ``0x4000_0000``.
    is_write : numpy.ndarray
        ``bool``, True only for the y writes.
    """
    if elem_bytes < 1 or LINE_BYTES % elem_bytes:
        raise ValueError(f"elem_bytes must divide {LINE_BYTES}, got {elem_bytes}")
    row_bytes = cols * elem_bytes
    if cols < 1 or row_bytes % LINE_BYTES:
        raise ValueError(f"cols * elem_bytes must be a positive multiple of {LINE_BYTES}, got {row_bytes}")
    rows_per_y_line = LINE_BYTES // elem_bytes
    if rows < 1 or rows % rows_per_y_line:
        raise ValueError(f"rows must be a positive multiple of {rows_per_y_line}, got {rows}")
    lines_per_row = row_bytes // LINE_BYTES
    blocks = rows // rows_per_y_line
    u = np.uint64
    x = u(x_base) + np.arange(lines_per_row, dtype=np.uint64) * u(LINE_BYTES)
    # (block, row in block, line in row) → address; then one y write per block appended as a last column
    w_addr = (u(w_base)
              + np.arange(rows, dtype=np.uint64).reshape(blocks, rows_per_y_line, 1) * u(row_bytes)
              + (np.arange(lines_per_row, dtype=np.uint64) * u(LINE_BYTES)).reshape(1, 1, -1))
    y_addr = u(y_base) + np.arange(blocks, dtype=np.uint64) * u(LINE_BYTES)
    body = np.concatenate([w_addr.reshape(blocks, -1), y_addr[:, None]], axis=1).reshape(-1)
    addr = np.concatenate([x, body])
    is_write = np.zeros(addr.shape[0], dtype=bool)
    per_block = rows_per_y_line * lines_per_row + 1
    is_write[lines_per_row + per_block - 1::per_block] = True
    return addr, is_write


def rand_unloaded(n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` requests of :func:`rand` (the reference replays them at queue depth 1).

    Parameters
    ----------
    n : int, default 20000
        Number of requests.

    Returns
    -------
    addr : numpy.ndarray
        ``uint64`` byte addresses, equal to ``rand()[0][:n]``.
    is_write : numpy.ndarray
        ``bool``, all False.
    """
    addr, is_write = rand(max(n, REFERENCE_N))
    return addr[:n].copy(), is_write[:n].copy()


#: Reference trace name (as in ``dram_reference.csv``) → generator called with no arguments.
REFERENCE_TRACES: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "seq": seq,
    "rand": rand,
    "mix2:1": mix,
    "gemv": gemv,
    "rand-unloaded(QD1,20k)": rand_unloaded,
}
