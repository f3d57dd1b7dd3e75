"""Point runners: how one sweep point of each kind is resolved (validated, hashed) and run.

A runner has

* ``PARAMS``: the base settings a sweep of this kind accepts (axis keys naming them set them; any other
  axis key is a dotted override path);
* ``resolve(settings, *, folder, cache) -> Resolved``: validate the point in the driver before anything
  runs, and return ``inputs`` (everything that changes its results; hashed into its folder name by
  :func:`memsim.results.input_hash`) and ``task`` (the picklable settings a worker needs: absolute paths,
  overrides);
* ``run(task) -> PointOutput``: simulate the point (in a worker process); ``metrics`` become one row of
  the sweep table, ``files`` are stored in the point's folder.

:data:`POINT_RUNNERS` maps a sweep ``kind`` to its runner; tests and extensions may add or replace
entries (``run_sweep(..., runners={...})`` takes a mapping too).

What is modelled / simplified:

* ``dram``: a trace replayed through the DRAM engine, as ``memsim dram`` does: a reference synthetic
  trace by name (generated once per worker process, then sliced to ``requests``) or a trace file (streamed,
  stopped after ``requests``). The hash covers the fully resolved DRAM config (so editing a preset or a
  config file invalidates its points, moving files does not), the trace (reference name, or the sha256
  and format of the file), the prefix length, the queue depth and the arrival handling.
* ``system``: a :func:`memsim.system.api.run_point` call (imported lazily). Points are resolved with the
  API's own helpers (``split_overrides``, ``load_workload``, ``resolved_inputs``; or ``resolve_point``
  where it exists), so a sweep point's folder has the same hash as the equivalent ``memsim run`` and
  every point's hardware config, workload and policy are validated before anything runs. An API without
  them (a fake injected in tests) is hashed by the resolved hardware config, the workload file's bytes
  (or the model name), the policy, the fidelity and the overrides.
"""
from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memsim.errors import ConfigError, MemsimError
from memsim.results import to_jsonable

__all__ = ["POINT_RUNNERS", "PointOutput", "Resolved", "DramRunner", "SystemRunner", "DRAM_METRICS",
           "flatten_metrics"]


class PointInputError(ConfigError):
    """A base setting of a point is invalid; ``axis`` names the setting."""

    def __init__(self, axis: str, message: str):
        super().__init__(message)
        self.axis = axis


@dataclass(frozen=True)
class Resolved:
    inputs: dict[str, Any]
    task: dict[str, Any]


@dataclass
class PointOutput:
    metrics: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)


def flatten_metrics(metrics: Mapping, prefix: str = "") -> dict[str, Any]:
    """Scalars only, nested mappings joined with '.', numpy scalars as Python numbers."""
    out: dict[str, Any] = {}
    for k, v in metrics.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_metrics(v, key + "."))
            continue
        v = to_jsonable(v) if not isinstance(v, float) else v
        if v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = json.dumps(v, sort_keys=True)
    return out


def _find_file(value: Any, folder: Path, axis: str, what: str) -> Path:
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        raise PointInputError(axis, f"expected a path to {what}, got {value!r}")
    p = Path(value).expanduser()
    candidates = [p] if p.is_absolute() else [folder / p, Path.cwd() / p]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    raise PointInputError(axis, f"{what} not found: {value} (looked in {', '.join(str(c.parent) for c in candidates)})")


@functools.lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    st = path.stat()
    return _file_digest(str(path), st.st_size, st.st_mtime_ns)


def _override_text(v: Any) -> str:
    """An override value as the string a ``--set key=value`` would carry (read back as YAML)."""
    return v if isinstance(v, str) else json.dumps(to_jsonable(v), sort_keys=True)


def _yaml_value(v: Any) -> Any:
    from memsim.system.api import parse_override_value

    return parse_override_value(v)


