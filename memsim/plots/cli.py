"""``memsim plot KIND RESULTS [--x AXIS --y METRIC --hue AXIS] [--out fig.png|.svg]``.

Kinds: ``metric`` (a metric vs an axis), ``breakdown`` (stacked op time by kind / unit / layer / tier),
``energy`` (stacked energy components), ``roofline`` (one run's ops), ``timeline`` (Gantt of one run),
``policies`` (a comparison of policies). Figures are rendered with the Agg backend (no display needed).
"""
from __future__ import annotations

KINDS = ("metric", "breakdown", "energy", "roofline", "timeline", "policies")


def _default_out(results, kind: str, extra: str = "") -> str:
    from pathlib import Path

    p = Path(results)
    base = p if p.is_dir() else p.parent
    return str(base / "figures" / f"{kind}{'_' + extra if extra else ''}.png")


def build_figure(args):
    """The Figure for parsed ``memsim plot`` arguments (separate from saving, for tests)."""
    from pathlib import Path

    from memsim.plots import data, figures
    from memsim.plots.figures import PlotError

    res = Path(args.results)
    kind = args.kind
    where = _parse_where(args.where)
    ys = args.y or []
    if kind == "metric":
        if not args.x or len(ys) != 1:
            raise PlotError("memsim plot metric needs --x AXIS and one --y METRIC")
        t = _filter(data.load_table(res), where)
        return figures.metric_vs_axis(t, args.x, ys[0], args.hue, logy=args.logy,
                                      title=args.title or _sweep_title(t, ys[0], args.x))
    if kind == "energy":
        t = _filter(data.load_table(res), where)
        return figures.energy_breakdown(t, args.x, components=ys or None, title=args.title)
    if kind == "policies":
        t = _filter(data.load_table(res), where)
        return figures.policy_comparison(t, policy=args.x or "policy", metrics=ys or None, group=args.hue,
                                         title=args.title)
    phase = None if args.phase == "all" else args.phase
    if kind == "breakdown":
        if res.is_dir() and (res / "table.parquet").exists():
            runs = data.run_folders(res)
            if not runs:
                raise PlotError(f"{res}: no point of this sweep has op rows (ops.parquet); a breakdown needs "
                                f"system points")
            ops = {label: data.load_ops(folder) for label, folder in runs.items()}
        else:
            ops = {res.name if res.is_dir() else res.stem: data.load_ops(res)}
        return figures.latency_breakdown(ops, by=args.by, phase=phase, title=args.title)
    run = _one_run(res, args.point)
    ops = data.load_ops(run)
    if kind == "roofline":
        pf = args.peak_tflops * 1e12 if args.peak_tflops else None
        pb = args.peak_gbps * 1e9 if args.peak_gbps else None
        title = args.title
        if (pf is None or pb is None) and run.is_dir():
            peaks = data.peaks_from_resolved(data.read_resolved(run))
            if peaks is not None:
                pf = pf or peaks[0]
                pb = pb or peaks[1]
                title = title or f"roofline ({peaks[2]})"
        if phase is not None and "phase" in ops.columns and (ops["phase"] == phase).any():
            ops = ops[ops["phase"] == phase]
        return figures.roofline(ops, peak_flops=pf, peak_bw=pb, title=title)
    if kind == "timeline":
        s = int(args.start_us * 1e6) if args.start_us is not None else None
        e = int(args.end_us * 1e6) if args.end_us is not None else None
        return figures.timeline(ops, max_ops=args.max_ops, start_ps=s, end_ps=e, title=args.title)
    raise PlotError(f"unknown plot kind {kind!r}")  # argparse prevents this


def _parse_where(items) -> list[tuple[str, str]]:
    from memsim.plots.figures import PlotError

    out = []
    for it in items or []:
        if "=" not in it:
            raise PlotError(f"--where expects AXIS=VALUE, got {it!r}")
        k, v = it.split("=", 1)
        out.append((k.strip(), v.strip()))
    return out


