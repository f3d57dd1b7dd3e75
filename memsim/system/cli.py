"""``memsim run HW.yaml WORKLOAD.yaml [--policy NAME] [--fidelity F] [--set key=value ...]`` and
``memsim policies``."""
from __future__ import annotations

import sys
import time
from pathlib import Path


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 1:
        return f"{x:.3f} s"
    if x >= 1e-3:
        return f"{x * 1e3:.3f} ms"
    return f"{x * 1e6:.2f} us"


def print_summary(res, wall: float, out=None) -> None:
    out = out or sys.stdout
    w = out.write
    m = res.metrics()
    sysc = res.hw.section("system")
    sc = res.scenario
    w(f"memsim run: {sc.model.name} on {res.hw.name} ({res.policy.name}, {res.fidelity} fidelity)\n")
    w(f"  workload    batch {sc.batch}, prompt {sc.prompt_tokens} tokens, {sc.generated_tokens} generated, "
      f"weights {sc.weight_dtype} / activations {sc.act_dtype} / KV {sc.kv_dtype}\n")
    for name, u in sysc.units.items():
        w(f"  unit        {name}: {u.preset} ({u.kind}), reads tier '{u.memory}'\n")
    from memsim.system.tiers import tier_model

    for name, t in sysc.tiers.items():
        dev = t.dram.name if t.dram is not None else getattr(t.other, "name", t.device)
        model = tier_model(t)
        cap = model.capacity_bytes * t.count / 2**30
        bw = model.peak_bandwidth * t.count / 1e9
        w(f"  tier        {name}: {t.count} x {dev}, {cap:.0f} GiB, peak {bw:,.0f} GB/s; holds "
          f"{res.occupancy.get(name, 0) / 2**30:.2f} GiB\n")
    for note in res.plan.notes:
        w(f"  policy      {note}\n")
    w(f"  TTFT        {_fmt_s(m['ttft_s'])}\n")
    w(f"  TPOT        {_fmt_s(m['tpot_s'])} mean, {_fmt_s(m['tpot_p99_s'])} p99\n")
    tps = m["tokens_per_s"]
    w(f"  throughput  {tps:,.1f} tokens/s (decode), {m['e2e_tokens_per_s']:,.1f} tokens/s end to end\n"
      if tps else "  throughput  - (no decode steps)\n")
    if m["energy_per_token_j"] is not None:
        w(f"  energy      {m['energy_per_token_j'] * 1e3:.3f} mJ/token (decode), prefill {m['prefill_energy_j']:.3f} J, "
          f"total {m['total_energy_j']:.3f} J (compute {m['compute_energy_j']:.3f}, memory {m['memory_energy_j']:.3f})\n")
    for k, v in m.items():
        if k.startswith("bytes_per_decode_step_"):
            w(f"  traffic     {k[len('bytes_per_decode_step_'):]}: {v / 1e9:.3f} GB per decode step\n")
    bd = res.breakdown("kind")
    if len(bd):
        top = bd.sort_values("time_share", ascending=False).head(5)
        parts = ", ".join(f"{r.kind} {100 * r.time_share:.1f} %" for r in top.itertuples())
        w(f"  decode time {parts}\n")
    ws = res.wall_s
    w(f"  wall time   {wall:.2f} s (trace {ws.get('trace_generation', 0):.2f} s, service model "
      f"{ws.get('service_model', 0):.2f} s incl. loading (first run: compiling) the kernels, schedule "
      f"{ws.get('orchestration', 0):.2f} s)\n")


def cmd_run(args) -> int:
    from memsim.cli import _parse_sets
    from memsim.system.api import run_point, write_results

    show = args.progress or (sys.stderr.isatty() and not args.quiet)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        print(f"\r  scheduled {done:,} / {total:,} ops ({100 * done / total:.0f} %)", end="", file=sys.stderr,
              flush=True)

    res = run_point(args.hw, args.workload, policy=args.policy, fidelity=args.fidelity,
                    overrides=_parse_sets(args.set), progress=progress if show else None)
    if show:
        print(file=sys.stderr)
    wall = time.perf_counter() - t0
    print_summary(res, wall)
    if not args.no_save:
        folder = write_results(res, args.results)
        print(f"  results     {folder}/ (stats.json, ops.parquet, timeline.json: open in ui.perfetto.dev)")
    return 0


def cmd_policies(args) -> int:
    from memsim.policies import known_policies
    from memsim.policies.base import _REGISTRY

    for name in known_policies():
        doc = (sys.modules[_REGISTRY[name].__module__].__doc__ or "").strip().splitlines()
        print(f"{name:22s} {doc[0] if doc else ''}")
    return 0


def register(sub) -> None:
    r = sub.add_parser("run", help="simulate a transformer workload on a system (TTFT, TPOT, energy)")
    r.add_argument("hw", help="hardware YAML with a system: block (e.g. hw_configs/h100_sxm.yaml)")
    r.add_argument("workload", help="scenario YAML (e.g. workloads/llama2_7b_decode.yaml) or a model name")
    r.add_argument("--policy", "-p", help="mapping policy (default hbm-baseline; see `memsim policies`)")
    r.add_argument("--fidelity", choices=["analytical", "event", "cycle"], default="analytical",
                   help="op service times: roofline, measured device bandwidth, or device kernel per op")
    r.add_argument("--set", action="append", metavar="PATH=VALUE",
                   help="override: a hardware path (memory.organization.channels=8), workload.<key> "
                        "(workload.batch=8) or policy.<param> (repeatable)")
    r.add_argument("--results", default="results", type=Path, help="folder for run folders (default results/)")
    r.add_argument("--no-save", action="store_true", help="print the summary only")
    r.add_argument("--progress", action="store_true", help="progress on stderr (default on a terminal)")
    r.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("policies", help="list the mapping policies")
    p.set_defaults(func=cmd_policies)
