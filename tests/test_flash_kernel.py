"""The jitted flash kernel against its plain-Python twin (tests/flash_twin.py) on random small inputs."""
import dataclasses

import numpy as np
import pytest

from memsim.flash import api
from memsim.flash import kernel as K
from memsim.flash.config import get_preset

import flash_twin


def _random_config(rng):
    base = get_preset("Samsung_990PRO_2TB")
    org = dataclasses.replace(
        base.organization, channels=int(rng.integers(1, 4)), packages_per_channel=int(rng.integers(1, 3)),
        dies_per_package=int(rng.integers(1, 3)), planes_per_die=int(rng.integers(1, 4)),
        blocks_per_plane=4, pages_per_block=int(rng.choice([2, 3, 4])), page_bytes=4096, read_granularity_bytes=1024,
        mapping="".join(rng.permutation(list("CWDP"))))
    ntr = int(rng.integers(1, 4))
    tim = dataclasses.replace(
        base.timing, tR_ps=tuple(int(x) for x in rng.integers(1, 60, ntr) * 1000),
        tPROG_ps=tuple(int(x) for x in rng.integers(50, 200, int(rng.integers(1, 3))) * 1000),
        tBERS_ps=int(rng.integers(200, 900)) * 1000, channel_rate_bps=int(rng.choice([400, 800, 1600])) * 10**6,
        command_overhead_ps=int(rng.integers(0, 3)) * 100)
    feat = dataclasses.replace(base.features, multi_plane=bool(rng.integers(2)), cache_read=bool(rng.integers(2)),
                               die_interleaving=bool(rng.integers(2)))
    host = dataclasses.replace(base.host, command_latency_ps=int(rng.integers(0, 5)) * 1000,
                               max_queue_depth=64, controller_time_ps=int(rng.choice([0, 0, 500, 3000])),
                               controller_cores=int(rng.integers(1, 3)))
    return dataclasses.replace(base, organization=org, timing=tim, features=feat, host=host)


def _random_requests(rng, cfg, n):
    cap = cfg.capacity_bytes
    size = rng.integers(1, 3 * cfg.organization.page_bytes, n)
    off = rng.integers(0, cap - size.max(), n)
    if rng.integers(2):  # many conflicts on few pages
        off = off % (4 * cfg.organization.page_bytes)
    kind = rng.choice([0, 0, 0, 1, 2], n) if rng.integers(2) else np.zeros(n, np.int64)
    arrival = np.sort(rng.integers(0, 200_000, n)) if rng.integers(2) else np.zeros(n, np.int64)
    return off, size, kind, arrival


@pytest.mark.parametrize("seed", range(150))
def test_kernel_matches_twin(seed):
    rng = np.random.default_rng(seed)
    cfg = _random_config(rng)
    n = int(rng.integers(1, 40))
    off, size, kind, arrival = _random_requests(rng, cfg, n)
    qd = int(rng.integers(0, 6))
    s = api.split_requests(cfg, off, size, kind)
    par = api.kernel_params(cfg, qd)
    start, done, pdone, ch_busy, plane_busy, stats = K.simulate(
        arrival.astype(np.int64), s["req_first"], s["req_count"], s["pc_plane"], s["pc_kind"], s["pc_array"],
        s["pc_xfer"], s["pc_link"], par, cfg.organization.planes)
    assert stats[K.S_STATUS] == 0
    o = cfg.organization
    t_start, t_done, t_pdone = flash_twin.simulate(
        arrival.tolist(), s["req_first"].tolist(), s["req_count"].tolist(), s["pc_plane"].tolist(),
        s["pc_kind"].tolist(), s["pc_array"].tolist(), s["pc_xfer"].tolist(), s["pc_link"].tolist(), qd=qd,
        t_cmd=cfg.timing.command_overhead_ps, lat=cfg.host.command_latency_ps, mp=cfg.features.multi_plane,
        cache=cfg.features.cache_read, interleave=cfg.features.die_interleaving, n_ch=o.channels,
        ppc=o.planes_per_channel, ppd=o.planes_per_die, n_planes=o.planes, ctrl_t=cfg.host.controller_time_ps,
        ctrl_n=cfg.host.controller_cores)
    assert start.tolist() == t_start
    assert done.tolist() == t_done
    assert pdone.tolist() == t_pdone
    # every piece completes exactly once, after its request was admitted; queue depth is respected
    assert (pdone >= np.repeat(start, s["req_count"])).all()
    if qd:
        events = sorted([(t, 1) for t in start] + [(t, -1) for t in done], key=lambda e: (e[0], e[1]))
        level = np.cumsum([e[1] for e in events])
        assert level.max() <= qd


def test_twin_is_not_trivially_equal():
    """A changed rule in the twin is detected: the comparison can fail."""
    rng = np.random.default_rng(3)
    cfg = _random_config(rng)
    off, size, kind, arrival = _random_requests(rng, cfg, 30)
    s = api.split_requests(cfg, off, size, np.zeros(30, np.int64))
    o = cfg.organization
    args = (arrival.tolist(), s["req_first"].tolist(), s["req_count"].tolist(), s["pc_plane"].tolist(),
            s["pc_kind"].tolist(), s["pc_array"].tolist(), s["pc_xfer"].tolist(), s["pc_link"].tolist())
    kw = dict(qd=2, t_cmd=100, lat=1000, mp=False, cache=False, interleave=True, n_ch=o.channels,
              ppc=o.planes_per_channel, ppd=o.planes_per_die, n_planes=o.planes)
    a = flash_twin.simulate(*args, **kw)
    kw["qd"] = 1
    b = flash_twin.simulate(*args, **kw)
    assert a[1] != b[1]
