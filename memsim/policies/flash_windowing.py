"""``flash-windowing``: "LLM in a flash" (Alizadeh et al., arXiv 2312.11514, ACL'24) on memsim.

What is modelled
----------------
* Placement (the paper's split): attention weights, norms, embeddings / LM head and the sparsity
  predictor are resident in DRAM (``policy.dram``, default: the unit's memory); the FFN weights live on
  flash (``policy.flash``, default: the first ``device: flash`` tier). A DRAM cache holds the FFN neurons
  (one neuron = its up-projection row and down-projection column, plus the gate row of gated FFNs) used
  by the last ``window`` tokens, the current one included.
* Activation sparsity as a parameter: a fraction ``a = 1 - sparsity`` of each layer's FFN neurons is
  active per token (predicted correctly; predictor misses are not modelled). The FFN ops read and compute
  only the active neurons: their weight bytes and FLOPs are scaled by ``a`` (``op_overrides``) and read
  from the DRAM cache. The low-rank predictor (rank ``predictor_rank``: ``r x (d_model + d_ffn)`` weights
  per layer) is read from DRAM and computed on the first FFN op of each layer.
* New neurons per token, the stated rule: activations of different tokens are taken as independent, each
  neuron active with probability ``a``. Then the window cache (the last ``k`` tokens, current included)
  holds a fraction ``1 - (1-a)^k`` of the neurons, and the neurons a token needs that none of the
  ``k - 1`` previous tokens used, i.e. what is loaded from flash per token and layer, are
  ``new = a (1-a)^(k-1)`` (``window: 1`` is no windowing). ``new_fraction`` replaces the rule by a given
  incremental fraction (e.g. a measured one). Steady state: the window is full from the first decode
  step (the prompt's last tokens filled it). Whole neurons: ``round(new x d_ffn)`` per layer and token.
* Row-column bundling (``bundling: true``): a neuron's rows are stored contiguously, so each neuron is one
  read of ``chunk = n_matrices x d_model x bytes`` (``2 x d_model x 2 B = 16 KiB`` for OPT-6.7B in FP16);
  without bundling each matrix row is a separate read of ``d_model x bytes``. ``chunk`` overrides the read
  size (the same bytes in reads of that size).
* Chunked random reads: per token and layer, the new neurons are read from flash as random
  ``chunk``-sized reads with ``queue_depth`` in flight; their throughput comes from the flash model
  (:func:`memsim.flash.api.random_read` on the tier's flash config, memoised per chunk size and queue
  depth). The load is a :class:`~memsim.policies.base.Transfer` over the flash-DRAM link (or two chained
  ones through a host tier) that waits for the predictor's input (the op feeding the first FFN op), gates
  the first FFN op and lasts the chunked reads' time (its ``service_ps``; see "simplified").
* Prefill: all neurons active for any of the ``P`` prompt tokens are loaded (``1 - (1-a)^P`` of each
  layer's FFN, same chunked reads) and the FFN ops read that fraction.
* Capacity: resident weights + predictor + neuron cache (``1 - (1-a)^k`` of the FFN; the prefill's
  neurons stream through the same space, one layer at a time) + KV cache + peak activations must fit in
  ``dram_budget`` (default: 52.1 % of the model's weight bytes, the DRAM share of the paper's OPT-6.7B
  setting, "about half the model"), otherwise the plan is rejected naming ``policy.dram_budget``; the
  cache (or the prefill staging, the larger) and the predictor are added to the DRAM tier
  (``capacity_extra``) so the system's capacity check covers them too.

What is simplified
------------------
* Each load is a transfer whose ``service_ps`` is the chunked random reads' time (bytes / the flash
  model's throughput for ``chunk``-sized reads at ``queue_depth``); the orchestrator keeps the longer of
  that and its sequential rule ``latency + bytes / min(link, tier peaks)``. (Before transfers had a time of
  their own, the difference was folded into the gated FFN op's ``overhead_ps``; the op now starts when
  the reads end instead of idling inside itself for them, with the same decode times to the picosecond's
  rounding, while the per-op table shows the FFN op's own time and the transfer its real duration.)
  ``flash_chunked_excess_s_per_token`` is the part of the load time that the random reads add over a
  sequential transfer of the same bytes.
* Where the flash has no link to the unit's memory but reaches it through one host tier (``policy.host``,
  default: the one tier linked to both; ``hw_configs/gpu_flash.yaml``: SSD -> host DRAM -> GPU), each load
  is two chained transfers (``after_transfer``): the flash read into a host bounce buffer (the chunked
  ``service_ps`` on this hop), then a plain copy to the unit's memory that starts when the read has ended
  (read, then copy; not pipelined within a load). The host tier holds a bounce buffer as large as the
  biggest load (``capacity_extra``). On ``gpu_flash.yaml`` this adds ~7 ms per windowed OPT-6.7B token
  and ~0.42 s per naive one, so the GPU speed-up rises from 15.8x (one hop, reads straight into GPU
  memory) to 18.2x: the naive loads copy 13.3 GB per token over PCIe 4.0 x16, the windowed ones 228 MB.
* Transfer traffic and streaming energy are counted on both end tiers (the orchestrator's rule), so the
  flash tier's read energy and bytes (``bytes_ssd``) appear in the results.
* The cache's memory management (the paper's 65 ms per token on an M1 Max: copying rows into the
  preallocated matrix) is not modelled beyond the DRAM traffic of the FFN reads; predictor compute and
  misses are idealised; the independence rule ignores that some neurons fire far more often than others
  (which makes real windows reuse more, and so load less).

Figures ("LLM in a flash" via shared/hw_params.md section 4, copied here; tags as there):
OPT-6.7B, window k=5 "loads 2.4 % of FFN neurons per token"; DRAM holds 52.1 % of the model (FFN 15.5 %,
attention 32.3 %, embeddings 3 %, predictor 1.25 %) [S]; chunk "2 d_model x 4 bytes = 32 KiB" for a 32-bit
model [S]; Falcon-7B (relufied): predictor rank 256 for the first 28 layers and 1152 for the last 4, window
of 4 tokens "utilizes 33 % of the FFN" [S]; M1 Max: 125 ms per token loading from flash, 65 ms memory
management [S]. OPT-6.7B's FFN sparsity of 97 % is recalled from the paper's section 3 [U].

Default sparsity per model (:data:`MODEL_DEFAULTS`): OPT-6.7B 0.97 [U] (under the rule: new = 2.66 % at k=5,
against the paper's measured 2.4 %, the validation check); Falcon-7B 0.9047 [D]: the rule's window
fraction ``1 - (1-a)^4 = 0.33`` solved for ``a = 0.0953``. Predictor rank: OPT-6.7B 128 [D] (1.25 % of 6.66 B
parameters over 32 layers of 4096 + 16384 columns is 127); Falcon-7B 256 [S] (the last 4 layers' 1152 is
not modelled; it would add 1.2 % of the model). Other models need ``sparsity`` and ``predictor_rank``.

Units: bytes, ps and seconds as named; bandwidths in B/s (GB/s where named).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.shipped import shipped_path
from memsim.policies.base import Plan, Transfer, register
from memsim.policies.flash_naive import (check_budget, check_flash_system, flash_route, flatten, hops,
                                         peak_activation_bytes, pick_tier, pick_unit, tensor_bytes,
                                         transfer_ps, weight_groups)

#: model name -> (sparsity, predictor rank) defaults, with their sources in the module docstring
MODEL_DEFAULTS: dict[str, tuple[float, int]] = {
    "opt-6.7b": (0.97, 128),
    "falcon-7b": ((1.0 - 0.33) ** 0.25, 256),
}
#: default DRAM budget as a share of the model's weight bytes: "DRAM holds 52.1 % of the model" (OPT-6.7B) [S]
DEFAULT_BUDGET_SHARE = 0.521
#: requests replayed to measure a chunk size's throughput (at least; more for large queue depths)
MIN_REQUESTS = 512


def _sparsity(node: yt.Node) -> float:
    v = yt.fraction01(node)
    if v >= 1.0:
        raise node.error("expected a sparsity below 1 (some neurons must be active)")
    return v


def new_fraction_rule(active: float, window: int) -> float:
    """Fraction of a layer's FFN neurons loaded per token: active now and in none of the ``window - 1``
    previous tokens (the window counts the current token)."""
    return active * (1.0 - active) ** (window - 1)


def window_fraction(active: float, tokens: int) -> float:
    """Fraction of neurons active in at least one of ``tokens`` independent tokens."""
    return 1.0 - (1.0 - active) ** tokens


@lru_cache(maxsize=None)
def chunk_throughput(flash_cfg, chunk_bytes: int, queue_depth: int) -> float:
    """Random ``chunk_bytes`` reads at ``queue_depth`` through the flash model: payload B/s (memoised)."""
    from memsim.flash import api

    n = max(MIN_REQUESTS, 16 * queue_depth)
    res = api.random_read(flash_cfg, n, int(chunk_bytes), int(queue_depth), seed=0)
    return res.bandwidth_gbps * 1e9


def ffn_layout(trace) -> dict[int, dict]:
    """Per block: FFN tensor ids, matrices per neuron, d_model, d_ffn, bytes per neuron-row."""
    spec = trace.meta["model_spec"]
    d_model, d_ffn = int(spec["hidden_size"]), int(spec["intermediate_size"])
    groups = weight_groups(trace)
    tb = tensor_bytes(trace)
    t = trace.tensors
    out: dict[int, dict] = {}
    for tid, layer in zip(t["tensor"].tolist(), t["layer"].tolist()):
        if groups.get(tid) != "ffn":
            continue
        e = out.setdefault(int(layer), {"tensors": [], "bytes": 0})
        e["tensors"].append(tid)
        e["bytes"] += tb[tid]
    for e in out.values():
        e["matrices"] = len(e["tensors"])
        e["d_model"], e["d_ffn"] = d_model, d_ffn
        e["neuron_bytes"] = e["bytes"] / d_ffn  # all matrices' rows of one neuron (biases folded in)
    return out


@register("flash-windowing")
class FlashWindowing:
    PARAMS = {"unit": yt.text, "flash": yt.text, "dram": yt.text, "host": yt.text, "window": yt.count,
              "sparsity": _sparsity, "new_fraction": yt.fraction01, "bundling": yt.boolean,
              "chunk": yt.size(positive=True), "queue_depth": yt.count, "predictor_rank": yt.nonneg_int,
              "dram_budget": yt.size(positive=True)}

    def __init__(self, unit: str | None = None, flash: str | None = None, dram: str | None = None,
                 host: str | None = None, window: int = 5, sparsity: float | None = None, new_fraction: float | None = None,
                 bundling: bool = True, chunk: int | None = None, queue_depth: int = 8,
                 predictor_rank: int | None = None, dram_budget: int | None = None):
        self.unit, self.flash, self.dram, self.host = unit, flash, dram, host
        self.window = window
        self.sparsity = sparsity
        self.new_fraction = new_fraction
        self.bundling = bundling
        self.chunk = chunk
        self.queue_depth = queue_depth
        self.predictor_rank = predictor_rank
        self.dram_budget = dram_budget

    def check(self, system: Any, scenario: Any) -> None:
        """The unit, its DRAM tier, a flash tier, a route between them, and the model's sparsity and
        predictor rank (given or defaulted), before any trace is made."""
        check_flash_system(system, self.unit, self.flash, self.dram, self.host, self.name)
        if scenario is not None:
            self._model_params(scenario.model.name)

    def _model_params(self, model: str) -> tuple[float, int]:
        d = MODEL_DEFAULTS.get(model)
        sp = self.sparsity if self.sparsity is not None else (d[0] if d else None)
        rank = self.predictor_rank if self.predictor_rank is not None else (d[1] if d else None)
        if sp is None:
            raise ConfigError(f"{self.name}: no default FFN sparsity for model '{model}' (defaults: "
                              f"{', '.join(MODEL_DEFAULTS)}); give one, e.g. --set policy.sparsity=0.9",
                              path="policy.sparsity")
        if rank is None:
            raise ConfigError(f"{self.name}: no default predictor rank for model '{model}'; give one, "
                              f"e.g. --set policy.predictor_rank=128", path="policy.predictor_rank")
        return sp, rank

    def plan(self, trace: Any, system: Any) -> Plan:
        unit = pick_unit(system, self.unit, self.name)
        dram = pick_tier(system, self.dram, None, unit.memory, "dram", self.name)
        flash = pick_tier(system, self.flash, "flash", None, "flash", self.name)
        check_flash_system(system, self.unit, self.flash, self.dram, self.host, self.name)
        route = flash_route(system, flash, dram, self.host, self.name)
        link = system.link_between(route[0], route[1])  # the hop that reads the flash
        sparsity, rank = self._model_params(trace.meta["model"])
        a = 1.0 - sparsity
        k = self.window
        new = self.new_fraction if self.new_fraction is not None else new_fraction_rule(a, k)
        ops = trace.ops
        n = len(ops)
        groups = weight_groups(trace)
        tb = tensor_bytes(trace)
        lay = ffn_layout(trace)
        if not lay:
            raise ConfigError(f"{self.name}: the model has no FFN weights to load from flash", path="policy")
        if any(e["matrices"] > 3 for e in lay.values()):
            raise ConfigError(f"{self.name}: mixture-of-experts FFNs are not modelled (one dense FFN per layer)",
                              path="policy")
        wbytes_el = trace.meta["dtypes"]["weights"]
        from memsim.workload.scenario import dtype_bytes

        e0 = next(iter(lay.values()))
        row_bytes = dtype_bytes(e0["d_model"], wbytes_el)
        chunk = self.chunk or (e0["matrices"] * row_bytes if self.bundling else row_bytes)
        flash_cfg = system.tiers[flash].other
        bw_chunk = chunk_throughput(flash_cfg, int(chunk), self.queue_depth)

        ffn_tensors = {tid for tid, g in groups.items() if g == "ffn"}
        tensor_tier = {tid: (flash if tid in ffn_tensors else dram) for tid in groups}
        layer = ops["layer"].to_numpy()
        step = ops["step"].to_numpy()
        m_rows = ops["m"].to_numpy(dtype=np.float64)
        wid = ops["weight"].to_numpy(dtype=object)
        is_ffn = np.array([bool(w) and w in ffn_tensors for w in wid.tolist()], dtype=bool)
        prompt = int(trace.meta["scenario"]["prompt_tokens"])
        frac_prefill = window_fraction(a, prompt)

        wb = ops["weight_bytes"].to_numpy(dtype=np.float64).copy()
        act = ops["act_read_bytes"].to_numpy(dtype=np.float64).copy()
        flops = ops["flops"].to_numpy(dtype=np.float64).copy()
        active_frac = np.where(step == 0, frac_prefill, a)
        act[is_ffn] += wb[is_ffn] * active_frac[is_ffn]  # active rows, read from the DRAM cache
        flops[is_ffn] *= active_frac[is_ffn]
        wb[is_ffn] = 0.0

        d_model, d_ffn = e0["d_model"], e0["d_ffn"]
        pred_params = rank * (d_model + d_ffn)
        pred_bytes_layer = dtype_bytes(pred_params, wbytes_el)
        groups_tr: list[list[Transfer]] = []
        deps = ops["deps"].tolist()
        per_step: dict[int, float] = {}
        t_chunked_total = 0.0
        extra_total = 0.0
        idx = np.flatnonzero(is_ffn)
        key = step[idx] * (1 << 20) + layer[idx]
        _, first_pos = np.unique(key, return_index=True)
        first_ffn = np.sort(idx[first_pos])  # the first FFN op of each (step, layer)
        staging_prefill = 0.0
        for i in first_ffn.tolist():
            li, s = int(layer[i]), int(step[i])
            e = lay[li]
            frac = frac_prefill if s == 0 else new
            n_neurons = int(round(frac * e["d_ffn"]))
            nbytes = n_neurons * e["neuron_bytes"]
            # predictor: low-rank weights read from DRAM, 2 FLOPs per weight per token
            act[i] += pred_bytes_layer
            flops[i] += 2.0 * pred_params * m_rows[i]
            if s == 0:
                staging_prefill = max(staging_prefill, nbytes)
            if n_neurons == 0:
                continue
            src = max(deps[i]) if deps[i] is not None and len(deps[i]) else i - 1
            nb = int(round(nbytes))
            t_chunk = nb / bw_chunk * 1e12
            # the flash hop takes the chunked random reads' time (the orchestrator keeps the longer of it
            # and its own latency + bytes / bandwidth); a host hop after it is a plain copy
            groups_tr.append(hops(route, nb, int(src), i, f"step{s}.L{li} neurons",
                                  service_ps=int(np.ceil(t_chunk))))
            t_tr = transfer_ps(link, system, route[0], route[1], nb)
            extra = max(0.0, t_chunk - t_tr)
            per_step[s] = per_step.get(s, 0.0) + nb
            if s > 0:
                t_chunked_total += t_chunk
                extra_total += extra
        transfers = flatten(groups_tr)
        host_buf = max((g[0].bytes for g in groups_tr), default=0) if len(route) == 3 else 0

        total_w = int(sum(tb[x] for x in groups))
        ffn_total = int(sum(tb[x] for x in ffn_tensors))
        resident = total_w - ffn_total
        n_layers = len(lay)
        cache = window_fraction(a, k) * ffn_total
        predictor = pred_bytes_layer * n_layers
        kv = int(trace.tensors.loc[trace.tensors["kind"] == "kv", "bytes"].sum())
        budget = self.dram_budget if self.dram_budget is not None else int(DEFAULT_BUDGET_SHARE * total_w)
        # the prefill's neurons stream through the space the (still empty) window cache will occupy
        parts = {"resident weights": resident, "predictor": int(predictor),
                 "neuron cache": int(max(cache, staging_prefill)), "KV cache": kv,
                 "activations": peak_activation_bytes(trace)}
        used = check_budget(budget, parts, self.name)
        dec_steps = sorted({int(x) for x in step.tolist() if x > 0})
        flash_per_token = float(np.mean([per_step.get(s, 0.0) for s in dec_steps])) if dec_steps else 0.0
        ffn_per_token = ffn_total
        ndec = max(1, len(dec_steps))
        return Plan(
            default_tier={"weight": dram, "kv": dram, "activation": dram},
            op_unit=np.full(n, unit.name, dtype=object), tensor_tier=tensor_tier, transfers=transfers,
            op_overrides={"weight_bytes": wb, "act_read_bytes": act, "flops": flops},
            capacity_extra={dram: int(max(cache, staging_prefill) + predictor),
                            **({route[1]: int(host_buf)} if host_buf else {})},
            notes=[f"FFN ({ffn_total / 1e9:.2f} GB) on '{flash}'; attention, norms, embeddings and predictor "
                   f"(rank {rank}) resident in '{dram}'",
                   f"sparsity {sparsity:.4f} (active {a:.4f}), window {k}: cache {cache / 1e9:.2f} GB, "
                   f"{new * 100:.2f} % of FFN neurons loaded per token",
                   f"{'bundled' if self.bundling else 'unbundled'} reads of {chunk} B at queue depth "
                   f"{self.queue_depth}: {bw_chunk / 1e9:.2f} GB/s (flash model), {' -> '.join(route)}",
                   f"DRAM used {used / 1e9:.2f} GB of a {budget / 1e9:.2f} GB budget",
                   f"all ops on '{unit.name}' ({unit.preset})"],
            metrics={"active_fraction": a, "new_fraction": new, "window_fraction": window_fraction(a, k),
                     "flash_bytes_per_token": flash_per_token,
                     "flash_fraction_of_ffn_per_token": flash_per_token / ffn_per_token,
                     "chunk_bytes": float(chunk), "chunk_throughput_GBps": bw_chunk / 1e9,
                     "flash_load_s_per_token": t_chunked_total / ndec * 1e-12,
                     "flash_chunked_excess_s_per_token": extra_total / ndec * 1e-12,
                     "neuron_cache_bytes": float(cache), "predictor_bytes": float(predictor),
                     "dram_used_bytes": float(used), "dram_budget_bytes": float(budget)})


# --------------------------------------------------------------------------------------- validation
#: "LLM in a flash" figures used by the cases (copied from shared/hw_params.md section 4, with tags)
PAPER = {
    "speedup_cpu": (4.0, 5.0),      # "4-5x ... compared to naive loading approaches in CPU" [S]
    "speedup_gpu": (20.0, 25.0),    # "... and 20-25x ... in GPU" [S]
    "new_fraction_opt_k5": 0.024,   # OPT-6.7B, window k=5: "loads 2.4 % of FFN neurons per token" [S]
    "flash_load_ms_m1max": 125.0,   # M1 Max: "125ms per token for loading from flash" [S]
}
#: Figure 1's axis values (3100 / 2250 / 700 / 450 / 100 ms) read as per-token latencies, naive vs ours;
#: the bar-to-value mapping is unverified [U], so these are reported beside memsim's, never judged
FIG1_MS = {("m1max_flash.yaml", "opt_6.7b_flash.yaml"): (2250.0, 450.0),
           ("m1max_flash.yaml", "falcon_7b_flash.yaml"): (3100.0, 700.0),
           ("gpu_flash.yaml", "opt_6.7b_flash.yaml"): (2250.0, 100.0)}
SOURCE = ("Alizadeh et al., 'LLM in a flash', arXiv 2312.11514 (ACL'24), via shared/hw_params.md section 4")
#: tolerance of the per-token load figures: the rule's new-neuron fraction moves by about +-33 % for a
#: sparsity of 0.97 +- 0.01 (the sparsity is [U]), and the flash preset's organisation is [I]
LOAD_TOL = 0.25


def _hw(name: str) -> str:
    return str(shipped_path("hw_configs", name))


def _wl(name: str) -> str:
    return str(shipped_path("workloads", name))


@lru_cache(maxsize=None)
def _metrics(hw: str, wl: str, policy: str, overrides: tuple = ()) -> dict:
    from memsim.system.api import run_point

    ov = {"workload.generated_tokens": 4, **dict(overrides)}
    return run_point(_hw(hw), _wl(wl), policy=policy, fidelity="analytical", overrides=ov).metrics()


def _speedup(hw: str, wl: str, win_ov: tuple):
    def run():
        naive = _metrics(hw, wl, "flash-naive")
        win = _metrics(hw, wl, "flash-windowing", win_ov)
        return {"speedup": naive["tpot_s"] / win["tpot_s"], "tpot_naive_ms": naive["tpot_s"] * 1e3,
                "tpot_windowing_ms": win["tpot_s"] * 1e3,
                "flash_load_ms_per_token": win["policy_flash_load_s_per_token"] * 1e3}

    return run


def _opt_bytes():
    m = _metrics("m1max_flash.yaml", "opt_6.7b_flash.yaml", "flash-windowing", (("policy.window", 5),))
    return {"new_neuron_pct": m["policy_new_fraction"] * 100,
            "flash_MB_per_token": m["policy_flash_bytes_per_token"] / 1e6,
            "window_cache_pct_of_ffn": m["policy_window_fraction"] * 100}


def _fig1(hw: str, wl: str) -> tuple:
    from memsim.validate.catalogue import Check

    naive, ours = FIG1_MS[(hw, wl)]
    return Check("tpot_naive_ms", naive, 0.0), Check("tpot_windowing_ms", ours, 0.0)


def validation_cases() -> list:
    from memsim.validate.catalogue import Case, Check

    opt, falcon = "opt_6.7b_flash.yaml", "falcon_7b_flash.yaml"
    opt_ov = (("policy.window", 5),)
    # Falcon-7B at window 4 needs 7.14 GB = 51.6 % of its weights (the paper's split: attention 19.4 % +
    # embeddings 4.2 % + 33 % of the FFN, plus memsim's rank-256 predictor 2.7 %): inside the default budget
    fal_ov = (("policy.window", 4),)
    cpu_lo, cpu_hi = PAPER["speedup_cpu"]
    gpu_lo, gpu_hi = PAPER["speedup_gpu"]
    # OPT-6.7B FFN = 32 layers x 2 x 4096 x 16384 weights + biases in FP16 = 8.591 GB; 2.4 % of it [D]
    opt_mb = 0.024 * 8.591245312e3
    cpu_reason = ("memsim's windowed token on the M1 Max is flash load (~144 ms; the paper: 125 ms) plus ~18 ms "
                  "of roofline compute. The paper's is ~450 ms [U, Fig. 1]: 125 ms load + 65 ms cache management "
                  "(not modelled) + ~260 ms of CPU compute, ~15x memsim's roofline at the Apple-M1-Max-CPU "
                  "preset's efficiencies (0.5 compute / 0.7 memory [I]). Those efficiencies (the paper's CPU "
                  "kernels) and the cache management are the parameters that matter; the naive side (1.89 s, the "
                  "paper ~2.1 s of I/O [U]) and the flash load are matched")
    return [
        Case(id="policy/llm-in-a-flash/m1max/opt-6.7b-speedup", fast=True, run=_speedup("m1max_flash.yaml", opt, opt_ov),
             source=SOURCE + ": 4-5x over naive on CPU (M1 Max), DRAM about half the model; 125 ms/token flash load",
             checks=(Check("speedup", (cpu_lo + cpu_hi) / 2, 0.0, band=(cpu_lo, cpu_hi)),
                     Check("flash_load_ms_per_token", PAPER["flash_load_ms_m1max"], LOAD_TOL),
                     *_fig1("m1max_flash.yaml", opt)),
             known_misses={"speedup": cpu_reason}),
        Case(id="policy/llm-in-a-flash/m1max/falcon-7b-speedup", fast=True,
             run=_speedup("m1max_flash.yaml", falcon, fal_ov),
             source=SOURCE + ": 4-5x over naive on CPU; Falcon-7B window 4 uses 33 % of the FFN",
             checks=(Check("speedup", (cpu_lo + cpu_hi) / 2, 0.0, band=(cpu_lo, cpu_hi)),
                     *_fig1("m1max_flash.yaml", falcon))),
        Case(id="policy/llm-in-a-flash/gpu/opt-6.7b-speedup", fast=True, run=_speedup("gpu_flash.yaml", opt, opt_ov),
             source=SOURCE + ": 20-25x over naive on GPU",
             checks=(Check("speedup", (gpu_lo + gpu_hi) / 2, 0.0, band=(gpu_lo, gpu_hi)),
                     *_fig1("gpu_flash.yaml", opt)),
             known_misses={"speedup": "the windowed token (126 ms) is ~110 ms of flash load at the 990 PRO model's "
                           "2.07 GB/s for 16 KiB random reads at queue depth 8, ~7 ms copying the 228 MB from host "
                           "memory to the GPU over PCIe 4.0 x16, and ~8 ms of compute; the naive token is 2.29 s "
                           "(1.87 s of flash reads + 0.42 s of host-to-GPU copies). 20x needs <= 114 ms, i.e. a "
                           "flash load of <= ~99 ms (~2.3 GB/s): the parameters that matter are the read "
                           "parallelism (policy.queue_depth: 12 gives 24.6x) and the SSD of the paper's GPU "
                           "machine (not retrieved)"}),
        Case(id="policy/llm-in-a-flash/gpu/falcon-7b-speedup", fast=True,
             run=_speedup("gpu_flash.yaml", falcon, fal_ov),
             source=SOURCE + ": 20-25x over naive on GPU (the paper's Fig. 1 shows the GPU case for OPT-6.7B only)",
             checks=(Check("speedup", (gpu_lo + gpu_hi) / 2, 0.0, band=(gpu_lo, gpu_hi)),),
             known_misses={"speedup": "under the independence rule Falcon-7B (a = 9.5 % active, from the 33 % window "
                           "at k=4) loads 7.1 % of its FFN per token (~746 MB, ~342 ms of flash reads + ~24 ms of "
                           "host-to-GPU copy; 6.5x); real activations are "
                           "correlated across tokens, so the window reuses more. The parameter that matters is "
                           "the incremental fraction (policy.new_fraction), unpublished for Falcon"}),
        Case(id="policy/llm-in-a-flash/opt-6.7b-window5-flash-bytes", fast=True, run=_opt_bytes,
             source=SOURCE + ": OPT-6.7B, window k=5 loads 2.4 % of FFN neurons per token",
             checks=(Check("new_neuron_pct", PAPER["new_fraction_opt_k5"] * 100, LOAD_TOL),
                     Check("flash_MB_per_token", opt_mb, LOAD_TOL),
                     # reported only: the paper's DRAM share of FFN (15.5 % of the model; the FFN is 64.5 %
                     # of OPT-6.7B [D]) is a budget choice, larger than the window's working set
                     Check("window_cache_pct_of_ffn", 100 * 0.155 / 0.645, 0.0))),
    ]
