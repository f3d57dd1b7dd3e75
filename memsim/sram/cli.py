"""``memsim sram``: replay a request trace through an SRAM scratchpad config.

    memsim sram TRACE --config hw_configs/sram_16x128kib_22nm.yaml [--request-size 64B] [--json out.json]

Each trace request is one access of ``--request-size`` bytes (default: the SRAM's access width) at its
byte address; addresses must lie inside the capacity. Arrival times in ps are rounded up to SRAM
clock cycles; dramsim3 cycle stamps are taken as SRAM clock cycles.
"""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    s = subparsers.add_parser("sram", help="replay a request trace through a banked SRAM scratchpad config")
    s.add_argument("trace", help="trace file (any memsim trace format)")
    s.add_argument("--config", "-c", required=True, help="hardware YAML with an 'sram:' block")
    s.add_argument("--format", "-f", choices=["memsim", "dramsim3", "ramulator1", "ramulator2"])
    s.add_argument("--request-size", help="bytes per request, with a unit (default: the access width)")
    s.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config value, e.g. sram.organization.banks=32 (repeatable)")
    s.add_argument("--ignore-arrival", action="store_true", help="ignore the trace's timestamps")
    s.add_argument("--json", help="write the full results as JSON to this file")
    s.set_defaults(func=cmd_sram)


def cmd_sram(args) -> int:
    import numpy as np

    from memsim.cli import EXIT_OK, _parse_sets, _write_json_atomic
    from memsim.config import load_hw_config
    from memsim.errors import MemsimError, TraceError
    from memsim.traces import open_trace

    from . import api

    cfg = load_hw_config(args.config, overrides=_parse_sets(args.set)).section("sram")
    size = None
    if args.request_size:
        from memsim import units

        try:
            size = units.parse_size_bytes(args.request_size)
        except ValueError as e:
            raise MemsimError(f"--request-size: {e}") from None
        if size <= 0:
            raise MemsimError(f"--request-size: expected a positive size, got {args.request_size!r}")
    t0 = time.perf_counter()
    addrs, writes, arrs = [], [], []
    use_arrival = not args.ignore_arrival
    for ch in open_trace(args.trace, fmt=args.format):
        a = ch.addr.astype(np.int64)
        end = a + (size or cfg.width_bytes)
        bad = np.flatnonzero(end > cfg.capacity_bytes)
        if bad.size:
            i = int(bad[0])
            raise TraceError(f"access at {int(ch.addr[i]):#x} lies outside the {cfg.capacity_bytes} B capacity "
                             f"of {cfg.name}", file=str(args.trace), line=ch.first_line + i)
        addrs.append(a)
        writes.append(ch.is_write)
        if ch.arrival is None:
            use_arrival = False
        elif use_arrival:
            arrs.append(ch.arrival if ch.arrival_unit == "cycle" else -(-ch.arrival // cfg.clock_period_ps))
    arrival = np.concatenate(arrs) if use_arrival and arrs else None
    res = api.access(cfg, np.concatenate(addrs), np.concatenate(writes), size, arrival)
    wall = time.perf_counter() - t0
    print_sram_summary(res, cfg, str(args.trace), wall)
    if args.json:
        from pathlib import Path

        d = res.to_dict()
        d.update(config_file=str(args.config), trace_file=str(args.trace))
        _write_json_atomic(Path(args.json), d)
        print(f"  results     {args.json}")
    return EXIT_OK


def print_sram_summary(res, cfg, source: str, wall: float, out=None) -> None:
    out = out or sys.stdout
    w = out.write
    ns = cfg.clock_period_ps / 1e3
    w(f"memsim sram: {source}\n")
    w(f"  device      {cfg.name}: {cfg.capacity_bytes // 1024} KiB, {cfg.banks} banks x {cfg.ports} ports x "
      f"{cfg.width_bytes} B, clock {cfg.clock_hz / 1e9:.3g} GHz, access {cfg.latency_cycles} / cycle {cfg.busy_cycles} "
      f"clocks, {cfg.node_nm:g} nm{f' (scaled from {cfg.scaled_from_nm:g} nm)' if cfg.scaled_from_nm else ''}\n")
    w(f"  accesses    {res.accesses:,} ({res.reads:,} reads, {res.writes:,} writes) of {cfg.width_bytes} B\n")
    w(f"  sim time    {res.sim_time_ps / 1e3:,.3f} ns ({res.cycles:,} cycles)\n")
    w(f"  bandwidth   {res.bandwidth_gbps:.2f} GB/s ({100 * res.fraction_of_peak:.1f} % of the conflict-free "
      f"{res.peak_bandwidth_GBps:.1f} GB/s)\n")
    w(f"  conflicts   {res.conflicted_accesses:,} accesses waited for their bank, {res.conflict_stall_cycles:,} "
      f"stall cycles\n")
    lat = res.latency_cycles
    w(f"  latency     mean {lat['mean'] * ns:.2f} ns, p50 {lat['p50'] * ns:.2f}, p99 {lat['p99'] * ns:.2f}, "
      f"max {lat['max'] * ns:.2f} ns (from arrival)\n")
    u = res.per_bank_utilisation
    w(f"  banks       utilisation min {min(u):.3f} max {max(u):.3f}\n")
    e = res.energy_pj
    w(f"  energy      {e['total'] / 1e3:,.2f} nJ (read {e['read'] / 1e3:,.2f}, write {e['write'] / 1e3:,.2f}, "
      f"leakage {e['leakage'] / 1e3:,.2f} nJ); source: {cfg.source}\n")
    w(f"  wall time   {wall:.2f} s, including loading (first run: compiling) the kernel\n")
