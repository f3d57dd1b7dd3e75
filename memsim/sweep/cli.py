"""``memsim sweep SWEEP.yaml [--jobs N] [--scheduler tcp://host:8786 | --local-cluster] [--out DIR]``."""
from __future__ import annotations

EXIT_OK, EXIT_FAILED_POINTS = 0, 1


def cmd_sweep(args) -> int:
    from memsim.errors import MemsimError
    from memsim.sweep.execute import run_sweep

    if args.jobs is not None and args.jobs < 1:
        raise MemsimError(f"--jobs expects a positive number of workers, got {args.jobs}")
    progress = True if args.progress else (False if args.quiet else None)
    report = run_sweep(args.sweep, args.out, jobs=args.jobs, scheduler=args.scheduler,
                       local_cluster=args.local_cluster, progress=progress,
                       retry_failed=not args.keep_failed,
                       log=(lambda m: None) if args.quiet else None)
    return EXIT_OK if report.ok else EXIT_FAILED_POINTS


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "sweep", help="run a design-space sweep (axes of config overrides) and gather one results table",
        description="Run every point of SWEEP.yaml (each validated first), skipping points already done, "
                    "and gather table.parquet / table.csv in the output folder. Exit 1 if a point failed.")
    s.add_argument("sweep", help="sweep file (YAML: kind, base, axes / zip / points)")
    s.add_argument("--out", "-o", help="output folder (default: results/<sweep name>)")
    s.add_argument("--jobs", "-j", type=int, help="worker processes (default: every core; 1 = serial)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--scheduler", metavar="ADDRESS", help="run on a Dask scheduler, e.g. tcp://host:8786")
    g.add_argument("--local-cluster", action="store_true", help="run on a Dask LocalCluster of --jobs workers")
    s.add_argument("--keep-failed", action="store_true",
                   help="do not re-run points whose recorded result is a failure")
    s.add_argument("--progress", action="store_true", help="progress bar with ETA (default on a terminal)")
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary lines")
    s.set_defaults(func=cmd_sweep)