def _filter(t, where):
    """Rows whose axis values match every --where AXIS=VALUE (compared as text)."""
    from memsim.plots.figures import PlotError, _fmt_value, resolve_column

    for key, value in where:
        col = resolve_column(t, key, "--where axis", prefer_axes=True)
        mask = t[col].map(lambda v: _fmt_value(v) == value or str(v) == value)
        if not mask.any():
            raise PlotError(f"--where {key}={value}: no row has that value; values: "
                            f"{', '.join(sorted({_fmt_value(v) for v in t[col]}))}")
        attrs = dict(t.attrs)
        t = t[mask]
        t.attrs.update(attrs)
    return t


def _sweep_title(t, y, x) -> str | None:
    from memsim.plots.figures import _split_unit

    name = t.attrs.get("memsim_sweep")
    return f"{name}: {_split_unit(y)[0]} vs {_split_unit(x)[0]}" if name else None


def _one_run(res, point):
    """A run folder (or ops file) from RESULTS: a sweep folder needs --point N (default: the first ok one)."""
    from memsim.plots import data
    from memsim.plots.figures import PlotError

    if res.is_dir() and (res / "table.parquet").exists():
        t = data.load_table(res)
        ok = t[t["status"] == "ok"]
        if point is not None:
            ok = ok[ok["point"] == point]
        for h in ok["hash"]:
            run = res / "points" / str(h)
            if (run / "ops.parquet").exists() or (run / "timeline.json").exists():
                return run
        raise PlotError(f"{res}: no successful point{'' if point is None else f' {point}'} with op rows "
                        f"(ops.parquet / timeline.json)")
    return res


def cmd_plot(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from pathlib import Path

    fig = build_figure(args)
    out = Path(args.out or _default_out(args.results, args.kind, (args.y or [""])[0] if args.kind == "metric" else ""))
    if out.suffix.lower() not in (".png", ".svg", ".pdf"):
        from memsim.plots.figures import PlotError

        raise PlotError(f"--out {out}: expected a .png, .svg or .pdf file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    fig.savefig(tmp, dpi=args.dpi, metadata={"Software": None} if out.suffix.lower() == ".png" else None)
    tmp.replace(out)
    print(f"wrote {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="draw a standard figure from sweep results or one run",
                              description=__doc__.split("\n\n", 1)[1])
    p.add_argument("kind", choices=KINDS, help="which figure")
    p.add_argument("results", help="sweep output folder, table.parquet/.csv, run folder, ops.parquet or trace .json")
    p.add_argument("--x", help="axis for the x axis (metric, energy) or the policy axis (policies); a dotted "
                               "path or its last part, e.g. channels")
    p.add_argument("--y", action="append", metavar="METRIC",
                   help="metric column (repeatable for policies and energy components)")
    p.add_argument("--hue", help="axis drawn as separate lines (metric) or groups (policies)")
    p.add_argument("--where", action="append", metavar="AXIS=VALUE",
                   help="keep only rows with this axis value (repeatable), e.g. --where trace=seq")
    p.add_argument("--by", default="kind", help="breakdown grouping: kind, unit, layer or tier (default kind)")
    p.add_argument("--phase", default="decode", choices=["decode", "prefill", "all"],
                   help="ops of this phase for breakdown and roofline (default decode)")
    p.add_argument("--point", type=int, help="sweep point index for roofline / timeline (default: the first ok)")
    p.add_argument("--peak-tflops", type=float, help="roofline compute peak (TFLOP/s; default from the run)")
    p.add_argument("--peak-gbps", type=float, help="roofline bandwidth peak (GB/s; default from the run)")
    p.add_argument("--max-ops", type=int, default=400, help="timeline: at most this many op bars")
    p.add_argument("--start-us", type=float, help="timeline window start (µs)")
    p.add_argument("--end-us", type=float, help="timeline window end (µs)")
    p.add_argument("--logy", action="store_true", help="log-scale y axis (metric)")
    p.add_argument("--title", help="figure title")
    p.add_argument("--dpi", type=int, default=150)
    p.add_argument("--out", "-o", help="output .png / .svg / .pdf (default: RESULTS/figures/KIND.png)")
    p.set_defaults(func=cmd_plot)
