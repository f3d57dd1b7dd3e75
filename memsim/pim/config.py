"""The ``pim:`` block of a hardware config: a PIM device inside a DRAM device.

A hardware config names a PIM preset (``memsim/presets/pim/*.yaml``) and may override any field::

    pim:
      preset: HBM_PIM_AquaboltXL
      device: {lanes: 16, banks_per_unit: 2, clock: 300MHz, global_buffer: 256B}
      timing: {tCCD_AB: {nCK: 4}, tMODE: 50ns}
      power: {act_window_banks: 0}
      modes: {enter_switches: 2}
      energy: {mac_per_byte: 0.32pJ}
      memory: shared        # optional, see below

Which DRAM device the PIM sits in
---------------------------------
Every PIM preset carries ``memory:``, a complete ``memory:``-style block (``{preset: HBM2_2000,
organization: {...}, timing: {...}}``) naming the DRAM device the PIM was built into; it is parsed by the
DRAM loader, so it validates and reports errors exactly like a top-level ``memory:`` block. A config may
replace it with its own ``pim.memory:`` block, or write ``memory: shared`` to put the PIM units into the
file's top-level ``memory:`` device (the PIM device *is* the main memory). The DRAM organisation and
timing are then reused unchanged (column width, row size, tRCD, tRP, tCCD, tFAW, refresh ...); the PIM
section adds only what PIM needs.

Sections and units
------------------
``device``: ``banks_per_unit`` (int, power of two, divides the banks of a PC), ``lanes`` (int),
``dtypes`` (list of fp16 / bf16 / int8), ``clock`` (frequency), ``global_buffer`` (size per PC, a
multiple of the column access), ``accumulators`` (output registers per unit), ``reduction`` (``lanes``:
an accumulator keeps one partial sum per lane and the host adds the lanes, Samsung HBM-PIM; ``tree``: an
adder tree reduces each MAC to one value, SK hynix AiM), ``accumulator_bytes`` (size of one partial sum).
``timing`` (durations or ``{nCK: n}`` of the memory tCK): ``tCCD_AB`` (MAC_AB to MAC_AB: tCCD_L, or a
power-limited nCCDAB), ``tCCD_GB`` (global-buffer write to write), ``tMODE`` (one mode switch),
``tMACLAT`` (last MAC to result readable). ``power``: ``act_window_banks`` (bank activations allowed per
tFAW window; 0 = unconstrained, all-bank ACT is then one command). ``modes``: switch counts
(``enter_switches``, ``exit_switches``, ``gb_switches`` around every global-buffer load,
``result_switches`` around every result read-out) and ``program_writes`` (instruction-memory writes at
kernel start). ``energy``: per-bit and per-byte coefficients (see :class:`PimEnergy`).

What is simplified
------------------
* One PIM configuration per file (no heterogeneous stacks: every PC of the device has PIM units).
* Datatypes differ only in element size; lanes process one element per lane per PIM clock for all.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memsim.config import yamltree as yt
from memsim.config.schema import DramConfig
from memsim.errors import ConfigError

DTYPE_BYTES: dict[str, int] = {"fp16": 2, "bf16": 2, "int8": 1}


@dataclass(frozen=True)
class PimDevice:
    """The PIM units of one pseudo-channel (all counts per PC unless stated)."""

    banks_per_unit: int  # 1: a unit per bank (AiM, AttAcc); 2: one per bank pair (HBM-PIM)
    lanes: int  # SIMD lanes per unit (multipliers)
    dtypes: tuple[str, ...]  # supported element types
    clock_hz: int  # PIM unit clock
    global_buffer_bytes: int  # input-vector bytes held per PC for broadcast
    accumulators: int  # output registers per unit
    reduction: str  # "lanes" | "tree"
    accumulator_bytes: int  # bytes of one accumulator as read out


@dataclass(frozen=True)
class PimTiming:
    """PIM-specific timings in ps (the DRAM ones come from the memory config)."""

    t_ccd_ab_ps: int  # MAC_AB -> MAC_AB
    t_ccd_gb_ps: int  # WR_GB -> WR_GB
    t_mode_ps: int  # one mode switch
    t_mac_lat_ps: int  # last MAC -> RD_RES


@dataclass(frozen=True)
class PimPower:
    act_window_banks: int = 0  # bank activations per tFAW window; 0 = unconstrained


@dataclass(frozen=True)
class PimModes:
    enter_switches: int = 1
    exit_switches: int = 1
    gb_switches: int = 0  # extra switches around each global-buffer load
    result_switches: int = 0  # extra switches around each result read-out
    program_writes: int = 0  # instruction-memory writes at kernel start


@dataclass(frozen=True)
class PimEnergy:
    """Energy coefficients. Per bit (pJ/bit) unless the name says per byte or per command.

    The data path of a bit read by the host is cell -> bank-group mux -> global I/O -> TSV -> I/O; a PIM
    unit at the bank reads only the cell part. Coefficients default to the FGDRAM breakdown
    (hw_params.md section 5).
    """

    cell_act_per_bit: float = 0.11  # ACT+PRE, per bit of the row opened
    cell_access_per_bit: float = 0.44  # column read/write at the cell array
    bg_mux_per_bit: float = 1.01  # column decoder -> bank-group mux
    gio_per_bit: float = 1.23  # bank-group mux -> global I/O mux
    tsv_per_bit: float = 0.5
    io_per_bit: float = 0.3  # interposer / board I/O
    mac_per_byte: float = 0.32  # PIM ALU energy per byte of operand processed
    register_per_bit: float = 0.0  # global-buffer / register write or read (SRAM), per bit
    mode_switch_pj: float = 0.0  # one mode switch
    source: str = ""


@dataclass(frozen=True)
class PimConfig:
    """A PIM device: the DRAM device it lives in plus its units, PIM timing, power, modes and energy."""

    name: str
    source: str
    description: str
    memory: DramConfig
    device: PimDevice
    timing: PimTiming
    power: PimPower
    modes: PimModes
    energy: PimEnergy

    @property
    def n_pcs(self) -> int:
        o = self.memory.organization
        return o.channels * o.pseudo_channels

    @property
    def banks_per_pc(self) -> int:
        o = self.memory.organization
        return o.ranks * o.bank_groups * o.banks_per_group

    @property
    def units_per_pc(self) -> int:
        return self.banks_per_pc // self.device.banks_per_unit

    @property
    def column_bytes(self) -> int:
        return self.memory.organization.transaction_bytes

    @property
    def internal_bandwidth_bytes_per_s(self) -> float:
        """Peak bytes/s the units can read from their banks: units x column / tCCD_AB (memory side only;
        the compute rate is a separate bound, see :meth:`mac_interval_ps`)."""
        tck = self.memory.timing.t_ck_ps
        t_ccd = -(-self.timing.t_ccd_ab_ps // tck) * tck
        return self.n_pcs * self.units_per_pc * self.column_bytes / (t_ccd * 1e-12)

    def mac_interval_ps(self, dtype: str | None = None) -> int:
        """Time between MAC_AB commands in ps: tCCD_AB, or the units' compute time if longer."""
        from .commands import mac_interval_cycles  # local: commands imports this module

        tck = self.memory.timing.t_ck_ps
        return mac_interval_cycles(self, dtype or self.device.dtypes[0]) * tck

    @property
    def external_bandwidth_bytes_per_s(self) -> float:
        return self.memory.peak_bandwidth_bytes_per_s


