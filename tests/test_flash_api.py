"""Flash API: closed forms of single operations, request splitting, features, errors, determinism."""
import dataclasses

import numpy as np
import pytest

from memsim.flash import api
from memsim.flash.config import get_preset
from memsim.flash.validation import lsb_offsets
from memsim.validate.catalogue import run_case

PRESETS = ["Samsung_990PRO_2TB", "Apple_M2_laptop_flash", "MQSim_default_MLC", "SimpleSSD_sample_MLC"]


def _with(cfg, **features):
    return dataclasses.replace(cfg, features=dataclasses.replace(cfg.features, **features))


@pytest.mark.parametrize("name", PRESETS)
def test_qd1_read_latency_is_the_closed_form(name):
    cfg = get_preset(name)
    r = api.read(cfg, lsb_offsets(cfg, 50, seed=4), 4096, queue_depth=1)
    lat = r.request_done_ps - r.request_start_ps
    expected = api.qd1_read_latency_ps(cfg, 4096)
    t, h = cfg.timing, cfg.host
    assert expected == (h.command_latency_ps + t.command_overhead_ps + t.tR_ps[0]
                        + t.channel_transfer_ps(4096) + h.transfer_ps(4096))
    assert (lat == expected).all()
    # QD1: each request starts when the previous one completes
    assert (r.request_start_ps[1:] == r.request_done_ps[:-1]).all()


def test_per_page_type_tr():
    cfg = get_preset("SimpleSSD_sample_MLC")  # tR 40/65 us: LSB/MSB alternate inside a block
    planes = cfg.organization.planes
    page = cfg.organization.page_bytes
    r = api.read(cfg, np.array([0, planes * page]), 4096, queue_depth=1)
    lat = r.request_done_ps - r.request_start_ps
    assert lat[1] - lat[0] == 25_000_000


def test_single_write_and_erase_closed_form():
    cfg = get_preset("Samsung_990PRO_2TB")
    t, h = cfg.timing, cfg.host
    w = api.write(cfg, [0], 16384, queue_depth=1)
    assert int(w.request_done_ps[0]) == (h.command_latency_ps + h.transfer_ps(16384) + t.command_overhead_ps
                                         + t.channel_transfer_ps(16384) + t.tPROG_ps[0])
    e = api.erase(cfg, [0], 1, queue_depth=1)
    assert int(e.request_done_ps[0]) == h.command_latency_ps + t.command_overhead_ps + t.tBERS_ps
    assert e.block_erases == 1 and e.bytes_read == 0


