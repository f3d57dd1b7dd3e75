"""Inference scenarios: which model, how many sequences, how long, in which datatypes.

A scenario file (``workloads/*.yaml``)::

    name: llama2-7b-decode          # optional, defaults to the file stem
    model: llama2-7b                # a shipped model name, or a path (model YAML / HF config.json),
                                    # relative to this file's folder
    batch: 1                        # sequences processed together
    prompt_tokens: 512              # per sequence
    generated_tokens: 128           # decode steps per sequence
    dtype: {weights: fp16, activations: fp16, kv: fp16}   # or one name for all three
    moe_seed: 0                     # optional: seed of the deterministic expert choice (MoE models)
    arrivals: [0ms, 20ms, 45ms]     # optional request-arrival trace (durations), or
    # arrivals: {file: arrivals.csv}  a CSV with an ``arrival_ps`` column (integer picoseconds)

Datatypes and their storage (bits per element): ``fp32`` 32, ``fp16`` 16, ``bf16`` 16, ``int8`` 8,
``int4`` 4. A tensor of ``n`` elements takes ``ceil(n * bits / 8)`` bytes. Simplified: quantisation
scales and zero points (int8/int4 weights or KV) are not counted, norms and biases are stored in the
weight datatype, and there is no speculative decoding, beam search or prefix sharing.

The arrival trace is carried for the system simulator (one request per entry, each with this scenario's
``batch``/``prompt_tokens``/``generated_tokens``); the operator-trace generator ignores it. All errors are
:class:`memsim.errors.ConfigError` naming the file and the YAML path.
"""
from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.workload.model import WORKLOADS_DIR, ModelSpec, load_model

__all__ = ["DTYPE_BITS", "Scenario", "load_scenario", "dtype_bytes"]

#: Bits per element of each supported datatype.
DTYPE_BITS: dict[str, int] = {"fp32": 32, "fp16": 16, "bf16": 16, "int8": 8, "int4": 4}


def dtype_bytes(elements: int, dtype: str) -> int:
    """Bytes of ``elements`` values of ``dtype`` (rounded up to a whole byte)."""
    return (elements * DTYPE_BITS[dtype] + 7) // 8


@dataclass(frozen=True)
class Scenario:
    """One inference job: ``batch`` sequences of ``prompt_tokens`` then ``generated_tokens`` decode steps."""

    model: ModelSpec
    batch: int = 1
    prompt_tokens: int = 512
    generated_tokens: int = 128
    weight_dtype: str = "fp16"
    act_dtype: str = "fp16"
    kv_dtype: str = "fp16"
    name: str = ""
    moe_seed: int = 0
    arrivals_ps: tuple[int, ...] | None = None
    source_file: str = ""

    def __post_init__(self) -> None:
        for f in ("batch", "prompt_tokens"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"{f}: expected a positive integer, got {v!r}", file=self.source_file or None)
        if not isinstance(self.generated_tokens, int) or self.generated_tokens < 0:
            raise ConfigError(f"generated_tokens: expected a non-negative integer, got {self.generated_tokens!r}",
                              file=self.source_file or None)
        for f in ("weight_dtype", "act_dtype", "kv_dtype"):
            if getattr(self, f) not in DTYPE_BITS:
                raise ConfigError(f"{f}: expected one of {', '.join(DTYPE_BITS)}, got {getattr(self, f)!r}",
                                  file=self.source_file or None)
        if not self.name:
            object.__setattr__(self, "name", f"{self.model.name}-b{self.batch}-p{self.prompt_tokens}-g{self.generated_tokens}")
        problem = _length_problem(self)
        if problem:
            raise ConfigError(problem, file=self.source_file or None)

    @property
    def total_tokens(self) -> int:
        """Context length at the end of the last decode step."""
        return self.prompt_tokens + self.generated_tokens

    @property
    def dtypes(self) -> dict[str, str]:
        return {"weights": self.weight_dtype, "activations": self.act_dtype, "kv": self.kv_dtype}

    def resolved(self) -> dict[str, Any]:
        """Everything that changes the generated trace (and the arrival trace), for hashing."""
        return {"name": self.name, "model": self.model.resolved(), "batch": self.batch,
                "prompt_tokens": self.prompt_tokens, "generated_tokens": self.generated_tokens,
                "dtype": self.dtypes, "moe_seed": self.moe_seed,
                "arrivals_ps": list(self.arrivals_ps) if self.arrivals_ps is not None else None}

    def with_(self, **changes: Any) -> "Scenario":
        """A copy with some fields changed (``name`` is re-derived unless given)."""
        if "name" not in changes and self.name == _default_name(self):
            changes["name"] = ""
        return dataclasses.replace(self, **changes)


def _default_name(s: Scenario) -> str:
    return f"{s.model.name}-b{s.batch}-p{s.prompt_tokens}-g{s.generated_tokens}"


def _length_problem(s: Scenario) -> str | None:
    m = s.model
    if m.position_embedding == "learned" and s.total_tokens > m.max_position_embeddings:
        return (f"prompt_tokens + generated_tokens = {s.total_tokens} exceeds {m.name}'s "
                f"max_position_embeddings ({m.max_position_embeddings}, learned positions)")
    return None


_KEYS = ("name", "model", "batch", "prompt_tokens", "generated_tokens", "dtype", "moe_seed", "arrivals")
_DTYPE_KEYS = {"weights": "weight_dtype", "activations": "act_dtype", "kv": "kv_dtype"}


