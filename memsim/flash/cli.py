"""``memsim flash``: replay a request trace through a flash/SSD config, or print the chunk-size curve.

    memsim flash TRACE --config hw_configs/ssd_990pro.yaml [--qd 32] [--request-size 4KiB] [--json out.json]
    memsim flash chunks --config hw_configs/ssd_990pro.yaml [--qd 8] [--json out.json]

A trace's addresses are byte offsets into the device; each line (row) is one request of
``--request-size`` bytes. Heavy modules (numpy, the kernel) are imported inside the command.
"""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    f = subparsers.add_parser(
        "flash", help="replay a request trace through a NAND-flash SSD config (or: flash chunks)",
        description="Replay a trace of requests (byte offsets) through a flash device; "
                    "'memsim flash chunks --config X' prints the throughput against chunk size instead.")
    f.add_argument("trace", help="trace file (any memsim trace format), or the word 'chunks' for the chunk-size curve")
    f.add_argument("--config", "-c", required=True, help="hardware YAML with a 'flash:' block (e.g. hw_configs/ssd_990pro.yaml)")
    f.add_argument("--format", "-f", choices=["memsim", "dramsim3", "ramulator1", "ramulator2"],
                   help="trace format (default: from the file name or its first line)")
    f.add_argument("--qd", type=int, default=None,
                   help="outstanding requests (NVMe queue depth); default 32 for a trace, 8 for chunks; "
                        "0 = the device maximum")
    f.add_argument("--request-size", default="4KiB", help="bytes per trace request, with a unit (default 4KiB)")
    f.add_argument("--chunks", nargs="*", metavar="SIZE",
                   help="chunk sizes for 'chunks' (default 4KiB ... 4MiB, powers of two)")
    f.add_argument("--bytes-per-point", default="64MiB", help="bytes read per chunk size (default 64MiB)")
    f.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config value, e.g. flash.timing.tR=60us (repeatable)")
    f.add_argument("--ignore-arrival", action="store_true", help="ignore the trace's timestamps")
    f.add_argument("--json", help="write the full results as JSON to this file")
    f.set_defaults(func=cmd_flash)


def _size(text: str, what: str) -> int:
    from memsim import units
    from memsim.errors import MemsimError

    try:
        v = units.parse_size_bytes(text)
    except ValueError as e:
        raise MemsimError(f"{what}: {e}") from None
    if v <= 0:
        raise MemsimError(f"{what}: expected a positive size, got {text!r}")
    return v


def _load(args):
    from memsim.cli import _parse_sets
    from memsim.config import load_hw_config

    return load_hw_config(args.config, overrides=_parse_sets(args.set)).section("flash")


def cmd_flash(args) -> int:
    from memsim.errors import MemsimError

    if args.qd is not None and args.qd < 0:
        raise MemsimError(f"--qd expects 0 (device maximum) or a positive number, got {args.qd}")
    if args.trace == "chunks":
        return _cmd_chunks(args)
    return _cmd_trace(args)


def _cmd_trace(args) -> int:
    import numpy as np

    from memsim.cli import EXIT_OK, _write_json_atomic
    from memsim.errors import MemsimError, TraceError
    from memsim.traces import open_trace

    from . import api
    from .kernel import KIND_READ, KIND_WRITE

    cfg = _load(args)
    size = _size(args.request_size, "--request-size")
    qd = 32 if args.qd is None else args.qd
    t0 = time.perf_counter()
    offs, kinds, arr = [], [], []
    has_arrival = True
    for ch in open_trace(args.trace, fmt=args.format):
        a = ch.addr.astype(np.int64)
        bad = np.flatnonzero(a + size > cfg.capacity_bytes)
        if bad.size:
            i = int(bad[0])
            raise TraceError(f"request at {int(ch.addr[i]):#x} of {size} B ends beyond the capacity "
                             f"({cfg.capacity_bytes:#x} B) of {cfg.name}", file=str(args.trace), line=ch.first_line + i)
        offs.append(a)
        kinds.append(np.where(ch.is_write, KIND_WRITE, KIND_READ))
        if ch.arrival is None or args.ignore_arrival:
            has_arrival = False
        elif ch.arrival_unit != "ps":
            raise MemsimError(f"{args.trace}: arrival times in {ch.arrival_unit}s have no meaning for a flash "
                              f"device; use --ignore-arrival or a memsim trace with times in ps")
        else:
            arr.append(ch.arrival)
    arrival = np.concatenate(arr) if has_arrival and arr else None
    res = api.run(cfg, np.concatenate(offs), size, np.concatenate(kinds), qd, arrival)
    wall = time.perf_counter() - t0
    print_flash_summary(res, cfg, str(args.trace), wall)
    if args.json:
        from pathlib import Path

        d = res.to_dict()
        d.update(config_file=str(args.config), trace_file=str(args.trace), request_bytes=size)
        _write_json_atomic(Path(args.json), d)
        print(f"  results     {args.json}")
    return EXIT_OK