# ---------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------

_SECTIONS = ("device", "timing", "power", "modes", "energy")
_PRESET_KEYS = ("inherits", "source", "description", "memory", *_SECTIONS)
_BLOCK_KEYS = ("memory", *_SECTIONS)


def _dtypes(node: yt.Node) -> tuple[str, ...]:
    v = node.value
    if isinstance(v, str):
        items = [node]
    elif isinstance(v, list) and v:
        items = v
    else:
        raise node.error(f"expected a list of datatypes ({', '.join(DTYPE_BYTES)}), got {yt.show(v)}")
    out = []
    for item in items:
        out.append(yt.choice(*DTYPE_BYTES)(item))
    return tuple(out)


def _pim_timing(node: yt.Node) -> tuple[str, int]:
    """A PIM timing: a duration ('4ns') or cycles of the memory tCK ({nCK: 4}); resolved later."""
    v = node.value
    if isinstance(v, dict):
        if set(v) != {"nCK"} or not isinstance(v["nCK"].value, int) or isinstance(v["nCK"].value, bool) \
                or v["nCK"].value < 0:
            raise node.error(f"expected cycles like {{nCK: 4}} (a non-negative integer), got {yt.show(v)}")
        return ("nCK", v["nCK"].value)
    if isinstance(v, str):
        try:
            return ("ps", yt.duration()(node))
        except ConfigError:
            raise node.error(f"expected a duration like '4ns' or cycles like {{nCK: 4}}, got {yt.show(v)}") \
                from None
    raise node.error(f"expected a duration like '4ns' or cycles like {{nCK: 4}}, got {yt.show(v)}")


