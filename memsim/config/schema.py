"""Frozen, validated configuration objects for DRAM-family memories.

Inside memsim every time is an integer number of picoseconds and every size an integer number of bytes;
field names carry the unit (``t_rcdrd_ps``, ``row_bytes``). The YAML loader (``memsim.config.loader``)
is the only place that parses units; these classes only hold already-converted values.

Objects are immutable (``frozen=True``) and hashable, so they can be used as cache keys.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Names of the per-command timing parameters as written in YAML (JEDEC spelling) → field name.
TIMING_YAML_NAMES: dict[str, str] = {
    "tCK": "t_ck_ps",
    "CL": "cl_ps",
    "CWL": "cwl_ps",
    "tRCDRD": "t_rcdrd_ps",
    "tRCDWR": "t_rcdwr_ps",
    "tRP": "t_rp_ps",
    "tRAS": "t_ras_ps",
    "tRC": "t_rc_ps",
    "tCCD_S": "t_ccd_s_ps",
    "tCCD_L": "t_ccd_l_ps",
    "tCCD_R": "t_ccd_r_ps",
    "tRRD_S": "t_rrd_s_ps",
    "tRRD_L": "t_rrd_l_ps",
    "tFAW": "t_faw_ps",
    "tWR": "t_wr_ps",
    "tWTR_S": "t_wtr_s_ps",
    "tWTR_L": "t_wtr_l_ps",
    "tRTP": "t_rtp_ps",
    "tRTW": "t_rtw_ps",
    "tRFC": "t_rfc_ps",
    "tRFCpb": "t_rfcpb_ps",
    "tREFI": "t_refi_ps",
    "tREFIpb": "t_refipb_ps",
}


@dataclass(frozen=True)
class DramOrganization:
    """How one device is built. Counts are per parent level (banks per bank group, and so on).

    ``channels`` are independent controllers; a channel may be split into ``pseudo_channels`` that share
    the channel's command buses but have their own data bus and banks (HBM pseudo-channel mode);
    ``ranks`` are ranks (DDR) or stack IDs (HBM3 SID) inside one (pseudo-)channel.
    """

    channels: int
    pseudo_channels: int  # per channel; 1 when the standard has none
    ranks: int  # ranks or SIDs per pseudo-channel
    bank_groups: int  # per rank
    banks_per_group: int
    rows: int  # per bank
    columns: int  # column addresses per row, each bus_width_bits wide
    bus_width_bits: int  # data bus of one (pseudo-)channel
    burst_length: int  # beats per column command
    data_rate_bps: int  # per pin, bits per second
    density_gbit: int = 0  # per die; informational (selects tRFC in some presets)

    @property
    def transaction_bytes(self) -> int:
        """Bytes moved by one column command on one (pseudo-)channel."""
        return self.bus_width_bits * self.burst_length // 8

    @property
    def row_bytes(self) -> int:
        return self.columns * self.bus_width_bits // 8

    @property
    def bursts_per_row(self) -> int:
        return self.row_bytes // self.transaction_bytes

    @property
    def banks_per_rank(self) -> int:
        return self.bank_groups * self.banks_per_group

    @property
    def total_banks(self) -> int:
        return self.channels * self.pseudo_channels * self.ranks * self.banks_per_rank

    @property
    def capacity_bytes(self) -> int:
        return self.total_banks * self.rows * self.row_bytes

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        return self.channels * self.pseudo_channels * self.bus_width_bits * self.data_rate_bps / 8


@dataclass(frozen=True)
class DramTiming:
    """Timing parameters, all in integer picoseconds. Optional ones are resolved by the loader
    (``t_ccd_r_ps`` defaults to ``t_ccd_s_ps``; ``t_rtw_ps`` to CL + burst + 2 tCK - CWL;
    per-bank refresh values are 0 when the standard has none)."""

    t_ck_ps: int
    cl_ps: int
    cwl_ps: int
    t_rcdrd_ps: int
    t_rcdwr_ps: int
    t_rp_ps: int
    t_ras_ps: int
    t_rc_ps: int
    t_ccd_s_ps: int
    t_ccd_l_ps: int
    t_ccd_r_ps: int
    t_rrd_s_ps: int
    t_rrd_l_ps: int
    t_faw_ps: int
    t_wr_ps: int
    t_wtr_s_ps: int
    t_wtr_l_ps: int
    t_rtp_ps: int
    t_rtw_ps: int
    t_rfc_ps: int
    t_rfcpb_ps: int
    t_refi_ps: int
    t_refipb_ps: int


@dataclass(frozen=True)
class ControllerConfig:
    """Memory-controller behaviour, per channel."""

    read_queue: int = 32  # transactions
    write_queue: int = 32  # transactions
    write_high_watermark: float = 0.8  # enter write-drain mode above this fill fraction
    write_low_watermark: float = 0.2  # leave it below this (when reads are waiting)
    scheduler: str = "frfcfs"  # "frfcfs" | "fcfs"
    frfcfs_cap: int = 0  # max row hits served ahead of an older miss to the same bank; 0 = no cap
    row_policy: str = "open"  # "open" | "closed" | "timeout"
    row_timeout_ps: int = 0  # idle time after which "timeout" closes a row
    refresh: str = "all-bank"  # "all-bank" | "per-bank" | "none"
    refresh_level: str = "rank"  # "rank" | "pseudo_channel": the unit one all-bank refresh covers
    refresh_stagger: bool = True  # spread the refresh units' first due times over one tREFI
    separate_row_column_bus: bool = False  # one row and one column command per cycle (HBM)
    posted_writes: bool = False  # acknowledge writes on acceptance instead of at the WR command
    read_from_write_queue: bool = True  # a read of an address with a pending write is answered at once
    precharge_guard: bool = True  # never close a row that a queued request still hits
    active_buffer: int = 0  # Ramulator-2-style: requests whose ACT issued move here (0 = no such buffer)
    bank_queue_depth: int = 0  # DRAMSim3-style per-bank command queues fed from the transaction queue


@dataclass(frozen=True)
class AddressMapping:
    """How a physical byte address selects channel, pseudo-channel, rank, bank group, bank, row, column.

    ``scheme`` is one of:

    * a DRAMSim3-style string of two-letter fields, most significant first, e.g. ``"rorabgbachco"``
      (fields: ro, ra, bg, ba, ch, pc, co);
    * a Ramulator-style name such as ``"RoBaRaCoCh"`` (levels from most to least significant);
    * ``"mop4clxor"``: Ramulator 2.1's cache-line channel interleave followed by MOP4CLXOR;
    * ``"custom"``: ``bit_order`` lists the field of every address bit above the transaction offset,
      least significant first, e.g. ``("co", "co", "ch", ...)``.
    """

    scheme: str = "rorabgbachco"
    bit_order: tuple[str, ...] = ()
    channel_interleave_bits: int = 1  # mop4clxor only: log2(transactions kept together in a channel)


@dataclass(frozen=True)
class DramEnergy:
    """Energy per command and background power, with the source of the numbers.

    ``act_pj`` covers one ACT+PRE pair on one bank; ``read_pj_per_bit`` / ``write_pj_per_bit`` cover
    a column access including the I/O; ``refresh_pj`` is one all-bank refresh of one refresh unit.
    """

    act_pj: float = 0.0
    read_pj_per_bit: float = 0.0
    write_pj_per_bit: float = 0.0
    refresh_pj: float = 0.0
    background_mw_per_channel: float = 0.0
    source: str = ""


@dataclass(frozen=True)
class DramConfig:
    """A complete DRAM-family device: what the engine needs, nothing else."""

    name: str
    standard: str
    source: str
    organization: DramOrganization
    timing: DramTiming
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    mapping: AddressMapping = field(default_factory=AddressMapping)
    energy: DramEnergy = field(default_factory=DramEnergy)
    line_bytes: int = 64  # size of one front-end request (a cache line)

    @property
    def peak_bandwidth_bytes_per_s(self) -> float:
        return self.organization.peak_bandwidth_bytes_per_s


def queue_entries_per_channel(org: DramOrganization, ctl: ControllerConfig) -> int:
    """Transactions one channel's controller can hold at once: read and write queues plus the active buffer
    or the per-bank command queues (whichever the structure has)."""
    banks = org.total_banks // org.channels
    return ctl.read_queue + ctl.write_queue + max(ctl.active_buffer, banks * ctl.bank_queue_depth)