def _load_hw(path: Path, overrides: Mapping, cache: dict | None):
    from memsim.config import load_hw_config

    key = ("hw", str(path), json.dumps(to_jsonable(overrides), sort_keys=True))
    if cache is not None and key in cache:
        return cache[key]
    hw = load_hw_config(path, overrides=dict(overrides) or None)
    if cache is not None:
        cache[key] = hw
    return hw


# ----------------------------------------------------------------------------------------------------
# dram
# ----------------------------------------------------------------------------------------------------

#: The standard columns of a dram point, in table order.
DRAM_METRICS = (
    "standard", "config_name", "channels", "peak_GBps", "n_requests", "n_reads", "n_writes", "sim_time_us",
    "bandwidth_GBps", "fraction_of_peak", "avg_read_latency_ns", "p50_read_latency_ns", "p95_read_latency_ns",
    "p99_read_latency_ns", "max_read_latency_ns", "avg_write_latency_ns", "p99_write_latency_ns",
    "row_hit_rate", "row_hits", "row_misses", "row_conflicts", "energy_total_uj", "energy_pj_per_bit",
    "energy_activate_uj", "energy_read_uj", "energy_write_uj", "energy_refresh_uj", "energy_background_uj",
    "cmd_ACT", "cmd_PRE", "cmd_RD", "cmd_WR", "cmd_REF",
)


@functools.lru_cache(maxsize=8)
def _reference_trace(name: str):
    from memsim.traces import synthetic

    return synthetic.REFERENCE_TRACES[name]()


