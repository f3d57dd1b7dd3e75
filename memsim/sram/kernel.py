"""The SRAM bank-conflict kernel: in-order issue of word accesses to banked, multi-ported SRAM.

Model (all in clock cycles): accesses issue strictly in order, at most ``issue_width`` per cycle (the
front end; default banks x ports, i.e. not limiting). An access goes to the port of its bank that frees
first; it issues at the earliest cycle that is no earlier than the previous access's issue cycle, its
own arrival cycle, a free issue slot, and that port's free cycle, and then holds the port for ``busy`` cycles (the bank
cycle time). Its data is ready ``latency`` cycles (the access time) after issue. A bank conflict is an
access that waits for a port of its bank; it stalls every later access too (in-order issue, no
reordering queue). Reads and writes share the ports and the timing.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def simulate(bank, arrival, n_banks, ports, busy, latency, issue_width):
    """Returns (issue cycle, done cycle, per-bank access count, per-bank conflict stall cycles, number of
    accesses that waited for their bank)."""
    n = bank.shape[0]
    issue = np.empty(n, dtype=np.int64)
    done = np.empty(n, dtype=np.int64)
    port_free = np.zeros((n_banks, ports), dtype=np.int64)
    count = np.zeros(n_banks, dtype=np.int64)
    stall = np.zeros(n_banks, dtype=np.int64)
    cur = np.int64(0)
    used = 0
    n_stalled = 0
    for i in range(n):
        b = bank[i]
        k = 0
        for q in range(1, ports):
            if port_free[b, q] < port_free[b, k]:
                k = q
        ready = max(cur, arrival[i])
        if ready == cur and used == issue_width:
            ready = cur + 1  # this cycle's issue slots are taken
        t = max(ready, port_free[b, k])
        if t > ready:
            stall[b] += t - ready
            n_stalled += 1
        if t > cur:
            cur = t
            used = 0
        port_free[b, k] = t + busy
        issue[i] = t
        done[i] = t + latency
        used += 1
        count[b] += 1
    return issue, done, count, stall, n_stalled


@njit(cache=True)
def bank_of(byte_addr, interleave, n_banks):
    """Bank of each byte address: ``(addr // interleave) % n_banks`` (compiled: NumPy's integer division
    by a run-time divisor is several times slower)."""
    out = np.empty(byte_addr.shape[0], dtype=np.int64)
    for i in range(byte_addr.shape[0]):
        out[i] = (byte_addr[i] // interleave) % n_banks
    return out