def test_unaligned_read_splits_into_pages():
    cfg = get_preset("Samsung_990PRO_2TB")
    page = cfg.organization.page_bytes
    s = api.split_requests(cfg, [page - 100], page + 200, 0)
    assert s["req_count"].tolist() == [3]
    assert s["pc_host_bytes"].tolist() == [100, page, 100]
    t = cfg.timing
    # the first and last pieces move one 4 KiB read unit over the channel, the middle a whole page
    assert s["pc_xfer"].tolist() == [t.channel_transfer_ps(4096), t.channel_transfer_ps(page),
                                     t.channel_transfer_ps(4096)]
    # consecutive pages go to consecutive channels (CWDP)
    ppc = cfg.organization.planes_per_channel
    assert (s["pc_plane"] // ppc).tolist() == [0, 1, 2]


def test_multi_plane_read_shares_one_tR():
    cfg = get_preset("MQSim_default_MLC")
    o = cfg.organization
    # two pages on the two planes of die 0 of channel 0 (CWDP: plane is the slowest digit)
    offs = np.array([0, o.channels * o.packages_per_channel * o.dies_per_package]) * o.page_bytes
    on = api.read(_with(cfg, multi_plane=True), offs, 4096, queue_depth=2)
    off = api.read(_with(cfg, multi_plane=False), offs, 4096, queue_depth=2)
    assert on.multi_plane_operations == 1 and off.multi_plane_operations == 0
    tR = cfg.timing.tR_ps[0]
    assert int(off.request_done_ps.max() - on.request_done_ps.max()) >= tR - 2 * cfg.timing.channel_transfer_ps(4096)


def test_cache_read_and_die_interleaving_help():
    cfg = get_preset("Samsung_990PRO_2TB")
    o = cfg.organization
    one_plane = np.arange(64) * o.planes * o.page_bytes  # 64 pages of plane 0
    plain = api.read(_with(cfg, cache_read=False, multi_plane=False), one_plane, o.page_bytes, 64)
    cached = api.read(_with(cfg, cache_read=True, multi_plane=False), one_plane, o.page_bytes, 64)
    # without cache read a plane alternates tR and data out: the closed form of n reads
    t = cfg.timing
    n = 64
    xfer = t.channel_transfer_ps(o.page_bytes)
    last = cfg.host.transfer_ps(o.page_bytes)
    assert int(plain.request_done_ps.max()) == cfg.host.command_latency_ps + n * (t.command_overhead_ps + t.tR_ps[0] + xfer) + last
    assert cached.sim_time_ps < plain.sim_time_ps * 0.9
    seq = 64 << 20
    inter = api.sequential_read(cfg, seq, 128 << 10, 32)
    no_inter = api.sequential_read(_with(cfg, die_interleaving=False), seq, 128 << 10, 32)
    assert no_inter.bandwidth_gbps < inter.bandwidth_gbps


def test_sequential_read_saturates_the_host_link():
    cfg = get_preset("Samsung_990PRO_2TB")
    r = api.sequential_read(cfg, 256 << 20, 128 << 10, 32)
    assert 0.97 < r.bandwidth_gbps * 1e9 / cfg.host.payload_bytes_per_s <= 1.0
    assert r.host_link_utilisation["read"] > 0.97


def test_chunk_sweep_rises_and_saturates():
    cfg = get_preset("MQSim_default_MLC")
    df = api.chunk_sweep(cfg, chunk_sizes=[4096, 16384, 65536, 262144, 1 << 20], parallel_requests=8,
                         bytes_per_point=8 << 20)
    bw = df["bandwidth_GBps"].to_numpy()
    assert (np.diff(bw) > 0).all()
    assert df["fraction_of_limit"].iloc[-1] > 0.9 and df["fraction_of_limit"].iloc[0] < 0.5


def test_energy_and_stats_tree():
    cfg = get_preset("Samsung_990PRO_2TB")
    r = api.sequential_read(cfg, 1 << 20, 128 << 10, 4)
    assert r.energy_pj["read"] == pytest.approx((1 << 20) * 8 * 130.0)
    d = r.to_dict()
    for key in ("bandwidth_GBps", "iops", "sim_time_us", "read_latency_ns", "energy_pj", "channel_utilisation"):
        assert key in d
    assert "request_done_ps" not in d


def test_deterministic():
    cfg = get_preset("Apple_M2_laptop_flash")
    a = api.random_read(cfg, 3000, 4096, 16, seed=7)
    b = api.random_read(cfg, 3000, 4096, 16, seed=7)
    assert (a.request_done_ps == b.request_done_ps).all()


def test_bad_requests():
    cfg = get_preset("MQSim_default_MLC")
    with pytest.raises(ValueError, match="beyond the capacity"):
        api.read(cfg, [cfg.capacity_bytes - 10], 4096)
    with pytest.raises(ValueError, match="size must be positive"):
        api.read(cfg, [0], 0)
    with pytest.raises(ValueError, match="queue_depth"):
        api.read(cfg, [0], 4096, queue_depth=-1)
    # the device's maximum queue depth caps the requested one
    assert api.read(cfg, [0], 4096, queue_depth=10**6).queue_depth == cfg.host.max_queue_depth


def test_flash_validation_cases_pass_or_are_known():
    from memsim.flash.validation import cases

    for case in cases():
        for r in run_case(case).checks:
            if r.check.judged:
                assert r.passed or r.known_miss, (r.id, r.simulated)


@pytest.mark.parametrize("seed", range(10))
def test_jitted_split_matches_a_plain_reference(seed):
    rng = np.random.default_rng(seed)
    cfg = get_preset("SimpleSSD_sample_MLC")
    o = cfg.organization
    cfg = dataclasses.replace(cfg, organization=dataclasses.replace(o, mapping="".join(rng.permutation(list("CWDP")))))
    o = cfg.organization
    n = 40
    off = rng.integers(0, o.capacity_bytes // 2, n)
    size = rng.integers(1, 5 * o.page_bytes, n)
    kind = rng.integers(0, 3, n)
    s = api.split_requests(cfg, off, size, kind)
    hosts, idxs = [], []
    for r in range(n):
        unit = o.page_bytes * (o.pages_per_block if kind[r] == 2 else 1)
        for i in range(off[r] // unit, (off[r] + size[r] - 1) // unit + 1):
            lo, hi = max(off[r], i * unit), min(off[r] + size[r], (i + 1) * unit)
            hosts.append(0 if kind[r] == 2 else hi - lo)
            idxs.append(i)
    plane, _ = api._plane_of(cfg, np.array(idxs))
    assert s["pc_plane"].tolist() == plane.tolist()
    assert s["pc_host_bytes"].tolist() == hosts
    assert s["req_count"].sum() == len(idxs)


def test_controller_time_caps_the_command_rate():
    cfg = get_preset("Samsung_990PRO_2TB")
    assert cfg.host.controller_time_ps == 0  # no shipped preset sets it
    capped = dataclasses.replace(cfg, host=dataclasses.replace(cfg.host, controller_time_ps=2_000_000,
                                                                controller_cores=2))
    r = api.random_read(capped, 20000, 4096, 512)
    assert r.iops <= 2 / 2e-6 * 1.0001 and r.iops > 0.95 * 1e6
    one = api.read(capped, lsb_offsets(capped, 5), 4096, queue_depth=1)
    assert (one.request_done_ps - one.request_start_ps == api.qd1_read_latency_ps(capped)).all()