def _cmd_chunks(args) -> int:
    from memsim.cli import EXIT_OK, _write_json_atomic

    from . import api

    cfg = _load(args)
    sizes = [_size(s, "--chunks") for s in args.chunks] if args.chunks else list(api.DEFAULT_CHUNKS)
    per_point = _size(args.bytes_per_point, "--bytes-per-point")
    qd = 8 if args.qd is None else args.qd
    t0 = time.perf_counter()
    df = api.chunk_sweep(cfg, sorted(sizes), parallel_requests=qd, bytes_per_point=per_point)
    lim = cfg.limits()
    print(f"memsim flash chunks: {cfg.name}, {qd} parallel random chunk reads")
    print(f"  ceilings: channels {lim['channel'] / 1e9:.2f} GB/s, host link {lim['host_link'] / 1e9:.2f} GB/s, "
          f"array {lim['array_read'] / 1e9:.2f} GB/s")
    print(f"  {'chunk':>9s} {'requests':>9s} {'GB/s':>8s} {'kIOPS':>9s} {'mean us':>9s} {'p99 us':>9s} "
          f"{'of limit':>8s} {'chan':>6s} {'link':>6s}")
    from memsim.units import format_bytes

    for r in df.itertuples():
        print(f"  {format_bytes(r.chunk_bytes):>9s} {r.requests:9,d} {r.bandwidth_GBps:8.3f} {r.iops / 1e3:9.1f} "
              f"{r.mean_latency_us:9.1f} {r.p99_latency_us:9.1f} {100 * r.fraction_of_limit:7.1f}% "
              f"{r.channel_util:6.2f} {r.link_util:6.2f}")
    print(f"  wall time   {time.perf_counter() - t0:.2f} s")
    if args.json:
        from pathlib import Path

        _write_json_atomic(Path(args.json), {"config": cfg.name, "queue_depth": qd, "rows": df.to_dict("records")})
        print(f"  results     {args.json}")
    return EXIT_OK


def print_flash_summary(res, cfg, source: str, wall: float, out=None) -> None:
    """A readable block of the main figures of one flash replay."""
    out = out or sys.stdout
    o, t, h = cfg.organization, cfg.timing, cfg.host
    w = out.write
    link = f"PCIe {h.pcie_gen}.0" if h.pcie_gen else f"{h.lane_rate_bps / 1e9:g} Gb/s"
    w(f"memsim flash: {source}\n")
    w(f"  device      {cfg.name}: {o.channels} ch x {o.packages_per_channel} pkg x {o.dies_per_package} dies x "
      f"{o.planes_per_die} planes, {o.page_bytes // 1024} KiB pages, {o.cell_type}, tR "
      f"{'/'.join(f'{x / 1e6:g}' for x in t.tR_ps)} us, channel {t.channel_bytes_per_s / 1e6:g} MB/s, "
      f"{link} x{h.lanes}\n")
    w(f"  requests    {res.requests:,} ({res.reads:,} reads, {res.writes:,} writes, {res.erases:,} erases), "
      f"QD {res.queue_depth}\n")
    w(f"  page ops    {res.page_reads:,} reads, {res.page_programs:,} programs, {res.block_erases:,} erases in "
      f"{res.array_operations:,} array operations ({res.multi_plane_operations:,} multi-plane)\n")
    w(f"  sim time    {res.sim_time_ps / 1e6:,.3f} us\n")
    w(f"  throughput  {res.bandwidth_gbps:.3f} GB/s, {res.iops / 1e3:,.1f} kIOPS\n")
    for name, lat in (("read lat.", res.read_latency_ns), ("write lat.", res.write_latency_ns)):
        if lat["count"]:
            w(f"  {name:11s} mean {lat['mean'] / 1e3:.2f} us, p50 {lat['p50'] / 1e3:.2f}, p95 {lat['p95'] / 1e3:.2f}, "
              f"p99 {lat['p99'] / 1e3:.2f}, max {lat['max'] / 1e3:.2f} us\n")
    u = res.channel_utilisation
    w(f"  utilisation channels min {min(u):.3f} max {max(u):.3f}; host link read {res.host_link_utilisation['read']:.3f} "
      f"write {res.host_link_utilisation['write']:.3f}; planes {res.plane_utilisation_mean:.3f}\n")
    e = res.energy_pj
    if e["total"] > 0:
        w(f"  energy      {e['total'] / 1e6:,.2f} uJ (read {e['read'] / 1e6:,.2f}, write {e['write'] / 1e6:,.2f}, "
          f"erase {e['erase'] / 1e6:,.2f}, static {e['static'] / 1e6:,.2f} uJ)\n")
        w(f"              source: {cfg.energy.source}\n")
    w(f"  wall time   {wall:.2f} s, including loading (first run: compiling) the kernel\n")
