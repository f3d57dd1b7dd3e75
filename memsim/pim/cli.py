"""``memsim pim ...``: run PIM operators from a hardware config and compare them with the host path.

Subcommands: ``gemv``, ``eltwise``, ``attention``, ``sweep``, ``presets``. Each prints a readable
summary (PIM time, energy, commands, traffic, and the same operator without PIM) and optionally writes
JSON (``--json``) or CSV (``sweep --csv``). Exit codes: 0 ok, 2 bad input (a ``MemsimError``, printed
by the main CLI). Heavy modules (the engines, numba, pandas) are imported inside the command functions.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ..errors import MemsimError


def _config(args):
    from ..cli import _parse_sets
    from ..config import load_hw_config

    hw = load_hw_config(args.config, overrides=_parse_sets(args.set))
    return hw.section("pim")


def _print_result(res, out) -> None:
    w = out.write
    w(f"  time        {res.time_ns:,.1f} ns ({res.cycles:,} memory cycles)\n")
    e = res.energy_pj
    parts = ", ".join(f"{k} {v / 1e6:,.3f}" for k, v in e.items() if k != "total" and v)
    w(f"  energy      {e['total'] / 1e6:,.3f} uJ ({parts} uJ)\n")
    w(f"  commands    {'  '.join(f'{k} {v:,}' for k, v in res.commands.items())}\n")
    if res.bytes_internal:
        w(f"  traffic     {res.bytes_internal:,} B inside the banks "
          f"({res.bytes_internal / res.time_ps * 1000:,.1f} GB/s), {res.bytes_external:,} B over the I/O\n")
    else:
        w(f"  traffic     {res.bytes_external:,} B over the I/O "
          f"({res.bytes_external / res.time_ps * 1000 if res.time_ps else 0:,.1f} GB/s)\n")
    if res.host_adds:
        w(f"  host adds   {res.host_adds:,} (finishing the reduction; not timed)\n")
    for n in res.notes:
        w(f"  note        {n}\n")


def _summary(cfg, title: str, pim, host, wall: float, out=None) -> None:
    out = out or sys.stdout
    w = out.write
    org = cfg.memory.organization
    w(f"memsim pim {title}\n")
    w(f"  device      {cfg.name}: {cfg.n_pcs} pseudo-channels x {cfg.units_per_pc} units "
      f"({cfg.device.lanes} {'/'.join(cfg.device.dtypes)} lanes at {cfg.device.clock_hz / 1e6:g} MHz, "
      f"1 per {cfg.device.banks_per_unit} bank{'s' if cfg.device.banks_per_unit > 1 else ''}), "
      f"global buffer {cfg.device.global_buffer_bytes} B per PC\n")
    w(f"  memory      {cfg.memory.name} ({cfg.memory.standard}), {org.data_rate_bps / 1e9:g} Gb/s: external "
      f"{cfg.external_bandwidth_bytes_per_s / 1e9:,.1f} GB/s, internal {cfg.internal_bandwidth_bytes_per_s / 1e9:,.1f} "
      f"GB/s ({cfg.internal_bandwidth_bytes_per_s / cfg.external_bandwidth_bytes_per_s:.2f}x)\n")
    w(f"PIM ({pim.layout} layout, {pim.reduction} reduction)\n")
    _print_result(pim, out)
    if host is not None:
        w("host, no PIM (operands streamed through the read path)\n")
        _print_result(host, out)
        w(f"speed-up      {host.time_ps / pim.time_ps:.2f}x   energy ratio (host / PIM) "
          f"{host.energy_pj['total'] / pim.energy_pj['total']:.2f}x\n")
    w(f"wall time     {wall:.2f} s (first run includes compiling the kernels)\n")


def _write_json(path: str, data) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=float) + "\n")
    tmp.replace(p)
    print(f"  results     {path}")


def _positive(name: str, v: int) -> None:
    if v <= 0:
        raise MemsimError(f"--{name} expects a positive integer, got {v}")


def cmd_gemv(args) -> int:
    from . import api

    _positive("rows", args.rows)
    _positive("cols", args.cols)
    cfg = _config(args)
    t0 = time.perf_counter()
    pim = api.gemv(cfg, args.rows, args.cols, args.dtype, layout=args.layout, reduction=args.reduction)
    host = None if args.no_host else api.host_gemv(cfg, args.rows, args.cols, args.dtype)
    _summary(cfg, f"gemv {args.rows} x {args.cols} ({pim.dtype}): {args.config}", pim, host, time.perf_counter() - t0)
    if args.json:
        _write_json(args.json, {"config_file": str(args.config), "pim": pim.to_dict(),
                                "host": host.to_dict() if host else None,
                                "speedup": host.time_ps / pim.time_ps if host else None,
                                "closed_forms": api.closed_forms(cfg, args.rows, args.cols, args.dtype)})
    return 0


def cmd_eltwise(args) -> int:
    from . import api

    _positive("n", args.n)
    cfg = _config(args)
    t0 = time.perf_counter()
    pim = api.elementwise(cfg, args.n, args.op, args.dtype, layout=args.layout)
    host = None if args.no_host else api.host_elementwise(cfg, args.n, args.op, args.dtype)
    _summary(cfg, f"eltwise {args.op} n={args.n:,} ({pim.dtype}): {args.config}", pim, host, time.perf_counter() - t0)
    if args.json:
        _write_json(args.json, {"config_file": str(args.config), "pim": pim.to_dict(),
                                "host": host.to_dict() if host else None})
    return 0


def cmd_attention(args) -> int:
    from . import api

    for k in ("seq", "head_dim", "heads"):
        _positive(k.replace("_", "-"), getattr(args, k))
    cfg = _config(args)
    t0 = time.perf_counter()
    out = {}
    host = None if args.no_host else api.host_attention(cfg, args.seq, args.head_dim, args.heads, args.dtype)
    for part in (("score", "av") if args.part == "both" else (args.part,)):
        fn = api.attention_score if part == "score" else api.attention_av
        kw = {"layout": args.layout} if args.layout else {}
        pim = fn(cfg, args.seq, args.head_dim, args.heads, args.dtype, **kw)
        _summary(cfg, f"attention {part} seq={args.seq} d={args.head_dim} heads={args.heads}: {args.config}",
                 pim, host, time.perf_counter() - t0)
        out[part] = pim.to_dict()
    if args.json:
        out["host"] = host.to_dict() if host else None
        _write_json(args.json, out)
    return 0


def cmd_sweep(args) -> int:
    from .sweep import gemv_speedup_sweep

    cfg = _config(args)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        bpus = [int(b) for b in args.banks_per_unit.split(",")] if args.banks_per_unit else None
    except ValueError:
        raise MemsimError(f"--sizes and --banks-per-unit expect comma-separated integers, got "
                          f"{args.sizes!r} / {args.banks_per_unit!r}") from None
    for b in bpus or []:
        if b <= 0 or b & (b - 1) or b > cfg.banks_per_pc:
            raise MemsimError(f"--banks-per-unit values must be powers of two up to {cfg.banks_per_pc}, got {b}")
    for s in sizes:
        _positive("sizes", s)
    df = gemv_speedup_sweep(cfg, sizes, bpus, layout=args.layout)
    with __import__("pandas").option_context("display.width", 160, "display.max_columns", 20):
        print(df[["rows", "cols", "units_per_bank", "pim_time_ns", "host_time_ns", "speedup", "bw_ratio"]]
              .to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if args.csv:
        Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(args.csv, index=False)
        print(f"  results     {args.csv}")
    return 0


def cmd_presets(args) -> int:
    from .config import list_pim_presets

    for name, source in list_pim_presets():
        print(f"{name:28s} {source}")
    return 0


def register(subparsers) -> None:
    """Add ``memsim pim ...`` to the main CLI."""
    p = subparsers.add_parser("pim", help="PIM operators (GEMV, element-wise, attention) vs the host path")
    sub = p.add_subparsers(dest="pim_command", required=True)

    def common(q, layouts):
        q.add_argument("--config", "-c", required=True, help="hardware YAML with a pim: block (e.g. hw_configs/hbm_pim.yaml)")
        q.add_argument("--dtype", choices=["fp16", "bf16", "int8"], help="element type (default: the device's)")
        if layouts:
            q.add_argument("--layout", default=layouts[0], choices=layouts, help=f"operand layout (default {layouts[0]})")
        q.add_argument("--no-host", action="store_true", help="skip the non-PIM comparison")
        q.add_argument("--set", action="append", metavar="PATH=VALUE",
                       help="override a config value, e.g. pim.device.lanes=8 (repeatable)")
        q.add_argument("--json", help="write the results as JSON to this file")

    g = sub.add_parser("gemv", help="y = W x with W resident in the PIM banks")
    g.add_argument("--rows", type=int, required=True, help="output dimension")
    g.add_argument("--cols", type=int, required=True, help="input dimension")
    common(g, ["pimgpt", "tile_per_bank", "colsplit"])
    g.add_argument("--reduction", default="auto", choices=["auto", "in_bank", "host"],
                   help="tile / row-block order (default auto: fewer commands)")
    g.set_defaults(func=cmd_gemv)

    e = sub.add_parser("eltwise", help="element-wise add / mul / relu with operands in the banks")
    e.add_argument("--op", default="add", choices=["add", "mul", "relu"])
    e.add_argument("--n", type=int, required=True, help="elements")
    common(e, ["separate_rows", "same_row"])
    e.set_defaults(func=cmd_eltwise)

    a = sub.add_parser("attention", help="attention score (K resident) and/or attention x V (V resident)")
    a.add_argument("--seq", type=int, required=True, help="tokens in the KV cache")
    a.add_argument("--head-dim", type=int, default=128)
    a.add_argument("--heads", type=int, default=1)
    a.add_argument("--part", default="both", choices=["score", "av", "both"])
    common(a, [])
    a.add_argument("--layout", choices=["pimgpt", "tile_per_bank", "colsplit"],
                   help="GEMV layout (default: pimgpt for score, colsplit for av)")
    a.set_defaults(func=cmd_attention)

    s = sub.add_parser("sweep", help="GEMV speed-up vs matrix size and units per bank (a table; --csv)")
    s.add_argument("--config", "-c", required=True)
    s.add_argument("--sizes", default="512,1024,2048,4096", help="square matrix sizes, comma-separated")
    s.add_argument("--banks-per-unit", help="banks per PIM unit to sweep, e.g. 1,2,4 (default: the config's)")
    s.add_argument("--layout", default="pimgpt", choices=["pimgpt", "tile_per_bank", "colsplit"])
    s.add_argument("--set", action="append", metavar="PATH=VALUE")
    s.add_argument("--csv", help="write the table as CSV")
    s.set_defaults(func=cmd_sweep)

    ps = sub.add_parser("presets", help="list the PIM presets and their sources")
    ps.set_defaults(func=cmd_presets)
