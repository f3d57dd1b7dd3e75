"""The fast part of the validation catalogue (QD1 rows and DDR4), run in full.

These are *validation* against reference simulators (tolerances of the project's acceptance criteria).
The regression checks of memsim's own outputs on short prefixes are in test_regression.py.
"""
import pytest

from memsim.validate.catalogue import KNOWN_MISSES, catalogue, run_case

FAST = [c for c in catalogue() if c.fast]


def test_catalogue_covers_every_reference_row_with_a_preset():
    cases = [c for c in catalogue() if c.id.startswith("dram/")]
    assert len(cases) == 40  # 8 configurations x 5 traces
    assert all(c.checks and c.source for c in cases)
    assert set(KNOWN_MISSES) <= {f"{c.id}:{k.metric}" for c in cases for k in c.checks}


@pytest.mark.parametrize("case", FAST, ids=[c.id for c in FAST])
def test_fast_reference_case(case):
    res = run_case(case)
    for r in res.checks:
        if not r.check.judged:
            continue
        if r.known_miss:
            # documented misses must still be misses, or the list is stale
            assert not r.passed, f"{r.id} now passes: remove it from KNOWN_MISSES"
        else:
            assert r.passed, (f"{r.id}: expected {r.check.expected}, simulated {r.simulated:.4g} "
                              f"(error {r.error:+.4f}, tolerance {r.check.tolerance})")


SLOW = [c for c in catalogue() if not c.fast]


@pytest.mark.slow
@pytest.mark.parametrize("case", SLOW, ids=[c.id for c in SLOW])
def test_full_reference_case(case):
    """The rest of the catalogue (HBM rows on 1 M-request traces); run with ``pytest -m slow``."""
    test_fast_reference_case(case)