def load_scenario(path: str | Path, *, overrides: dict[str, Any] | None = None) -> Scenario:
    """Read a scenario YAML file.

    ``overrides`` replaces keys before parsing: top-level (``{"batch": 8}``) or dotted into ``dtype``
    (``{"dtype.kv": "int8"}``; a one-name ``dtype: fp16`` is first expanded to all three).
    """
    file = str(path)
    data = yt.read_yaml_file(path)
    if isinstance(data, dict) and overrides:
        data = dict(data)
        for key, value in overrides.items():
            head, _, rest = str(key).partition(".")
            if not rest:
                data[head] = value
                continue
            if head != "dtype" or "." in rest:
                raise ConfigError(f"unknown override '{key}': scenario overrides are top-level keys "
                                  f"({', '.join(_KEYS)}) or dtype.weights / dtype.activations / dtype.kv",
                                  file="<overrides>", path=str(key))
            cur = data.get("dtype")
            sub = dict(cur) if isinstance(cur, dict) else ({k: cur for k in _DTYPE_KEYS} if isinstance(cur, str) else {})
            sub[rest] = value
            data["dtype"] = sub
    root = yt.wrap(data, file, "")
    body = yt.mapping(root, "a scenario (a mapping with model, batch, prompt_tokens, generated_tokens, dtype)")
    for key, node in body.items():
        if key not in _KEYS:
            raise yt.unknown_key(node, key, _KEYS)
    for key in ("model", "prompt_tokens", "generated_tokens"):
        if key not in body:
            raise ConfigError("required key missing", file=file, path=key)
    v: dict[str, Any] = {"source_file": file}
    v["name"] = yt.text(body["name"]) if "name" in body else Path(file).stem
    mnode = body["model"]
    mname = yt.text(mnode)
    try:
        v["model"] = _resolve_model(mname, Path(file).parent)
    except ConfigError as exc:
        if exc.file is None:  # an unknown name: report it at the scenario's key
            raise mnode.error(exc.message) from None
        raise
    v["batch"] = yt.count(body["batch"]) if "batch" in body else 1
    v["prompt_tokens"] = yt.count(body["prompt_tokens"])
    v["generated_tokens"] = yt.nonneg_int(body["generated_tokens"])
    if "moe_seed" in body:
        v["moe_seed"] = yt.nonneg_int(body["moe_seed"])
    dchoice = yt.choice(*DTYPE_BITS)
    if "dtype" in body:
        dnode = body["dtype"]
        if isinstance(dnode.value, str):
            d = dchoice(dnode)
            v.update(weight_dtype=d, act_dtype=d, kv_dtype=d)
        else:
            dmap = yt.mapping(dnode, "a datatype name (fp16) or a mapping {weights, activations, kv}")
            for key, node in dmap.items():
                if key not in _DTYPE_KEYS:
                    raise yt.unknown_key(node, key, tuple(_DTYPE_KEYS))
                v[_DTYPE_KEYS[key]] = dchoice(node)
    if "arrivals" in body:
        v["arrivals_ps"] = _arrivals(body["arrivals"], Path(file).parent)
    problem = _length_problem(_probe(v))
    if problem:
        raise ConfigError(problem, file=file, path="generated_tokens")
    return Scenario(**v)


def _probe(v: dict[str, Any]) -> Any:
    class P:
        pass

    p = P()
    p.model = v["model"]
    p.total_tokens = v["prompt_tokens"] + v["generated_tokens"]
    return p


def _resolve_model(name: str, folder: Path) -> ModelSpec:
    p = Path(name)
    if p.suffix in (".yaml", ".yml", ".json") or "/" in name:
        if not p.is_absolute():
            local = folder / p
            p = local if local.exists() or not (WORKLOADS_DIR / p).exists() else WORKLOADS_DIR / p
        return load_model(p)
    return load_model(name)


def _arrivals(node: yt.Node, folder: Path) -> tuple[int, ...]:
    if isinstance(node.value, list):
        if not node.value:
            raise node.error("expected at least one arrival time")
        times = tuple(yt.duration()(n) for n in node.value)
    else:
        body = yt.mapping(node, "a list of arrival times ([0ms, 20ms]) or {file: arrivals.csv}")
        for key, child in body.items():
            if key != "file":
                raise yt.unknown_key(child, key, ("file",))
        if "file" not in body:
            raise ConfigError("required key missing", file=node.file, path=yt.join(node.path, "file"))
        fnode = body["file"]
        p = Path(yt.text(fnode))
        p = p if p.is_absolute() else folder / p
        times = _read_arrival_csv(p, fnode)
    for i in range(1, len(times)):
        if times[i] < times[i - 1]:
            where = node.value[i] if isinstance(node.value, list) else node
            raise where.error(f"arrival times must be non-decreasing: request {i} arrives at {times[i]} ps, "
                              f"before request {i - 1} at {times[i - 1]} ps")
    return times


def _read_arrival_csv(path: Path, node: yt.Node) -> tuple[int, ...]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except OSError as exc:
        raise node.error(f"cannot read arrival file {path}: {exc.strerror or exc}") from None
    rows = [r for r in rows if r and not r[0].lstrip().startswith("#")]
    if not rows or "arrival_ps" not in [c.strip() for c in rows[0]]:
        raise ConfigError("expected a CSV header with an 'arrival_ps' column", file=str(path), path=None)
    col = [c.strip() for c in rows[0]].index("arrival_ps")
    out = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            t = int(r[col])
        except (ValueError, IndexError):
            raise ConfigError(f"row {i}: expected an integer arrival_ps, got {r[col] if col < len(r) else 'nothing'!r}",
                              file=str(path)) from None
        if t < 0:
            raise ConfigError(f"row {i}: arrival_ps must be non-negative, got {t}", file=str(path))
        out.append(t)
    if not out:
        raise ConfigError("no arrivals in the file", file=str(path))
    return tuple(out)
