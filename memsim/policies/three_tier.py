"""``three-tier``: SambaNova SN40L-style SRAM / HBM / DDR mapping with operator fusion and model switching.

What is modelled
----------------
* **Fusion into SRAM.** With an SRAM tier (``sram_tier``) and ``fuse`` on, every activation (op output)
  lives in the SRAM tier: the ops of one decoder layer form one fused kernel (the unit's kernel overhead
  is paid once per layer and step, ``overhead_ps = 0`` for the other ops; the embedding and the final
  norm + LM head are two more kernels per step), and intermediates never touch HBM. SRAM capacity is
  enforced: the peak of live activations must fit; activations are spilled to HBM explicitly, largest
  first (a size threshold found by bisection), until the rest fits; an activation larger than the whole
  SRAM (a tile that does not fit) always spills. The final set is placed in a
  :class:`memsim.sram.api.Scratchpad`, which raises if it were ever over capacity. Spilled bytes are
  reported. Without fusion every activation is in HBM and every op is its own kernel (the unfused
  baseline, and what a GPU without the SRAM tier does).
* **Weights of the active model in HBM, the rest in DDR.** The DDR tier (``ddr_tier``: the SN40L's DDR,
  or a DGX's host memory) holds the master copy of ``models`` models of this size (a Composition of
  Experts); at the start of the run the active model is *switched in*: its weights are copied DDR -> HBM
  over the link before the first op (so TTFT includes the switch). The switch takes
  ``link latency + bytes / min(link, DDR, HBM bandwidth)`` (the orchestrator's transfer model);
  ``switch_time_s`` in the metrics is that closed form.
* **Expert switching (MoE).** HBM holds ``hbm_experts`` experts per layer (default: as many as fit beside
  the rest of the model, the KV cache and the activations spilled to HBM); the others stay in DDR. The
  experts a step routes to are looked up in a per-layer LRU of those slots; a miss copies the expert's
  weights DDR -> HBM after the layer's router op and before the expert's first op.
* **Metrics.** ``switch_bytes``, ``switch_time_s``, ``expert_switch_bytes``, ``expert_switches``,
  ``hbm_bytes_fused`` (HBM traffic of this plan's ops) and ``hbm_bytes_unfused`` (the same ops with every
  activation in HBM), ``fusion_traffic_ratio``, ``sram_peak_bytes``, ``sram_spilled_bytes``.
  :func:`switch_comparison` runs one model on an SN40L-like and a DGX-like config and returns the switch
  times and their ratio (the SN40L paper's 15-31x model-switching gain is the comparison point,
  :func:`validation_cases`).

What is simplified
------------------
* One socket: tensor parallelism over the 8 sockets of an SN40L node (or 8 GPUs of a DGX) is not
  modelled; :func:`switch_comparison` scales to a node explicitly (see there).
* Spilling is by a size threshold over whole tensors: the prefill is not tiled into token chunks, so at a
  large batch x prompt its hidden states (e.g. 512 MiB each at 64 x 1,024 tokens of Llama-2-7B) spill to
  HBM even where one of them alone would fit; the decode steps' activations stay in SRAM.
* Activations are read from the tier of the reading op's own output (the simulator's rule), so an op whose
  output stays in SRAM reads a spilled input at SRAM cost. Weights are streamed from HBM (not cached in
  SRAM across ops or steps). An evicted expert is dropped (weights are read-only; DDR keeps the copy).
* Capacity accounting: memsim charges each tensor in full to the tier it is placed on; experts that are
  not resident are placed on HBM (their readers' tier) and their bytes are removed from HBM's occupancy
  with a negative ``capacity_extra`` and charged to DDR instead (see the report's missing-feature note).
"""
from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import numpy as np

from memsim.config import yamltree as yt
from memsim.errors import ConfigError
from memsim.shipped import shipped_path
from memsim.policies.base import Plan, Transfer, register
from memsim.policies.kv_paging import accelerator, check_tier, linked_tiers