class DramRunner:
    """Replay a trace through the DRAM engine (one ``memsim dram`` run per point)."""

    kind = "dram"
    VERSION = 1
    PARAMS = ("hw", "trace", "requests", "queue_depth", "format", "ignore_arrival")
    METRICS = DRAM_METRICS

    def resolve(self, settings: Mapping, *, folder: Path, cache: dict | None = None) -> Resolved:
        from memsim.traces import FORMATS, synthetic
        from memsim.traces.formats import detect_format

        if "hw" not in settings:
            raise PointInputError("hw", "required setting missing: the hardware config (base.hw or an axis)")
        if "trace" not in settings:
            raise PointInputError("trace", "required setting missing: a reference trace name or a trace file")
        hw_path = _find_file(settings["hw"], folder, "hw", "hardware config")
        overrides = dict(settings.get("set") or {})
        hw = _load_hw(hw_path, overrides, cache)
        if hw.memory is None:
            raise PointInputError("hw", f"{hw_path}: dram points need a 'memory' section")
        requests = settings.get("requests")
        if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
            raise PointInputError("requests", f"expected a positive number of requests (or null), got {requests!r}")
        qd = settings.get("queue_depth", 0)
        if isinstance(qd, bool) or not isinstance(qd, int) or qd < 0:
            raise PointInputError("queue_depth", f"expected 0 (unlimited) or a positive integer, got {qd!r}")
        ign = settings.get("ignore_arrival", False)
        if not isinstance(ign, bool):
            raise PointInputError("ignore_arrival", f"expected true or false, got {ign!r}")
        fmt = settings.get("format")
        trace = settings["trace"]
        if isinstance(trace, str) and trace in synthetic.REFERENCE_TRACES:
            if fmt is not None:
                raise PointInputError("format", f"a reference trace ({trace}) takes no format")
            t_inputs = {"reference": trace}
            t_task = {"reference": trace}
        else:
            if fmt is not None and fmt not in FORMATS:
                raise PointInputError("format", f"unknown trace format {fmt!r}; expected one of {', '.join(FORMATS)}")
            try:
                path = _find_file(trace, folder, "trace", "trace file")
            except PointInputError as exc:
                raise PointInputError("trace", f"{exc.message}; reference traces: "
                                               f"{', '.join(synthetic.REFERENCE_TRACES)}") from None
            try:
                fmt = fmt or detect_format(path)
            except MemsimError as exc:
                raise PointInputError("trace", str(exc)) from None
            t_inputs = {"sha256": file_digest(path), "format": fmt}
            t_task = {"path": str(path), "format": fmt}
        inputs = {"kind": self.kind, "runner_version": self.VERSION, "memory": to_jsonable(hw.memory),
                  "trace": t_inputs, "requests": requests, "queue_depth": qd, "ignore_arrival": ign}
        task = {"hw": str(hw_path), "set": overrides, "trace": t_task, "requests": requests,
                "queue_depth": qd, "ignore_arrival": ign}
        return Resolved(inputs=inputs, task=task)

    def warm(self, task: Mapping) -> None:
        """Load (or compile) the DRAM kernels in this process: a 256-request replay of the task's config."""
        from memsim.dram.engine import DramEngine, Requests
        from memsim.traces import synthetic

        hw = _load_hw(Path(task["hw"]), task.get("set") or {}, None)
        addr, is_write = synthetic.seq(256)
        DramEngine(hw.memory).run(Requests(addr, is_write))

    def run(self, task: Mapping) -> PointOutput:
        from memsim.dram.engine import DramEngine, Requests

        hw = _load_hw(Path(task["hw"]), task.get("set") or {}, None)
        cfg = hw.memory
        eng = DramEngine(cfg)
        n = task.get("requests")
        tr = task["trace"]
        if "reference" in tr:
            addr, is_write = _reference_trace(tr["reference"])
            if n is not None:
                addr, is_write = addr[:n], is_write[:n]
            reqs = Requests(addr, is_write)
            label = tr["reference"]
        else:
            reqs = self._stream(tr["path"], tr["format"], n, eng.timing.tck_ps, task.get("ignore_arrival", False))
            label = Path(tr["path"]).name
        res = eng.run(reqs, queue_depth=task.get("queue_depth", 0), source=label)
        d = res.to_dict()
        return PointOutput(metrics=dram_metrics(res, cfg),
                           files={"dram.json": json.dumps(to_jsonable(d), sort_keys=True, indent=1) + "\n"})

    @staticmethod
    def _stream(path: str, fmt: str, limit: int | None, tck_ps: int, ignore_arrival: bool):
        from memsim.dram.engine import Requests
        from memsim.traces import open_trace

        left = math.inf if limit is None else limit
        for ch in open_trace(path, fmt=fmt, chunk_size=1 << 18):
            if left <= 0:
                break
            k = int(min(left, len(ch)))
            left -= k
            arrival = None
            if ch.arrival is not None and not ignore_arrival:
                arrival = ch.arrival * tck_ps if ch.arrival_unit == "cycle" else ch.arrival
                arrival = arrival[:k]
            yield Requests(ch.addr[:k], ch.is_write[:k], arrival)


def dram_metrics(res, cfg) -> dict[str, Any]:
    """The standard columns of one DRAM replay (see :data:`DRAM_METRICS`)."""
    tck_ns = res.tck_ps / 1000.0
    rl, wl, e, c = res.read_latency_cycles, res.write_latency_cycles, res.energy_pj, res.commands
    bits = max(1, res.bytes_transferred * 8)
    m = {
        "standard": cfg.standard, "config_name": cfg.name, "channels": cfg.organization.channels,
        "peak_GBps": cfg.peak_bandwidth_bytes_per_s / 1e9,
        "n_requests": res.requests, "n_reads": res.reads, "n_writes": res.writes,
        "sim_time_us": res.sim_time_ps / 1e6, "bandwidth_GBps": res.bandwidth_gbps,
        "fraction_of_peak": res.fraction_of_peak,
        "avg_read_latency_ns": rl["mean"] * tck_ns if rl["count"] else math.nan,
        "p50_read_latency_ns": rl["p50"] * tck_ns if rl["count"] else math.nan,
        "p95_read_latency_ns": rl["p95"] * tck_ns if rl["count"] else math.nan,
        "p99_read_latency_ns": rl["p99"] * tck_ns if rl["count"] else math.nan,
        "max_read_latency_ns": rl["max"] * tck_ns if rl["count"] else math.nan,
        "avg_write_latency_ns": wl["mean"] * tck_ns if wl["count"] else math.nan,
        "p99_write_latency_ns": wl["p99"] * tck_ns if wl["count"] else math.nan,
        "row_hit_rate": res.row_hit_rate, "row_hits": res.row_hits, "row_misses": res.row_misses,
        "row_conflicts": res.row_conflicts,
        "energy_total_uj": e["total"] / 1e6, "energy_pj_per_bit": e["total"] / bits,
        "energy_activate_uj": e["activate"] / 1e6, "energy_read_uj": e["read"] / 1e6,
        "energy_write_uj": e["write"] / 1e6, "energy_refresh_uj": e["refresh"] / 1e6,
        "energy_background_uj": e["background"] / 1e6,
    }
    for cmd in ("ACT", "PRE", "RD", "WR", "REF"):
        m[f"cmd_{cmd}"] = int(c.get(cmd, 0))
    return {k: to_jsonable(v) if not isinstance(v, float) else v for k, v in m.items()}


