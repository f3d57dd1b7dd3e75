"""Command-line interface: ``memsim <command> ...``.

Commands
--------
dram      replay a memory trace through a DRAM config and print a summary (optionally JSON)
validate  run the reference catalogue and compare with established simulators
presets   list the device presets and their sources
trace     generate the reference synthetic traces in any supported format
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .errors import MemsimError
from .plugins import import_optional

EXIT_OK, EXIT_MISS, EXIT_INPUT = 0, 1, 2


def _parse_sets(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for it in items or []:
        if "=" not in it:
            raise MemsimError(f"--set expects key=value (a dotted YAML path), got {it!r}")
        k, v = it.split("=", 1)
        out[k.strip()] = v
    return out


def _fmt_ns(cycles: float, tck_ps: int) -> str:
    return f"{cycles * tck_ps / 1000:.2f} ns"


def print_dram_summary(res, cfg, source: str, wall: float, out=None) -> None:
    """A readable block of the main figures of one DRAM replay."""
    out = out or sys.stdout
    org = cfg.organization
    w = out.write
    w(f"memsim dram: {source}\n")
    w(f"  device      {cfg.name} ({cfg.standard}): {org.channels} ch x {org.pseudo_channels} pc x "
      f"{org.ranks} rank x {org.bank_groups} bg x {org.banks_per_group} banks, "
      f"{org.data_rate_bps / 1e9:g} Gb/s, peak {cfg.peak_bandwidth_bytes_per_s / 1e9:.1f} GB/s\n")
    w(f"  requests    {res.requests:,} ({res.reads:,} reads, {res.writes:,} writes) of {cfg.line_bytes} B\n")
    w(f"  sim time    {res.sim_time_ps / 1e6:,.3f} us\n")
    w(f"  bandwidth   {res.bandwidth_gbps:.2f} GB/s ({100 * res.fraction_of_peak:.1f} % of peak)\n")
    rl = res.read_latency_cycles
    if rl["count"]:
        w(f"  read lat.   mean {_fmt_ns(rl['mean'], res.tck_ps)}, p50 {_fmt_ns(rl['p50'], res.tck_ps)}, "
          f"p95 {_fmt_ns(rl['p95'], res.tck_ps)}, p99 {_fmt_ns(rl['p99'], res.tck_ps)}, "
          f"max {_fmt_ns(rl['max'], res.tck_ps)}\n")
    wl = res.write_latency_cycles
    if wl["count"]:
        w(f"  write lat.  mean {_fmt_ns(wl['mean'], res.tck_ps)}, p99 {_fmt_ns(wl['p99'], res.tck_ps)}\n")
    n = res.row_hits + res.row_misses + res.row_conflicts
    w(f"  row buffer  {res.row_hits:,} hits, {res.row_misses:,} misses, {res.row_conflicts:,} conflicts "
      f"(hit rate {res.row_hit_rate:.4f} of {n:,} transactions)\n")
    c = res.commands
    w(f"  commands    ACT {c['ACT']:,}  PRE {c['PRE']:,}  RD {c['RD']:,}  WR {c['WR']:,}  REF {c['REF']:,}\n")
    util = res.per_channel["data_bus_utilisation"]
    w(f"  data bus    utilisation per channel: min {min(util):.3f}, max {max(util):.3f}\n")
    e = res.energy_pj
    if e["total"] > 0:
        w(f"  energy      {e['total'] / 1e6:,.2f} uJ total, {e['total'] / max(1, res.bytes_transferred * 8):.2f} "
          f"pJ/bit (ACT {e['activate'] / 1e6:,.2f}, RD {e['read'] / 1e6:,.2f}, WR {e['write'] / 1e6:,.2f}, "
          f"REF {e['refresh'] / 1e6:,.2f}, bg {e['background'] / 1e6:,.2f} uJ)\n")
        w(f"              source: {cfg.energy.source}\n")
    w(f"  wall time   {wall:.2f} s, including loading (first run: compiling) the kernels\n")


def cmd_dram(args) -> int:
    from .config import load_hw_config
    from .dram.engine import DramEngine, Requests
    from .traces import open_trace

    if args.qd < 0:
        raise MemsimError(f"--qd expects 0 (unlimited) or a positive number of outstanding requests, got {args.qd}")
    if args.chunk_size < 1:
        raise MemsimError(f"--chunk-size expects a positive number of requests, got {args.chunk_size}")
    hw = load_hw_config(args.config, overrides=_parse_sets(args.set))
    if hw.memory is None:
        raise MemsimError(f"{args.config}: memsim dram needs a 'memory:' block (a DRAM device); this config has "
                          f"{', '.join(sorted(hw.sections))}")
    cfg = hw.memory
    eng = DramEngine(cfg)
    tck = eng.timing.tck_ps

    show_progress = args.progress or (sys.stderr.isatty() and not args.quiet)
    t_start = time.perf_counter()
    done = 0  # requests handed to the engine
    last = 0  # of which in the chunk handed last

    def chunks():
        # the engine asks for the next chunk as it starts replaying the last one (on a helper thread,
        # ``memsim.dram.engine.READ_AHEAD``), so the requests replayed are those before the last chunk
        nonlocal done, last
        for ch in open_trace(args.trace, fmt=args.format, chunk_size=args.chunk_size):
            replayed = done - last
            if show_progress and replayed:
                el = time.perf_counter() - t_start
                print(f"\r  replayed {replayed:,} requests in {el:.1f} s ({replayed / el / 1e6:.2f} M/s)",
                      end="", file=sys.stderr, flush=True)
            last = len(ch)
            done += last
            arrival = None
            if ch.arrival is not None and not args.ignore_arrival:
                # dramsim3 cycles are memory-clock cycles of this device
                arrival = ch.arrival * tck if ch.arrival_unit == "cycle" else ch.arrival
            yield Requests(ch.addr, ch.is_write, arrival)

    res = eng.run(chunks(), queue_depth=args.qd, source=str(args.trace))
    wall = time.perf_counter() - t_start
    if show_progress and done > args.chunk_size:
        print(file=sys.stderr)
    print_dram_summary(res, cfg, str(args.trace), wall)
    if args.json:
        d = res.to_dict()
        d["config_file"] = str(args.config)
        d["trace_file"] = str(args.trace)
        _write_json_atomic(Path(args.json), d)
        print(f"  results     {args.json}")
    return EXIT_OK


def _write_json_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    tmp.replace(path)


def cmd_validate(args) -> int:
    from .validate.catalogue import catalogue, run_case

    cases = [c for c in catalogue() if (not args.fast or c.fast) and
             all(f.lower() in c.id.lower() for f in (args.filter or []))]
    if not cases:
        print("no validation case matches", file=sys.stderr)
        return EXIT_INPUT
    rows = []
    print(f"{'check':58s} {'expected':>10s} {'simulated':>10s} {'error':>9s} {'tol':>6s}  status")
    for case in cases:
        cr = run_case(case)
        for r in cr.checks:
            if r.check.band is not None:
                expected = f"{r.check.band[0]:.4g}..{r.check.band[1]:.4g}"
                err, tol = f"{100 * r.error:+.2f}%", "band"
            elif not r.check.judged and r.check.expected == 0:  # a figure reported with no reference
                expected, err = "-", "-"
            else:
                expected = f"{r.check.expected:.4g}"
                err = f"{100 * r.error:+.2f}%" if r.check.relative else f"{r.error:+.4f}"
                if not r.check.judged:
                    tol = "-"
                elif r.check.relative:
                    tol = f"{100 * r.check.tolerance:.0f}%"
                else:
                    tol = f"{r.check.tolerance:.2f}"
            print(f"{r.id:58s} {expected:>10s} {r.simulated:10.4g} {err:>9s} {tol:>6s}  {r.status}"
                  + (f"  [{r.known_miss}]" if r.known_miss and not r.passed else ""))
            rows.append({"id": r.id, "source": case.source, "expected": r.check.expected,
                         "band": r.check.band, "simulated": r.simulated, "error": r.error,
                         "tolerance": r.check.tolerance, "relative": r.check.relative,
                         "judged": r.check.judged, "status": r.status, "known_miss": r.known_miss,
                         "wall_s": cr.wall_s})
        sys.stdout.flush()
    judged = [r for r in rows if r["judged"]]
    misses = [r for r in judged if r["status"].startswith("MISS")]
    unknown = [r for r in misses if not r["known_miss"]]
    print(f"\n{len(judged) - len(misses)} of {len(judged)} judged checks pass; {len(misses)} miss "
          f"({len(misses) - len(unknown)} known, {len(unknown)} unexpected).")
    for r in misses:
        print(f"  MISS {r['id']}: expected {r['expected']:.4g}, got {r['simulated']:.4g}"
              + (f" -- {r['known_miss']}" if r["known_miss"] else ""))
    if args.json:
        _write_json_atomic(Path(args.json), rows)
    if unknown or (misses and not args.allow_known):
        return EXIT_MISS
    return EXIT_OK


def _describe_library(lib) -> list[tuple[str, str]]:
    out = []
    for name in lib.names():
        src = lib.layers(name).scalars.get("source")
        out.append((name, str(src.value) if src is not None else ""))
    return out


def _preset_groups():
    """(kind, [(name, label, source)]) for every preset library, imported lazily."""
    from .config import list_presets

    yield "dram", [(n, std, src) for n, std, src in list_presets()]
    loaders = {
        "pim": ("memsim.pim.config", "list_pim_presets"),
        "flash": ("memsim.flash.config", "list_presets"),
        "sram": ("memsim.sram.config", "list_presets"),
    }
    for kind, (module, fn) in loaders.items():
        mod = import_optional(module)
        if mod is None:
            continue
        yield kind, [(n, kind, src) for n, src in getattr(mod, fn)()]
    from .system.config import compute_library, link_library

    yield "compute", [(n, "compute", s) for n, s in _describe_library(compute_library())]
    yield "link", [(n, "link", s) for n, s in _describe_library(link_library())]


PRESET_KINDS = ("dram", "pim", "flash", "sram", "compute", "link")


def cmd_presets(args) -> int:
    bad = [k for k in args.kind if k not in PRESET_KINDS]
    if bad:
        raise MemsimError(f"unknown preset kind {bad[0]!r}; expected some of: {', '.join(PRESET_KINDS)}")
    for kind, rows in _preset_groups():
        if args.kind and kind not in args.kind:
            continue
        print(f"# {kind} presets")
        for name, label, source in rows:
            print(f"{name:50s} {label:8s} {source}")
        print()
    return EXIT_OK


def cmd_trace(args) -> int:
    from .traces import synthetic, write_trace

    gen = synthetic.REFERENCE_TRACES.get(args.name)
    if gen is None:
        raise MemsimError(f"unknown trace {args.name!r}; known: {', '.join(synthetic.REFERENCE_TRACES)}")
    addr, is_write = gen()
    path = write_trace(args.out, addr, is_write, fmt=args.format)
    print(f"wrote {len(addr):,} requests to {path}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="memsim", description="Memory-system simulator for LLM inference.")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("dram", help="replay a memory trace through a DRAM/HBM config")
    d.add_argument("trace", help="trace file (.parquet, *.dramsim3.trace, *.ramulator1.trace, *.ramulator2.trace)")
    d.add_argument("--config", "-c", required=True, help="hardware YAML (e.g. hw_configs/hbm3.yaml)")
    d.add_argument("--format", "-f", choices=["memsim", "dramsim3", "ramulator1", "ramulator2"],
                   help="trace format (default: from the file name or its first line)")
    d.add_argument("--qd", type=int, default=0, help="max outstanding requests (1 = unloaded latency; default unlimited)")
    d.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override a config value, e.g. memory.controller.read_queue=64 (repeatable)")
    d.add_argument("--json", help="write the full results as JSON to this file")
    d.add_argument("--chunk-size", type=int, default=1 << 20, help="requests per streamed chunk")
    d.add_argument("--ignore-arrival", action="store_true", help="replay as fast as possible, ignoring timestamps")
    d.add_argument("--progress", action="store_true", help="report progress per chunk on stderr (default on a terminal)")
    d.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    d.set_defaults(func=cmd_dram)

    v = sub.add_parser("validate", help="compare memsim with reference simulators and published figures")
    v.add_argument("filter", nargs="*", help="only cases whose id contains all of these words")
    v.add_argument("--fast", action="store_true", help="only the cheap cases (QD1 and DDR4)")
    v.add_argument("--allow-known", action="store_true", help="exit 0 when every miss is a documented known miss")
    v.add_argument("--json", help="write every check as JSON to this file")
    v.set_defaults(func=cmd_validate)

    ps = sub.add_parser("presets", help="list device presets and their sources")
    ps.add_argument("kind", nargs="*", help="only these kinds: dram, pim, flash, sram, compute, link (default: all)")
    ps.set_defaults(func=cmd_presets)

    t = sub.add_parser("trace", help="write a reference synthetic trace")
    t.add_argument("name", help="seq, rand, mix2:1, gemv or rand-unloaded(QD1,20k)")
    t.add_argument("out", help="output file")
    t.add_argument("--format", "-f", choices=["memsim", "dramsim3", "ramulator1", "ramulator2"])
    t.set_defaults(func=cmd_trace)

    for module in COMMAND_MODULES:
        mod = import_optional(module)
        if mod is not None:  # None: that part of memsim is not installed
            mod.register(sub)
    return p


#: Modules adding subcommands: each has ``register(subparsers)``, which adds its parsers and sets
#: ``func`` (taking the parsed args, returning an exit code). They must import heavy modules (the
#: engines, numba) inside their command functions, so that ``memsim --help`` stays fast.
COMMAND_MODULES: tuple[str, ...] = (
    "memsim.workload.cli",
    "memsim.pim.cli",
    "memsim.flash.cli",
    "memsim.sram.cli",
    "memsim.system.cli",
    "memsim.sweep.cli",
    "memsim.plots.cli",
    "memsim.compare.cli",
)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MemsimError as e:
        print(f"memsim: error: {e}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("memsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
