"""Plain-Python twin of the SRAM bank-conflict kernel (memsim/sram/kernel.py), used only in tests.

Written as a cycle-by-cycle loop: at each cycle it issues accesses in order while the next one has
arrived, has a free issue slot, and its bank has a free port; the kernel jumps straight to the issue
cycle instead. The tests require identical issue and completion cycles.
"""
from __future__ import annotations


def simulate(bank, arrival, n_banks, ports, busy, latency, issue_width):
    n = len(bank)
    issue = [None] * n
    free = [[0] * ports for _ in range(n_banks)]
    i = 0
    cycle = 0
    while i < n:
        slots = issue_width
        while i < n and slots > 0 and arrival[i] <= cycle:
            b = bank[i]
            k = min(range(ports), key=lambda q: (free[b][q], q))
            if free[b][k] > cycle:
                break  # head of line blocked by a busy bank
            free[b][k] = cycle + busy
            issue[i] = cycle
            slots -= 1
            i += 1
        cycle += 1
    return issue, [t + latency for t in issue]
