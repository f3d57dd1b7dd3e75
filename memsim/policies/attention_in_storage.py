"""``attention-in-storage`` (InstInfer) and its FlexGen-like baseline ``kv-offload-pcie``.

InstInfer (Pan et al., "InstInfer: In-Storage Attention Offloading for Cost-Effective Long-Context LLM
Inference", arXiv 2409.04992, 2024) keeps the KV cache of long-context, large-batch decoding in a
computational storage drive (CSD) and runs decode attention there, reading the KV cache at the flash
array's internal bandwidth instead of moving it over PCIe; it reports "up to 11.1x" throughput "for a
13B model using an NVIDIA A6000 GPU ... compared to existing SSD-based solutions such as FlexGen" [S]
(the paper's abstract). The CSD's internal organisation and the baseline's effective SSD throughput were
not retrieved.

``kv-offload-pcie`` (FlexGen-like)
    Weights and activations in GPU memory, the KV cache on the SSD (flash tier). Every decode step, each
    layer's KV cache (minus the current token's K and V, which the GPU has just produced) is read over
    the SSD-GPU link into a GPU staging buffer before the layer's attention (``prefetch: true``, the
    default: the read of layer ``l`` starts when layer ``l-1`` starts, FlexGen's overlap of I/O and
    compute, with two staging buffers; ``prefetch: false``: it waits for the op before the attention).
    The current token's K and V are written back to the SSD after ``kv_append`` (a transfer that must
    end before the same layer's attention in the next step). Every op runs on the GPU.
``attention-in-storage`` (InstInfer-like)
    Weights in GPU memory, KV cache on the CSD's flash. Decode-phase ``kv_append``, ``attn_score``,
    ``softmax`` and ``attn_av`` run on the in-storage engine (``policy.engine``, default: the first
    ``asic`` unit), whose memory streams read the KV cache from the flash tier at that tier's ceiling (the
    flash model's channel / array limits: the in-storage engine is not behind the PCIe link) times the
    engine's memory efficiency; their other activations live in the engine's own memory (the CSD's
    controller DRAM, the engine unit's ``memory``). Activations crossing between GPU and engine (Q, K, V
    of the token in, the attention output back) are transfers on the GPU-CSD peer-to-peer link.
    ``kv_fraction`` (default 1: dense attention) scales the KV bytes the engine reads per step, a
    SparQ-style sparse-attention knob.
Both
    ``check(system, scenario)`` (run before any trace is made) requires the GPU, its memory tier, a flash
    tier and the flash-GPU link; ``attention-in-storage`` also the engine, its own memory tier and the
    GPU-engine link.
    The prefill runs on the GPU with its KV in a GPU staging buffer (one layer) and writes each layer's
    KV to the SSD (transfers that gate the prefill's last op, so TTFT includes the KV write-out).
    Capacity: the KV cache at its final length must fit the flash tier, the weights, activations and
    staging buffers the GPU memory (``CapacityError`` otherwise).

What is simplified
------------------
* Transfers take ``latency + bytes / min(link, tier peaks)`` (the orchestrator's rule); FlexGen's real
  path (file system, pinned host buffer, a second PCIe hop) is modelled as one SSD-to-GPU DMA at the
  link's rate, i.e. the baseline is a best case for PCIe offload (kept so: a host hop would raise the
  in-storage gain, and ``hw_configs/csd_13b.yaml`` has no host tier; chained hops are how to add one). Flash writes of KV are charged like
  reads at analytical fidelity (no FTL, no garbage collection, as the flash model states).
* The SSD-GPU link of the baseline and the GPU-CSD peer-to-peer link are two links of the config; one
  policy uses mostly one of them (the in-storage policy uses the first only for the prefill write-out).
* The engine and the GPU do not overlap across micro-batches (each layer's attention waits for its QKV
  projection, and the output projection for the attention), InstInfer's pipelining is not modelled.

Units: bytes, ps and seconds as named.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.shipped import shipped_path
from memsim.policies.base import Plan, Transfer, register
from memsim.policies.flash_naive import pick_tier, pick_unit, require_link

#: op kinds of decode attention that the in-storage engine runs
ATTN_KINDS = ("kv_append", "attn_score", "softmax", "attn_av")


def _positive_fraction(node: yt.Node) -> float:
    v = yt.fraction01(node)
    if v <= 0:
        raise node.error("expected a fraction in (0, 1]")
    return v


def _groups(ops) -> list[tuple[int, int, np.ndarray]]:
    """(step, layer, op indices) of every block in every step, in trace order."""
    step = ops["step"].to_numpy()
    layer = ops["layer"].to_numpy()
    key = step * (1 << 20) + (layer + 1)
    change = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[change[1:], len(ops)]
    return [(int(step[a]), int(layer[a]), np.arange(a, b)) for a, b in zip(change.tolist(), ends.tolist())
            if layer[a] >= 0]


def _kv_to_staging(ops, mask: np.ndarray) -> dict[str, np.ndarray]:
    """Overrides moving the KV reads/writes of ``mask`` ops to their activation streams (a staging buffer)."""
    out = {}
    for kv_col, act_col in (("kv_read_bytes", "act_read_bytes"), ("kv_write_bytes", "act_write_bytes")):
        kv = ops[kv_col].to_numpy(dtype=np.float64).copy()
        act = ops[act_col].to_numpy(dtype=np.float64).copy()
        act[mask] += kv[mask]
        kv[mask] = 0.0
        out[kv_col], out[act_col] = kv, act
    return out


def _prefill_writeout(ops, ssd: str, gpu_tier: str) -> tuple[list[Transfer], int]:
    """Per layer, the prefill's KV written to the SSD after its kv_append, gating the prefill's last op."""
    step = ops["step"].to_numpy()
    kind = ops["kind"].to_numpy(dtype=object)
    kvw = ops["kv_write_bytes"].to_numpy(dtype=np.int64)
    pre = np.flatnonzero(step == 0)
    if not len(pre):
        return [], 0
    last = int(pre[-1])
    out, biggest = [], 0
    for i in pre.tolist():
        if kind[i] == "kv_append" and kvw[i] > 0 and i < last:
            out.append(Transfer(gpu_tier, ssd, int(kvw[i]), after=i, before=last,
                                name=f"prefill.L{int(ops['layer'].iat[i])} KV write-out"))
            biggest = max(biggest, int(kvw[i]))
    return out, biggest


def _kv_tiers(policy, system):
    """(GPU unit, its memory tier, the flash tier, the flash-GPU link), checked."""
    gpu = pick_unit(system, policy.unit, policy.name)
    vram = gpu.memory
    if vram not in system.tiers:
        raise ConfigError(f"{policy.name}: the unit '{gpu.name}' reads tier '{vram}', which the system does not "
                          f"define", path=f"system.units.{gpu.name}.memory")
    ssd = pick_tier(system, policy.flash, "flash", None, "flash", policy.name)
    if system.tiers[ssd].device != "flash":
        raise ConfigError(f"{policy.name}: tier '{ssd}' is not a flash tier", path="policy.flash")
    link = require_link(system, ssd, vram, policy.name)
    return gpu, vram, ssd, link


@register("kv-offload-pcie")
class KvOffloadPcie:
    PARAMS = {"unit": yt.text, "flash": yt.text, "prefetch": yt.boolean}

    def __init__(self, unit: str | None = None, flash: str | None = None, prefetch: bool = True):
        self.unit, self.flash, self.prefetch = unit, flash, prefetch

    def check(self, system: Any, scenario: Any) -> None:
        """The GPU, its memory, a flash tier and the link between them (before any trace is made)."""
        _kv_tiers(self, system)

    def plan(self, trace: Any, system: Any) -> Plan:
        gpu, vram, ssd, link = _kv_tiers(self, system)
        ops = trace.ops
        n = len(ops)
        kvr = ops["kv_read_bytes"].to_numpy(dtype=np.int64)
        kvw = ops["kv_write_bytes"].to_numpy(dtype=np.int64)
        kind = ops["kind"].to_numpy(dtype=object)
        has_kv = (kvr > 0) | (kvw > 0)
        transfers, prefill_buf = _prefill_writeout(ops, ssd, vram)
        groups = [g for g in _groups(ops) if g[0] > 0]
        first_read: dict[tuple[int, int], int] = {}
        for s, l, idx in groups:
            r = idx[kvr[idx] > 0]
            if len(r):
                first_read[(s, l)] = int(r[0])
        biggest = 0
        read_bytes_step: dict[int, int] = {}
        prev_start = None
        for s, l, idx in groups:
            b = int(kvr[idx].sum() - kvw[idx].sum())  # the cache before this token (its K, V are on the GPU)
            if b > 0 and (s, l) in first_read:
                before = first_read[(s, l)]
                after = prev_start if (self.prefetch and prev_start is not None) else before - 1
                transfers.append(Transfer(ssd, vram, b, after=min(after, before - 1), before=before,
                                          name=f"step{s}.L{l} KV read"))
                biggest = max(biggest, b)
                read_bytes_step[s] = read_bytes_step.get(s, 0) + b
            prev_start = int(idx[0])
            for i in idx[(kind[idx] == "kv_append") & (kvw[idx] > 0)].tolist():
                nxt = first_read.get((s + 1, l), n - 1)
                if i < nxt:
                    transfers.append(Transfer(vram, ssd, int(kvw[i]), after=i, before=nxt,
                                              name=f"step{s}.L{l} KV write"))
        transfers.sort(key=lambda t: (t.after, t.before))
        staging = max(biggest * (2 if self.prefetch else 1), prefill_buf)
        steps = max(1, len(read_bytes_step))
        return Plan(
            default_tier={"weight": vram, "kv": ssd, "activation": vram},
            op_unit=np.full(n, gpu.name, dtype=object), transfers=transfers,
            op_overrides=_kv_to_staging(ops, has_kv), capacity_extra={vram: staging},
            notes=[f"weights and activations in '{vram}', KV cache on '{ssd}'",
                   f"each layer's KV read over '{link.name}' every step into a {staging / 1e9:.2f} GB staging "
                   f"buffer ({'prefetched one layer ahead' if self.prefetch else 'read, then compute'}); "
                   f"new K, V written back", f"all ops on '{gpu.name}' ({gpu.preset})"],
            metrics={"kv_bytes_over_pcie_per_step": sum(read_bytes_step.values()) / steps,
                     "staging_bytes": float(staging)})


@register("attention-in-storage")
class AttentionInStorage:
    PARAMS = {"unit": yt.text, "engine": yt.text, "flash": yt.text, "kv_fraction": _positive_fraction}

    def __init__(self, unit: str | None = None, engine: str | None = None, flash: str | None = None,
                 kv_fraction: float = 1.0):
        self.unit, self.engine, self.flash, self.kv_fraction = unit, engine, flash, kv_fraction

    def _engine(self, system, gpu):
        if self.engine is not None:
            if self.engine not in system.units:
                raise ConfigError(f"{self.name}: unknown unit {self.engine!r}; units: {', '.join(system.units)}",
                                  path="policy.engine")
            eng = system.units[self.engine]
        else:
            found = [u for u in system.units.values() if u.kind == "asic" and u.name != gpu.name]
            if not found:
                raise ConfigError(f"{self.name}: the system has no in-storage engine (a unit of kind asic); "
                                  f"add one or name it with policy.engine", path="policy.engine")
            eng = found[0]
        if eng.name == gpu.name:
            raise ConfigError(f"{self.name}: the engine must be another unit than '{gpu.name}'", path="policy.engine")
        return eng

    def _parts(self, system):
        """(GPU, its memory, flash tier, flash-GPU link, engine, engine memory, GPU-engine link), checked."""
        gpu, vram, ssd, link = _kv_tiers(self, system)
        eng = self._engine(system, gpu)
        eng_mem = eng.memory
        if eng_mem in (vram, ssd):
            raise ConfigError(f"{self.name}: the engine's memory must be its own tier (the CSD's DRAM), not "
                              f"'{eng_mem}'", path=f"system.units.{eng.name}.memory")
        if eng_mem not in system.tiers:
            raise ConfigError(f"{self.name}: the engine '{eng.name}' reads tier '{eng_mem}', which the system "
                              f"does not define", path=f"system.units.{eng.name}.memory")
        p2p = require_link(system, vram, eng_mem, self.name)
        return gpu, vram, ssd, link, eng, eng_mem, p2p

    def check(self, system: Any, scenario: Any) -> None:
        """GPU, flash tier, in-storage engine, its own memory and both links (before any trace is made)."""
        self._parts(system)

    def plan(self, trace: Any, system: Any) -> Plan:
        gpu, vram, ssd, link, eng, eng_mem, p2p = self._parts(system)
        ops = trace.ops
        n = len(ops)
        step = ops["step"].to_numpy()
        kind = ops["kind"].to_numpy(dtype=object)
        on_eng = (step > 0) & np.isin(kind, ATTN_KINDS)
        unit = np.where(on_eng, eng.name, gpu.name).astype(object)
        kvr = ops["kv_read_bytes"].to_numpy(dtype=np.int64)
        kvw = ops["kv_write_bytes"].to_numpy(dtype=np.int64)
        pre_kv = (step == 0) & ((kvr > 0) | (kvw > 0))
        ov = _kv_to_staging(ops, pre_kv)
        ov["kv_read_bytes"][on_eng] *= self.kv_fraction
        transfers, prefill_buf = _prefill_writeout(ops, ssd, vram)
        out_ids = ops["out"].to_numpy(dtype=object)
        tensor_tier = {out_ids[i]: eng_mem for i in np.flatnonzero(on_eng).tolist() if out_ids[i]}
        # an op's activations are charged to the tier of its output tensor; kv_append has none (it writes
        # the cache only), so its input K, V would be charged to the GPU's memory. The engine writes the
        # K, V arriving over the peer-to-peer link straight into flash: that read is dropped (a few KB).
        no_out = on_eng & (out_ids == "")
        ov["act_read_bytes"][no_out] = 0.0
        actw = ops["act_write_bytes"].to_numpy(dtype=np.int64)
        deps = ops["deps"].tolist()
        sent: set[int] = set()
        p2p_bytes = 0
        for i in range(n):
            for d in (deps[i] if deps[i] is not None else []):
                d = int(d)
                if on_eng[d] != on_eng[i] and d not in sent and actw[d] > 0:
                    sent.add(d)
                    src, dst = (eng_mem, vram) if on_eng[d] else (vram, eng_mem)
                    transfers.append(Transfer(src, dst, int(actw[d]), after=d, before=i,
                                              name=f"{ops['name'].iat[d]} -> {'gpu' if on_eng[d] else 'engine'}"))
                    p2p_bytes += int(actw[d])
        transfers.sort(key=lambda t: (t.after, t.before))
        dec = int(on_eng.any()) and len(set(step[on_eng].tolist()))
        kv_eng = float(ov["kv_read_bytes"][on_eng].sum() + kvw[on_eng].sum())
        return Plan(
            default_tier={"weight": vram, "kv": ssd, "activation": vram},
            op_unit=unit, tensor_tier=tensor_tier, transfers=transfers, op_overrides=ov,
            capacity_extra={vram: prefill_buf},
            notes=[f"weights in '{vram}', KV cache on '{ssd}'; decode attention on '{eng.name}' ({eng.preset}), "
                   f"its activations in '{eng_mem}'",
                   f"activations between GPU and engine over '{p2p.name}'; prefill KV written out over '{link.name}'",
                   f"engine reads {100 * self.kv_fraction:g} % of the KV cache per step"],
            metrics={"kv_bytes_in_storage_per_step": kv_eng / max(1, dec),
                     "p2p_bytes_per_step": p2p_bytes / max(1, dec), "kv_fraction": self.kv_fraction})


# --------------------------------------------------------------------------------------- validation
#: InstInfer's headline (arXiv 2409.04992 abstract) [S]
PAPER_GAIN = 11.1
#: The band: the published figure is a maximum ("up to") over the paper's sweep of sequence lengths and
#: batch sizes on a prototype whose CSD internals were not retrieved; memsim runs one point of that sweep
#: (13B, batch 16, 2,048-token prompt), so its gain should lie at or below the maximum (+10 % for model
#: error) and, to count as reproducing it, within a factor of two of it.
BAND = (PAPER_GAIN / 2, PAPER_GAIN * 1.1)
SOURCE = ("Pan et al., 'InstInfer: In-Storage Attention Offloading for Cost-Effective Long-Context LLM "
          "Inference', arXiv 2409.04992 (abstract): up to 11.1x throughput for a 13B model on an A6000 vs FlexGen")


def _instinfer():
    from memsim.system.api import run_point

    hw = str(shipped_path("hw_configs", "csd_13b.yaml"))
    wl = str(shipped_path("workloads", "llama2_13b_longctx.yaml"))
    ov = {"workload.generated_tokens": 4}
    base = run_point(hw, wl, policy="kv-offload-pcie", fidelity="analytical", overrides=ov).metrics()
    ins = run_point(hw, wl, policy="attention-in-storage", fidelity="analytical", overrides=ov).metrics()
    return {"throughput_gain": ins["tokens_per_s"] / base["tokens_per_s"],
            "tokens_per_s_flexgen_like": base["tokens_per_s"], "tokens_per_s_in_storage": ins["tokens_per_s"]}


def validation_cases() -> list:
    from memsim.validate.catalogue import Case, Check

    return [Case(
        id="policy/instinfer/csd-13b/throughput-vs-kv-offload", fast=True, run=_instinfer, source=SOURCE,
        checks=(Check("throughput_gain", PAPER_GAIN, 0.0, band=BAND),
                # reported only, beside their KV-bound closed forms: batch 16 / (KV bytes per step, 26.85 GB
                # on average over steps 1-4, / 7.88 GB/s PCIe) and 16 / (26.88 GB / (12.66 GB/s x 0.9) +
                # 26.0 GB of weights / (768 GB/s x 0.85))
                Check("tokens_per_s_flexgen_like", 4.69, 0.0), Check("tokens_per_s_in_storage", 6.67, 0.0)),
        known_misses={"throughput_gain": (
            "decode is KV-bound on both sides, so the gain is ~ (internal flash bandwidth x engine efficiency) / "
            "PCIe rate = 12.7 GB/s x 0.9 / 7.88 GB/s ~ 1.4x for a 990 PRO-class 8-channel array behind a "
            "PCIe 4.0 x4 port. The parameters that matter: the CSD's internal bandwidth (16 channels: 2.8x; "
            "the 16-lane internal port caps it at 3.1x), the baseline's effective SSD path (FlexGen's file-system "
            "route is slower than the DMA modelled here) and sparse KV reads (policy.kv_fraction=0.125: 9.8x); "
            "the paper's CSD organisation and engine were not retrieved")})]