def live_peak(first: np.ndarray, last: np.ndarray, nbytes: np.ndarray) -> int:
    """Peak of live bytes over op boundaries (+b at first op, -b after last op), as the simulator counts."""
    if len(nbytes) == 0:
        return 0
    ev_t = np.concatenate([first * 2, last * 2 + 1])
    ev_b = np.concatenate([nbytes, -nbytes])
    order = np.argsort(ev_t, kind="stable")
    return int(np.cumsum(ev_b[order]).max())


def spill_threshold(first, last, nbytes, capacity: int) -> int:
    """The largest size ``th`` such that the activations of at most ``th`` bytes peak within ``capacity``
    (activations above ``th`` spill); -1 if even the smallest does not fit."""
    sizes = np.unique(nbytes)
    lo, hi = -1, len(sizes) - 1  # index into sizes; -1 = nothing stays
    if live_peak(first, last, nbytes) <= capacity:
        return int(sizes[-1]) if len(sizes) else 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        keep = nbytes <= sizes[mid]
        if live_peak(first[keep], last[keep], nbytes[keep]) <= capacity:
            lo = mid
        else:
            hi = mid - 1
    return int(sizes[lo]) if lo >= 0 else -1


def transfer_time_s(system, src: str, dst: str, nbytes: float) -> float:
    """The orchestrator's transfer time: link latency + bytes / min(link, source, destination bandwidth)."""
    from memsim.system.orchestrator import tier_bandwidth

    link = system.link_between(src, dst)
    bw = min(link.bandwidth_bytes_per_s, tier_bandwidth(system, src), tier_bandwidth(system, dst))
    return float(np.ceil(link.latency_ps + nbytes / bw * 1e12)) * 1e-12