def _energy_per_bit(node: yt.Node) -> float:
    v = node.value
    if isinstance(v, str):
        for suffix in ("/bit", "/b", "/B", "/byte"):
            if v.endswith(suffix):
                v = v[: -len(suffix)]
                break
    try:
        from memsim import units

        out = units.parse_energy_pj(v)
    except ValueError:
        raise node.error(f"expected an energy like '0.44pJ', got {yt.show(node.value)}") from None
    if out != out or out in (float("inf"), float("-inf")):
        raise node.error(f"expected a finite energy, got {yt.show(node.value)}")
    return out


_DEVICE = {
    "banks_per_unit": yt.Field("banks_per_unit", yt.count, True),
    "lanes": yt.Field("lanes", yt.count, True),
    "dtypes": yt.Field("dtypes", _dtypes, True),
    "clock": yt.Field("clock_hz", yt.frequency(positive=True), True),
    "global_buffer": yt.Field("global_buffer_bytes", yt.size(positive=True), True),
    "accumulators": yt.Field("accumulators", yt.count, True),
    "reduction": yt.Field("reduction", yt.choice("lanes", "tree"), True),
    "accumulator_bytes": yt.Field("accumulator_bytes", yt.size(positive=True), True),
}
_TIMING = {
    "tCCD_AB": yt.Field("t_ccd_ab_ps", _pim_timing, True),
    "tCCD_GB": yt.Field("t_ccd_gb_ps", _pim_timing, True),
    "tMODE": yt.Field("t_mode_ps", _pim_timing, True),
    "tMACLAT": yt.Field("t_mac_lat_ps", _pim_timing, True),
}
_POWER = {"act_window_banks": yt.Field("act_window_banks", yt.nonneg_int)}
_MODES = {k: yt.Field(k, yt.nonneg_int) for k in
          ("enter_switches", "exit_switches", "gb_switches", "result_switches", "program_writes")}
_ENERGY = {k: yt.Field(k, _energy_per_bit) for k in
           ("cell_act_per_bit", "cell_access_per_bit", "bg_mux_per_bit", "gio_per_bit", "tsv_per_bit",
            "io_per_bit", "mac_per_byte", "register_per_bit", "mode_switch_pj")}
_ENERGY["source"] = yt.Field("source", yt.any_text)


