"""SRAM kernel vs its cycle-by-cycle twin, and the closed forms of streaming and conflict patterns."""
import numpy as np
import pytest

from memsim.sram import kernel as K

import sram_twin


@pytest.mark.parametrize("seed", range(150))
def test_kernel_matches_twin(seed):
    rng = np.random.default_rng(seed)
    banks = int(rng.integers(1, 9))
    ports = int(rng.integers(1, 3))
    busy = int(rng.integers(1, 4))
    latency = int(rng.integers(1, 5))
    width = int(rng.integers(1, banks * ports + 2))
    n = int(rng.integers(1, 200))
    if rng.integers(2):
        bank = rng.integers(0, banks, n)
    else:  # strided
        bank = (np.arange(n) * int(rng.integers(1, 5))) % banks
    arrival = np.sort(rng.integers(0, n // 2 + 1, n)) if rng.integers(2) else np.zeros(n, np.int64)
    issue, done, count, stall, n_stalled = K.simulate(bank.astype(np.int64), arrival.astype(np.int64), banks, ports,
                                                      busy, latency, width)
    t_issue, t_done = sram_twin.simulate(bank.tolist(), arrival.tolist(), banks, ports, busy, latency, width)
    assert issue.tolist() == t_issue
    assert done.tolist() == t_done
    assert count.sum() == n and (np.diff(issue) >= 0).all()


@pytest.mark.parametrize("banks, ports, busy", [(16, 1, 1), (8, 2, 1), (4, 1, 3), (1, 1, 2)])
def test_closed_forms(banks, ports, busy):
    n = 64 * banks * ports
    seq = np.arange(n) % banks
    issue, done, *_ = K.simulate(seq, np.zeros(n, np.int64), banks, ports, busy, 2, banks * ports)
    # conflict-free: banks x ports accesses every `busy` cycles
    assert done.max() == (n // (banks * ports) - 1) * busy + 2
    same = np.zeros(n, np.int64)
    issue, done, count, stall, n_stalled = K.simulate(same, np.zeros(n, np.int64), banks, ports, busy, 2,
                                                      banks * ports)
    # all in one bank: serialised on its ports
    assert done.max() == (n // ports - 1) * busy + 2
    if banks > 1 or busy > 1:
        assert n_stalled > 0