@register("three-tier")
class ThreeTier:
    PARAMS = {
        "fuse": yt.boolean,            # keep intermediates in SRAM, one kernel per layer (needs an SRAM tier)
        "models": yt.count,            # models of this size held in DDR (Composition of Experts)
        "switch": yt.boolean,          # switch the model in from DDR at the start of the run
        "hbm_experts": yt.count,       # MoE: experts per layer resident in HBM
        "hbm_tier": yt.text,
        "ddr_tier": yt.text,
        "sram_tier": yt.text,
        "unit": yt.text,
    }

    def __init__(self, fuse: bool | None = None, models: int = 1, switch: bool = True,
                 hbm_experts: int | None = None, hbm_tier: str | None = None, ddr_tier: str | None = None,
                 sram_tier: str | None = None, unit: str | None = None):
        self.fuse, self.models, self.switch, self.hbm_experts = fuse, models, switch, hbm_experts
        self.hbm_tier, self.ddr_tier, self.sram_tier, self.unit = hbm_tier, ddr_tier, sram_tier, unit

    # ------------------------------------------------------------------ tiers
    def _tiers(self, system, unit) -> tuple[str, str, str | None]:
        hbm = check_tier(system, self.hbm_tier or unit.memory, "hbm_tier", "three-tier")
        if self.ddr_tier is not None:
            ddr = check_tier(system, self.ddr_tier, "ddr_tier", "three-tier")
            if system.link_between(hbm, ddr) is None:
                raise ConfigError(f"three-tier: no link joins '{hbm}' and ddr tier '{ddr}'", path="policy.ddr_tier")
        else:
            cands = [t for t in linked_tiers(system, hbm) if system.tiers[t].dram is not None]
            if not cands:
                raise ConfigError(f"three-tier: no DRAM tier is linked to '{hbm}' to hold the other models; add one "
                                  f"(e.g. host DDR over PCIe) or name it with policy.ddr_tier", path="policy.ddr_tier")
            ddr = cands[0]
        if self.sram_tier is not None:
            sram = check_tier(system, self.sram_tier, "sram_tier", "three-tier")
            if system.tiers[sram].device != "sram":
                raise ConfigError(f"three-tier: tier '{sram}' is a {system.tiers[sram].device} tier, not sram",
                                  path="policy.sram_tier")
        else:
            srams = [n for n, t in system.tiers.items() if t.device == "sram"]
            sram = srams[0] if srams else None
        if self.fuse and sram is None:
            raise ConfigError("three-tier: fusion keeps intermediates in an SRAM tier and this system has none "
                              "(add a 'device: sram' tier or set policy.fuse=false)", path="policy.fuse")
        return hbm, ddr, sram

    def check(self, system, scenario) -> None:
        """Structural checks before any trace is generated: the tiers it needs exist and are linked."""
        self._tiers(system, accelerator(system, self.unit, "three-tier"))
        e = int(getattr(scenario.model, "num_local_experts", 1) or 1)
        if self.hbm_experts is not None and self.hbm_experts > e:
            raise ConfigError(f"three-tier: hbm_experts = {self.hbm_experts} exceeds the model's {e} experts",
                              path="policy.hbm_experts")

    # ------------------------------------------------------------------ plan
    def plan(self, trace, system) -> Plan:
        from memsim.sram.api import Scratchpad
        from memsim.system.simulator import tier_capacity

        unit = accelerator(system, self.unit, "three-tier")
        hbm, ddr, sram = self._tiers(system, unit)
        fuse = (sram is not None) if self.fuse is None else self.fuse
        ops, t = trace.ops, trace.tensors
        n = len(ops)
        kind = t["kind"].to_numpy(dtype=object)
        tid = t["tensor"].to_numpy(dtype=object)
        tbytes = t["bytes"].to_numpy(dtype=np.int64)
        notes: list[str] = []
        tensor_tier: dict[str, str] = {}
        extra: dict[str, int] = {}
        metrics: dict[str, float] = {}

        # --- activations: SRAM with explicit spills ------------------------------------------------
        act = kind == "activation"
        a_first = t["first_op"].to_numpy()[act]
        a_last = t["last_op"].to_numpy()[act]
        a_bytes = tbytes[act]
        a_ids = tid[act]
        spilled = np.zeros(len(a_ids), dtype=bool)
        if fuse:
            scfg = system.tiers[sram].other
            cap = tier_capacity(system, sram)
            th = spill_threshold(a_first, a_last, a_bytes, cap)
            spilled = a_bytes > th
            keep = ~spilled
            peak = live_peak(a_first[keep], a_last[keep], a_bytes[keep])
            pad = Scratchpad(dataclasses.replace(scfg, capacity_bytes=cap), align=1)
            pad.allocate("live activations at their peak", peak)  # raises SramCapacityError if it were over
            for x in a_ids[spilled].tolist():
                tensor_tier[x] = hbm
            metrics.update(sram_peak_bytes=float(peak), sram_spilled_bytes=float(a_bytes[spilled].sum()),
                           sram_spilled_tensors=float(spilled.sum()))
            notes.append(f"fused: activations in '{sram}' ({cap / 2**20:.0f} MiB), peak {peak / 2**20:.1f} MiB; "
                         f"{int(spilled.sum())} activations ({a_bytes[spilled].sum() / 2**20:.1f} MiB) spilled to '{hbm}'"
                         + (f" (those above {th} B)" if spilled.any() else ""))

        # --- weights: active model in HBM, its home and the other models in DDR --------------------
        w = kind == "weight"
        w_ids = tid[w]
        w_bytes = tbytes[w]
        model_bytes = int(w_bytes.sum())
        ms = trace.meta["model_spec"]
        L = int(ms["num_hidden_layers"])
        E = int(ms.get("num_local_experts", 1) or 1)
        is_expert = np.array([".moe.e" in x for x in w_ids.tolist()], dtype=bool) if E > 1 else np.zeros(len(w_ids), bool)
        expert_bytes: dict[tuple[int, int], int] = {}
        for x, b in zip(w_ids[is_expert].tolist(), w_bytes[is_expert].tolist()):
            layer = int(x[1:x.index(".")])
            e = int(x.split(".moe.e")[1].split(".")[0])
            expert_bytes[(layer, e)] = expert_bytes.get((layer, e), 0) + int(b)
        transfers: list[Transfer] = []
        slots = E
        if E > 1:
            per_expert = max(expert_bytes.values())
            if self.hbm_experts is not None:
                if self.hbm_experts > E:
                    raise ConfigError(f"three-tier: hbm_experts = {self.hbm_experts} exceeds the model's {E} experts",
                                      path="policy.hbm_experts")
                slots = self.hbm_experts
            else:
                from memsim.system.simulator import tier_occupancy, tensor_tiers

                # everything else the HBM holds: weights without experts, KV, activations spilled there
                pl = tensor_tiers(trace, Plan(default_tier={"weight": hbm, "kv": hbm,
                                                            "activation": sram if fuse else hbm},
                                              op_unit=np.empty(0), tensor_tier=tensor_tier))
                for x in w_ids[is_expert].tolist():
                    pl[x] = ddr
                occ = tier_occupancy(trace, pl).get(hbm, 0)
                room = tier_capacity(system, hbm) - occ
                slots = int(min(E, max(0, room // (L * per_expert))))
                if slots < 1:
                    raise ConfigError(f"three-tier: no room in '{hbm}' for one expert per layer beside the rest of "
                                      f"the model ({occ / 2**30:.2f} GiB)", path="policy.hbm_experts")
            # per-layer LRU over expert slots; experts 0..slots-1 resident at the start
            router = {}
            sel = (ops["kind"] == "moe_router").to_numpy()
            for i, s, l in zip(ops["op"].to_numpy()[sel], ops["step"].to_numpy()[sel], ops["layer"].to_numpy()[sel]):
                router[(int(s), int(l))] = int(i)
            ex = ops["expert"].to_numpy()
            esel = ex >= 0
            first_of: dict[tuple[int, int, int], int] = {}
            for i, s, l, e in zip(ops["op"].to_numpy()[esel], ops["step"].to_numpy()[esel],
                                  ops["layer"].to_numpy()[esel], ex[esel]):
                first_of.setdefault((int(s), int(l), int(e)), int(i))
            caches = [OrderedDict((e, None) for e in range(slots)) for _ in range(L)]
            switches = 0
            sw_bytes = 0
            for (s, l, e), i in sorted(first_of.items(), key=lambda kv: kv[1]):
                c = caches[l]
                if e in c:
                    c.move_to_end(e)
                    continue
                if len(c) >= slots:
                    c.popitem(last=False)
                c[e] = None
                b = expert_bytes[(l, e)]
                transfers.append(Transfer(ddr, hbm, b, after=router[(s, l)], before=i, name=f"expert s{s} L{l} e{e}"))
                switches += 1
                sw_bytes += b
            not_resident = L * (E - slots) * per_expert
            extra[hbm] = extra.get(hbm, 0) - not_resident
            metrics.update(hbm_experts=float(slots), expert_switches=float(switches),
                           expert_switch_bytes=float(sw_bytes))
            notes.append(f"MoE: {slots} of {E} experts per layer in '{hbm}' (LRU); {switches} expert switches "
                         f"({sw_bytes / 1e9:.2f} GB) from '{ddr}'")
        switch_bytes = int(w_bytes[~is_expert].sum()) + (L * slots * max(expert_bytes.values()) if E > 1 else 0)
        # DDR: the master copy of `models` models (this one included)
        extra[ddr] = extra.get(ddr, 0) + self.models * model_bytes
        if self.switch:
            transfers.insert(0, Transfer(ddr, hbm, switch_bytes, after=-1, before=0, name="model switch-in"))
            metrics.update(switch_bytes=float(switch_bytes),
                           switch_time_s=transfer_time_s(system, ddr, hbm, switch_bytes))
            notes.append(f"model switch {ddr} -> {hbm}: {switch_bytes / 1e9:.2f} GB in "
                         f"{metrics['switch_time_s'] * 1e3:.1f} ms (before the first op)")

        # --- per-op overrides: one kernel per fused layer ------------------------------------------
        overrides: dict[str, np.ndarray] = {}
        if fuse:
            key = ops["step"].to_numpy() * (L + 2) + (ops["layer"].to_numpy() + 1)
            first = np.ones(n, dtype=bool)
            first[1:] = key[1:] != key[:-1]
            overrides["overhead_ps"] = np.where(first, float(unit.kernel_overhead_ps), 0.0)
            metrics["fused_kernels"] = float(first.sum())
        # --- fused vs unfused HBM traffic (as the simulator charges it) ---------------------------
        cols = {c: ops[c].to_numpy(dtype=np.float64) for c in
                ("weight_bytes", "kv_read_bytes", "kv_write_bytes", "act_read_bytes", "act_write_bytes")}
        unfused = sum(cols.values())
        out = ops["out"].to_numpy(dtype=object)
        act_default = sram if fuse else hbm
        out_tier = np.array([tensor_tier.get(x, act_default) if x else act_default for x in out.tolist()], dtype=object)
        on_hbm = out_tier == hbm
        fused = cols["weight_bytes"] + cols["kv_read_bytes"] + cols["kv_write_bytes"] + \
            np.where(on_hbm, cols["act_read_bytes"] + cols["act_write_bytes"], 0.0)
        metrics.update(hbm_bytes_unfused=float(unfused.sum()), hbm_bytes_fused=float(fused.sum()),
                       fusion_traffic_ratio=float(unfused.sum() / fused.sum()) if fused.sum() else 1.0)
        return Plan(default_tier={"weight": hbm, "kv": hbm, "activation": act_default},
                    op_unit=np.full(n, unit.name, dtype=object), tensor_tier=tensor_tier, transfers=transfers,
                    notes=notes, op_overrides=overrides, capacity_extra=extra, metrics=metrics)


# ----------------------------------------------------------------------------------------- comparison
SN40L_SOURCE = ("Prabhakar et al., 'SambaNova SN40L: Scaling the AI Memory Wall with Dataflow and Composition of "
                "Experts', arXiv 2405.07518 (MICRO'24)")
#: An SN40L node has 8 sockets [S]; each loads its 1/8 shard of a model from its own DDR in parallel, so the node
#: switches at 8 x the socket's DDR->HBM bandwidth (the node-level overrides below) [D].
NODE_SOCKETS = 8
SWITCH_WORKLOAD = {"workload.prompt_tokens": 8, "workload.generated_tokens": 1}


def _repo_file(*parts: str) -> str:
    return str(shipped_path(*parts))


def _switch_time(hw: str, workload: str, overrides: Mapping[str, Any]) -> float:
    """The simulated duration of the run's model switch-in transfer (s)."""
    from memsim.system.api import run_point

    res = run_point(hw, workload, policy="three-tier", overrides={**SWITCH_WORKLOAD, **overrides})
    tr = res.transfers[res.transfers["name"] == "model switch-in"]
    return float((tr["end_ps"] - tr["start_ps"]).sum()) * 1e-12


def switch_comparison(workload: str | None = None, *, sockets: int = NODE_SOCKETS) -> dict[str, float]:
    """Model-switch time of one model on an SN40L-like socket and node and on DGX-like H100 / A100 systems.

    * ``sn40l_socket``: hw_configs/sn40l_like.yaml as shipped (DDR -> HBM at 100 GB/s, 1 us);
    * ``sn40l_node``: the same with ``sockets`` sockets' DDR, HBM and DDR ports in aggregate (every socket loads
      its shard at once);
    * ``dgx_h100`` / ``dgx_a100``: hw_configs/h100_host_ddr.yaml / a100_host_ddr.yaml, the model copied from host
      memory over one PCIe 5.0 / 4.0 x16 link (a DGX has no DDR beside the GPUs).
    Gains are DGX time / SN40L time, per device (socket vs one GPU) and per node.
    """
    wl = workload or _repo_file("workloads", "llama2_7b_coe_expert.yaml")
    sn = _repo_file("hw_configs", "sn40l_like.yaml")
    node = {"system.tiers.ddr.count": 4 * sockets, "system.tiers.hbm.count": 4 * sockets,
            "system.links.ddr_port.bandwidth": f"{100 * sockets}GB/s"}
    t = {"sn40l_socket": _switch_time(sn, wl, {}), "sn40l_node": _switch_time(sn, wl, node),
         "dgx_h100": _switch_time(_repo_file("hw_configs", "h100_host_ddr.yaml"), wl, {}),
         "dgx_a100": _switch_time(_repo_file("hw_configs", "a100_host_ddr.yaml"), wl, {})}
    out = {f"switch_s_{k}": v for k, v in t.items()}
    for g in ("h100", "a100"):
        out[f"gain_per_device_vs_dgx_{g}"] = t[f"dgx_{g}"] / t["sn40l_socket"]
        out[f"gain_node_vs_dgx_{g}"] = t[f"dgx_{g}"] / t["sn40l_node"]
    return out


def _fusion_case() -> dict[str, float]:
    from memsim.system.api import run_point

    wl = _repo_file("workloads", "llama2_7b_coe_expert.yaml")
    m = {f: run_point(_repo_file("hw_configs", "sn40l_like.yaml"), wl, policy="three-tier",
                      overrides={"policy.fuse": f, "policy.switch": False}).metrics() for f in (True, False)}
    return {"fusion_speedup_ttft": m[False]["ttft_s"] / m[True]["ttft_s"],
            "fusion_speedup_tpot": m[False]["tpot_s"] / m[True]["tpot_s"],
            "fusion_hbm_traffic_ratio": m[True]["policy_fusion_traffic_ratio"]}


def validation_cases() -> list:
    from memsim.validate.catalogue import Case, Check

    return [
        Case(id="policy/three-tier/SN40L/model-switch-gain-vs-DGX", fast=True, run=switch_comparison,
             source=(f"{SN40L_SOURCE}, abstract: the 8-socket SN40L node 'speeds up model switching time by 15x to 31x' "
                     "over DGX H100 / DGX A100 [S]; memsim: Llama-2-7B BF16 (13.5 GB) switched DDR -> HBM on "
                     "hw_configs/sn40l_like.yaml (per socket, and 8 sockets in aggregate) vs host -> HBM over one PCIe "
                     "link on h100_host_ddr.yaml / a100_host_ddr.yaml"),
             checks=(Check("gain_node_vs_dgx_h100", 23.0, 0.0, band=(15.0, 31.0)),
                     Check("gain_node_vs_dgx_a100", 23.0, 0.0, band=(15.0, 31.0)),
                     Check("gain_per_device_vs_dgx_h100", 0.0, 0.0), Check("gain_per_device_vs_dgx_a100", 0.0, 0.0),
                     Check("switch_s_sn40l_node", 0.0, 0.0), Check("switch_s_dgx_h100", 0.0, 0.0),
                     Check("switch_s_dgx_a100", 0.0, 0.0)),
             known_misses={"gain_node_vs_dgx_h100":
                           "memsim's DGX H100 copies at the PCIe 5.0 x16 peak (63 GB/s) and lands at 800/63 = 12.7x. "
                           "The deciding parameter is the DGX's effective host -> HBM bandwidth for the whole node: the "
                           "paper's 15x and 31x correspond to about 53 and 26 GB/s, i.e. one PCIe 5.0 / 4.0 x16 link at "
                           "~83 % of peak (a measured copy rate [I]); with each GPU on its own link (8 in parallel) the "
                           "gain would be the per-device 1.6x / 3.2x"}),
        Case(id="policy/three-tier/SN40L/fused-vs-unfused", fast=True, run=_fusion_case,
             source=(f"{SN40L_SOURCE}, abstract: fused operators give 2x to 13x speed-ups over an unfused baseline on "
                     "8 sockets [S]; memsim: Llama-2-7B BF16 batch 1 (256-token prompt, 32 generated) on one "
                     "SN40L-like socket, fused layers (intermediates in SRAM, one kernel per layer) vs every op its own "
                     "kernel with activations in HBM"),
             checks=(Check("fusion_speedup_ttft", 7.5, 0.0, band=(2.0, 13.0)),
                     Check("fusion_speedup_tpot", 7.5, 0.0, band=(2.0, 13.0)),
                     Check("fusion_hbm_traffic_ratio", 0.0, 0.0)),
             known_misses={m: "memsim's unfused kernels cost 1 us each [I] and batch-1 decode streams the weights from HBM "
                              "either way, so fusion saves only the activations' HBM traffic and ~14 launches per layer "
                              "(1.05x decode, 1.3x prefill). The deciding parameter is the per-kernel cost of the "
                              "unfused RDU baseline (reconfiguration and pipeline fill), not in the sources: a 2x decode "
                              "speed-up needs about 20 us per unfused op at this size"
                           for m in ("fusion_speedup_ttft", "fusion_speedup_tpot")}),
    ]
