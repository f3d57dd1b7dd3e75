"""``memsim compare MODEL_OR_WORKLOAD [--policies P ...] [--fidelity F] [--out DIR]``: every policy on its
shipped default config (:data:`memsim.compare.DEFAULTS`), side by side as a table, CSV, Parquet and PNG."""
from __future__ import annotations

import re
import sys
from pathlib import Path


def cmd_compare(args) -> int:
    from memsim.cli import _parse_sets
    from memsim.compare import DEFAULTS, compare, format_table, write

    if args.list:
        for name, (hw, ov) in DEFAULTS.items():
            print(f"{name:22s} hw_configs/{hw}" + (f"  {ov}" if ov else ""))
        return 0
    if args.workload is None:
        from memsim.errors import MemsimError

        raise MemsimError("compare needs a model name or a scenario YAML (or --list)")
    pols = [p for item in (args.policies or []) for p in item.split(",") if p]
    ov = {f"workload.{k}": v for k, v in (("batch", args.batch), ("prompt_tokens", args.prompt),
                                          ("generated_tokens", args.generated)) if v is not None}
    ov.update(_parse_sets(args.set))
    configs = {}
    for item in args.config or []:
        if "=" not in item:
            from memsim.errors import MemsimError

            raise MemsimError(f"--config expects POLICY=HW.yaml, got {item!r}")
        k, v = item.split("=", 1)
        configs[k.strip()] = v.strip()

    from memsim.system.api import load_workload

    # a bad model name or scenario file is the user's input, not one policy's problem: say so once
    load_workload(args.workload, {k[len("workload."):]: v for k, v in ov.items()
                                  if k.startswith("workload.") and ":" not in k})

    def progress(name: str, msg: str) -> None:
        if not args.quiet:
            print(f"  {name:22s} {msg}", file=sys.stderr, flush=True)

    table = compare(args.workload, policies=pols or None, fidelity=args.fidelity, overrides=ov, configs=configs,
                    progress=progress)
    stem = Path(args.workload).stem if args.workload.endswith((".yaml", ".yml")) else args.workload
    title = f"policy comparison: {stem} ({args.fidelity})"
    print(f"memsim compare: {stem}, {args.fidelity} fidelity; each policy on its own default config" + (" (--config replaces some)" if configs else ""))
    print(format_table(table))
    out = args.out or Path("results") / "compare" / re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)
    paths = write(table, out, title=title)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0 if (table["status"] == "ok").any() else 1


def register(sub) -> None:
    c = sub.add_parser("compare", help="run every mapping policy on its default config for one model, side by side")
    c.add_argument("workload", nargs="?", help="model name (e.g. llama2-7b) or scenario YAML")
    c.add_argument("--policies", "-p", nargs="+", metavar="POLICY",
                   help="policies to compare (space or comma separated; default: all with a default config)")
    c.add_argument("--fidelity", choices=["analytical", "event", "cycle"], default="analytical")
    c.add_argument("--out", type=Path, help="output folder (default results/compare/<workload>/)")
    c.add_argument("--batch", type=int, help="override the workload's batch")
    c.add_argument("--prompt", type=int, help="override the prompt length (tokens)")
    c.add_argument("--generated", type=int, help="override the generated tokens (decode steps)")
    c.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override applied to every run: workload.<key>, policy.<param> or a hardware path; "
                        "POLICY:PATH=VALUE applies to that policy only (flash-windowing:policy.sparsity=0.9)")
    c.add_argument("--config", action="append", metavar="POLICY=HW.yaml",
                   help="run POLICY on this hardware config instead of its default (a path or a hw_configs/ name; "
                        "repeatable), e.g. hbm-baseline=attacc_baseline.yaml")
    c.add_argument("--list", action="store_true", help="print the policy -> default config table and exit")
    c.add_argument("--quiet", "-q", action="store_true", help="no per-policy progress on stderr")
    c.set_defaults(func=cmd_compare)