# ----------------------------------------------------------------------------------------------------
# system
# ----------------------------------------------------------------------------------------------------

FIDELITIES = ("analytical", "event", "cycle")


class SystemRunner:
    """One system-simulator point: ``memsim.system.api.run_point(hw, workload, policy=, fidelity=, overrides=)``.

    ``api`` may be injected (any object with ``run_point``, and optionally ``resolve_point`` with the same
    signature returning the resolved inputs, and ``policies()`` listing the known policy names); by default
    ``memsim.system.api`` is imported when first needed.
    """

    kind = "system"
    VERSION = 1
    PARAMS = ("hw", "workload", "policy", "fidelity")
    METRICS = ("ttft_s", "tpot_s", "tpot_p99_s", "tokens_per_s", "e2e_tokens_per_s", "total_time_s",
               "energy_per_token_j", "prefill_energy_j", "total_energy_j", "compute_energy_j", "memory_energy_j",
               "flops", "ops")

    def __init__(self, api: Any = None):
        self._api = api

    def api(self):
        if self._api is None:
            try:
                import memsim.system.api as api
            except ModuleNotFoundError as exc:
                if exc.name and exc.name.startswith("memsim.system"):
                    raise MemsimError("system points need memsim.system.api (the system simulator), which "
                                      "is not installed in this checkout yet") from None
                raise
            return api
        return self._api

    def resolve(self, settings: Mapping, *, folder: Path, cache: dict | None = None) -> Resolved:
        from memsim.config.loader import SECTION_PARSERS

        for req in ("hw", "workload"):
            if req not in settings:
                raise PointInputError(req, f"required setting missing: base.{req} or an axis '{req}'")
        hw_path = _find_file(settings["hw"], folder, "hw", "hardware config")
        wl = settings["workload"]
        if not isinstance(wl, str) or not wl:
            raise PointInputError("workload", f"expected a workload file or a model name, got {wl!r}")
        looks_like_file = wl.endswith((".yaml", ".yml", ".json")) or "/" in wl
        wl_arg = str(_find_file(wl, folder, "workload", "workload file")) if looks_like_file else wl
        fidelity = settings.get("fidelity", "analytical")
        if fidelity not in FIDELITIES:
            raise PointInputError("fidelity", f"unknown fidelity {fidelity!r}; expected one of {', '.join(FIDELITIES)}")
        policy = settings.get("policy")
        if policy is not None and not isinstance(policy, str):
            raise PointInputError("policy", f"expected a policy name, got {policy!r}")
        overrides = dict(settings.get("set") or {})
        str_over = {k: _override_text(v) for k, v in sorted(overrides.items())}
        api = self.api()
        policies = getattr(api, "policies", None)
        if policy is not None and callable(policies):
            known = list(policies())
            if policy not in known:
                raise PointInputError("policy", f"unknown policy {policy!r}; known: {', '.join(known)}")
        task = {"hw": str(hw_path), "workload": wl_arg, "policy": policy, "fidelity": fidelity,
                "overrides": str_over}
        resolver = getattr(api, "resolve_point", None)
        if callable(resolver):
            inputs = to_jsonable(resolver(str(hw_path), wl_arg, policy=policy, fidelity=fidelity,
                                          overrides=str_over))
            return Resolved(inputs=inputs, task=task)
        if all(callable(getattr(api, n, None)) for n in ("split_overrides", "load_workload", "resolved_inputs")):
            # the system API's own resolution: the point folder is named as `memsim run` names it
            hw_ov, wl_ov, pol_ov = api.split_overrides(str_over)
            hw = _load_hw(hw_path, hw_ov, cache)
            if "system" not in hw.sections:
                raise PointInputError("hw", f"{hw_path}: a system point needs a hardware config with a 'system:' "
                                            f"block (units, tiers)")
            scenario = api.load_workload(wl_arg, wl_ov)
            name = policy or getattr(api, "DEFAULT_POLICY", "hbm-baseline")
            params = {k: _yaml_value(v) for k, v in pol_ov.items()}
            from memsim.policies import get_policy

            get_policy(name, params)
            return Resolved(inputs=to_jsonable(api.resolved_inputs(hw, scenario, name, params, fidelity)), task=task)
        # an API without a resolver (an injected fake, an older system module): hash the files
        hw_sections = ("name", "memory", *SECTION_PARSERS)
        hw_over = {k: v for k, v in overrides.items() if k.split(".", 1)[0] in hw_sections}
        try:
            hw = _load_hw(hw_path, hw_over, cache)
        except ModuleNotFoundError as exc:
            raise PointInputError("hw", f"{hw_path}: a section of this config needs a module that is not "
                                        f"installed ({exc.name})") from None
        try:
            hw_data = to_jsonable({"memory": hw.memory, "sections": dict(hw.sections)})
        except TypeError:
            hw_data = {"file_sha256": file_digest(hw_path)}
        wl_data = ({"name": Path(wl_arg).name, "sha256": file_digest(Path(wl_arg))} if looks_like_file
                   else {"model": wl_arg})
        inputs = {"kind": self.kind, "runner_version": self.VERSION, "hw": hw_data, "workload": wl_data,
                  "policy": policy, "fidelity": fidelity, "overrides": str_over}
        return Resolved(inputs=inputs, task=task)

    def warm(self, task: Mapping) -> None:
        """Import the system simulator and load the DRAM kernels (cycle fidelity replays through them)."""
        api = self.api()
        for name in ("memsim.system.simulator", "memsim.workload.trace", "memsim.policies"):
            try:
                __import__(name)
            except ImportError:
                pass
        if getattr(api, "__name__", "") == "memsim.system.api":
            from memsim.dram.engine import DramEngine, Requests
            from memsim.config import get_preset
            from memsim.traces import synthetic

            addr, is_write = synthetic.seq(256)
            DramEngine(get_preset("HBM3_6400")).run(Requests(addr, is_write))

    def run(self, task: Mapping) -> PointOutput:
        result = self.api().run_point(task["hw"], task["workload"], policy=task.get("policy"),
                                      fidelity=task.get("fidelity", "analytical"),
                                      overrides=dict(task.get("overrides") or {}) or None)
        files = {}
        get_files = getattr(result, "files", None)
        if callable(get_files):
            files = {str(k): (v.encode() if isinstance(v, str) else bytes(v)) for k, v in get_files().items()}
        return PointOutput(metrics=flatten_metrics(result.metrics()), files=files)


#: Sweep kind -> runner. Replace or add entries to extend (or pass ``runners=`` to ``run_sweep``).
POINT_RUNNERS: dict[str, Any] = {"dram": DramRunner(), "system": SystemRunner()}