def library() -> yt.PresetLibrary:
    """The shipped PIM presets (``memsim/presets/pim/*.yaml``)."""
    return yt.preset_library("pim", preset_keys=_PRESET_KEYS, section_names=_SECTIONS)


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def parse_section(block: yt.Node, root: yt.Node) -> PimConfig:
    """Parse a ``pim:`` block (``{preset: NAME, device: ..., memory: ...}``) into a :class:`PimConfig`.

    Raises
    ------
    ConfigError
        Naming the file and YAML path of any unknown, missing, malformed or impossible value.
    """
    memory_block = yt.memory_block  # the DRAM loader's memory-block parser

    lib = library()
    name, layers = yt.resolve_preset(lib, block, allowed=_BLOCK_KEYS, what="a PIM device")
    where = layers.where

    def text(key: str, required: bool) -> str:
        node = yt.scalar(layers, key)
        if node is None:
            if required:
                raise yt.missing(layers, None, key, name)
            return ""
        return yt.text(node) if required else yt.any_text(node)

    source = text("source", True)
    description = text("description", False)

    mem_node = yt.scalar(layers, "memory")
    if mem_node is None:
        raise yt.missing(layers, None, "memory", name)
    if mem_node.value == "shared":
        top = root.value.get("memory") if isinstance(root.value, dict) else None
        if top is None:
            raise mem_node.error("'memory: shared' puts the PIM units into the file's top-level 'memory:' "
                                 "device, but this file has no 'memory:' block")
        memory = memory_block(top)
    elif isinstance(mem_node.value, dict):
        memory = memory_block(mem_node)
    else:
        raise mem_node.error(f"expected a memory block like {{preset: HBM2_2000, ...}} or 'shared' (the "
                             f"file's top-level memory), got {yt.show(mem_node.value)}")

    dev_v, dev_n = yt.parse_fields(layers, "device", _DEVICE, name)
    tim_v, tim_n = yt.parse_fields(layers, "timing", _TIMING, name)
    pow_v, _ = yt.parse_fields(layers, "power", _POWER, name)
    mod_v, _ = yt.parse_fields(layers, "modes", _MODES, name)
    en_v, _ = yt.parse_fields(layers, "energy", _ENERGY, name)

    org = memory.organization
    banks_pc = org.ranks * org.bank_groups * org.banks_per_group
    col = org.transaction_bytes
    bpu = dev_v["banks_per_unit"]
    if not _is_pow2(bpu) or bpu > banks_pc:
        raise dev_n["banks_per_unit"].error(
            f"banks_per_unit must be a power of two that divides the {banks_pc} banks of a pseudo-channel "
            f"of {memory.name}, got {bpu}")
    gb = dev_v["global_buffer_bytes"]
    if gb % col:
        raise dev_n["global_buffer"].error(
            f"global_buffer must be a whole number of column accesses ({col} B for {memory.name}), got {gb} B")
    for dt in dev_v["dtypes"]:
        if col % DTYPE_BYTES[dt] or gb % DTYPE_BYTES[dt]:
            raise dev_n["dtypes"].error(f"{dt} elements do not divide a {col} B column access")
    acc = dev_v["accumulator_bytes"]
    if acc > col or col % acc:
        raise dev_n["accumulator_bytes"].error(
            f"accumulator_bytes must divide the {col} B column access (results are read out in columns), "
            f"got {acc} B")
    tck = memory.timing.t_ck_ps
    timing = {}
    for key, spec in _TIMING.items():
        kind, v = tim_v[spec.field]
        timing[spec.field] = v * tck if kind == "nCK" else v
    if timing["t_ccd_ab_ps"] <= 0:
        raise tim_n["tCCD_AB"].error("tCCD_AB must be positive")
    if timing["t_ccd_ab_ps"] < memory.timing.t_ccd_s_ps:
        raise tim_n["tCCD_AB"].error(
            f"tCCD_AB ({timing['t_ccd_ab_ps']} ps) must be >= the memory's tCCD_S ({memory.timing.t_ccd_s_ps} ps)")
    if timing["t_ccd_gb_ps"] <= 0:
        raise tim_n["tCCD_GB"].error("tCCD_GB must be positive")
    del where
    return PimConfig(
        name=name, source=source, description=description, memory=memory,
        device=PimDevice(**dev_v), timing=PimTiming(**timing), power=PimPower(**pow_v),
        modes=PimModes(**mod_v), energy=PimEnergy(**en_v))


def get_pim_preset(name: str) -> PimConfig:
    """A shipped PIM preset as a validated :class:`PimConfig` (with its own ``memory:`` device)."""
    return _cached_preset(name)


def list_pim_presets() -> list[tuple[str, str]]:
    """``(name, source)`` of every shipped PIM preset."""
    lib = library()
    out = []
    for n in lib.names():
        node = lib.layers(n).scalars.get("source")
        out.append((n, node.value if node is not None else ""))
    return out


def _cached_preset(name: str) -> PimConfig:
    if name not in _PRESET_CACHE:
        _PRESET_CACHE[name] = yt.load_block({"preset": name}, parse_section, key="pim")
    return _PRESET_CACHE[name]


_PRESET_CACHE: dict[str, PimConfig] = {}


def load_pim_config(path: str, overrides: dict[str, Any] | None = None) -> PimConfig:
    """The ``pim:`` section of a hardware config file (``overrides`` as in ``load_hw_config``)."""
    from memsim.config import load_hw_config

    hw = load_hw_config(path, overrides=overrides)
    return hw.section("pim")
