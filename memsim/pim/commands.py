"""PIM commands and their timing rules as data: a PimConfig compiled into the kernel's integer tables.

A command targets a set of banks of one pseudo-channel (PC), written ``(first, stride, count)`` over the
PC's bank indices ``rank * banks_per_rank + bank_group * banks_per_group + bank``: a single bank, one bank
group, every bank, or every ``banks_per_unit``-th bank (the banks of one parity that the units of a bank
pair read in one all-bank MAC). A rule ``(prev, next, level, cycles)`` says: after ``prev`` is issued, ``next``
may not issue to a bank under the same node of ``level`` (bank, bank group, or the whole PC) for ``cycles``
memory-clock cycles. The rules are generated from the DRAM timing (tRCD, tRAS, tRP, tRC, tRRD, tCCD,
tRTP, tWR, tWTR, tRTW) and the PIM timing (tCCD_AB, tCCD_GB, tMODE, tMACLAT) of the config.

Commands
--------
========  ==================================================================================
ACT_SB    activate one row in one bank
ACT_BG    activate one row in every bank of a bank group (AiM ``G_ACT``)
ACT_AB    activate one row in every bank (HBM-PIM all-bank mode, AttAcc ``ACTAB``)
PRE_SB    precharge one bank;  PRE_AB: every bank (``PREA``)
MAC_SB    one column of one bank into its unit;  MAC_AB: one column of every targeted bank (``MACAB``,
          AiM ``COMP``); also the column reads of element-wise operators (load / add / mul / ReLU)
WR_GB     one column of the input vector into the PC's global buffer (``WRGB``, AiM ``GWRITE``, HBM-PIM
          GRF_A write); also instruction-memory writes
RD_RES    read one column of results out of the units (``READRES``, ``RD_MAC``)
MODE      switch between normal and PIM operation (costs tMODE)
ST_AB     store one column of unit registers into every targeted bank (element-wise results)
RD_SB     / WR_SB: an ordinary column read / write of one bank
========  ==================================================================================

Activations also obey a weighted window: an activate of ``w`` banks may issue only when the banks
activated in the trailing tFAW window plus ``w`` stay within ``act_window_banks`` (0 disables it); an
activate larger than the window needs an empty window.

What is simplified
------------------
* Times are whole memory-clock cycles, rounded up (as the DRAM engine).
* Command/address bus slots: one command per clock per PC, in program order.
* A MAC_AB reads from every targeted bank in the same cycle (no intra-PC skew).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from ..dram.timing import P_CL, P_CWL, compile_timing, cycles
from .config import DTYPE_BYTES, PimConfig

(ACT_SB, ACT_BG, ACT_AB, PRE_SB, PRE_AB, MAC_SB, MAC_AB, WR_GB, RD_RES, MODE, ST_AB, RD_SB, WR_SB) = range(13)
N_CMDS = 13
CMD_NAMES = ("ACT_SB", "ACT_BG", "ACT_AB", "PRE_SB", "PRE_AB", "MAC_SB", "MAC_AB", "WR_GB", "RD_RES", "MODE",
             "ST_AB", "RD_SB", "WR_SB")
ACTS = (ACT_SB, ACT_BG, ACT_AB)
PRES = (PRE_SB, PRE_AB)
COL_RD = (MAC_SB, MAC_AB, RD_SB)  # column reads of a bank
COL_WR = (ST_AB, WR_SB)  # column writes of a bank

LV_BANK, LV_BG, LV_PC = 0, 1, 2
LEVEL_NAMES = ("bank", "bank_group", "pc")

# scalar parameters of the kernel
(P_NB, P_BPG, P_FAW, P_FAW_LIMIT, P_REFI, P_RFC, P_RP, P_REFRESH, P_RULES_OF) = range(9)
P_LAT_OF = P_RULES_OF + N_CMDS + 1  # completion latency of each command (cycles after issue)
N_PAR = P_LAT_OF + N_CMDS

#: datasheet tCK values are rounded (0.833 ns for 1.2 GHz); a compute time within this fraction of a
#: whole number of memory cycles counts as that number of cycles
CLOCK_ROUNDING = Fraction(1, 100)


def mac_interval_cycles(cfg: PimConfig, dtype: str) -> int:
    """Memory cycles between two MAC_AB commands: tCCD_AB, or the units' compute time if longer.

    A unit processes ``lanes`` elements per PIM clock; one column holds ``column_bytes / element_bytes``
    elements.
    """
    tck = cfg.memory.timing.t_ck_ps
    elems = cfg.column_bytes // DTYPE_BYTES[dtype]
    pim_cycles = -(-elems // cfg.device.lanes)
    compute = Fraction(pim_cycles * 10**12, cfg.device.clock_hz) / tck  # in memory cycles
    whole = int(compute)
    if compute - whole > CLOCK_ROUNDING * compute:
        whole += 1
    return max(cycles(cfg.timing.t_ccd_ab_ps, tck), whole, 1)


@dataclass(frozen=True)
class CompiledPim:
    """Integer tables for the kernel; all times in memory-clock cycles."""

    par: np.ndarray  # int64[N_PAR]
    rules: np.ndarray  # int64[n, 4]: prev, next, level, cycles (sorted by prev)
    bg_of_bank: np.ndarray  # int64[banks per PC]
    tck_ps: int
    burst_cycles: int
    cl: int
    cwl: int
    mac_cycles: int
    banks: int
    banks_per_group: int

    def describe(self) -> list[str]:
        return [f"{CMD_NAMES[p]}->{CMD_NAMES[n]} @{LEVEL_NAMES[lv]}: {c} nCK" for p, n, lv, c in self.rules.tolist()]


@lru_cache(maxsize=256)
def compile_pim(cfg: PimConfig, dtype: str) -> CompiledPim:
    """Compile the rule table of ``cfg`` for elements of ``dtype`` (cached; treat the arrays as read-only)."""
    mem = cfg.memory
    t = mem.timing
    org = mem.organization
    ct = compile_timing(mem)
    tck = t.t_ck_ps
    c = lambda ps: cycles(ps, tck)  # noqa: E731
    bl = int(ct.burst_cycles)
    cl, cwl = int(ct.par[P_CL]), int(ct.par[P_CWL])
    mac = mac_interval_cycles(cfg, dtype)
    data = max(c(t.t_ccd_s_ps), bl)  # one burst on the data bus
    wr_rd_l = cwl + bl + c(t.t_wtr_l_ps)
    wr_rd_s = cwl + bl + c(t.t_wtr_s_ps)
    wr_pre = cwl + bl + c(t.t_wr_ps)
    rtw = c(t.t_rtw_ps)
    mac_lat = c(cfg.timing.t_mac_lat_ps)
    mode = c(cfg.timing.t_mode_ps)
    rules: list[tuple[int, int, int, int]] = []
    for a in ACTS:
        for a2 in ACTS:
            rules += [(a, a2, LV_BANK, c(t.t_rc_ps)), (a, a2, LV_BG, c(t.t_rrd_l_ps)), (a, a2, LV_PC, c(t.t_rrd_s_ps))]
        rules += [(a, p, LV_BANK, c(t.t_ras_ps)) for p in PRES]
        rules += [(a, r, LV_BANK, c(t.t_rcdrd_ps)) for r in COL_RD]
        rules += [(a, w, LV_BANK, c(t.t_rcdwr_ps)) for w in COL_WR]
    for p in PRES:
        rules += [(p, a, LV_BANK, c(t.t_rp_ps)) for a in ACTS]
    for r in COL_RD:
        rules += [(r, p, LV_BANK, c(t.t_rtp_ps)) for p in PRES]
        rules += [(r, w, LV_PC, rtw) for w in (*COL_WR, WR_GB)]
        rules += [(r, RD_RES, LV_PC, mac_lat if r != RD_SB else data), (r, MODE, LV_PC, mac_lat)]
    for w in COL_WR:
        rules += [(w, p, LV_BANK, wr_pre) for p in PRES]
        rules += [(w, r, LV_PC, wr_rd_l) for r in COL_RD]
        rules += [(w, RD_RES, LV_PC, wr_rd_s), (w, MODE, LV_PC, cwl + bl), (w, WR_GB, LV_PC, data)]
    # column-to-column pacing
    rules += [(MAC_AB, MAC_AB, LV_PC, mac), (MAC_SB, MAC_SB, LV_BANK, mac),
              (MAC_SB, MAC_SB, LV_BG, c(t.t_ccd_l_ps)), (MAC_SB, MAC_SB, LV_PC, c(t.t_ccd_s_ps)),
              (MAC_AB, MAC_SB, LV_PC, max(c(t.t_ccd_l_ps), mac)), (MAC_SB, MAC_AB, LV_PC, max(c(t.t_ccd_l_ps), mac)),
              (RD_SB, RD_SB, LV_BG, c(t.t_ccd_l_ps)), (RD_SB, RD_SB, LV_PC, data),
              (RD_SB, MAC_AB, LV_PC, c(t.t_ccd_l_ps)), (RD_SB, MAC_SB, LV_PC, c(t.t_ccd_l_ps)),
              (MAC_AB, RD_SB, LV_PC, c(t.t_ccd_l_ps)), (MAC_SB, RD_SB, LV_PC, c(t.t_ccd_l_ps)),
              (ST_AB, ST_AB, LV_PC, max(c(t.t_ccd_l_ps), mac)), (WR_SB, WR_SB, LV_BG, c(t.t_ccd_l_ps)),
              (WR_SB, WR_SB, LV_PC, data), (ST_AB, WR_SB, LV_PC, c(t.t_ccd_l_ps)), (WR_SB, ST_AB, LV_PC, c(t.t_ccd_l_ps))]
    # global buffer, results, modes
    rules += [(WR_GB, WR_GB, LV_PC, cycles(cfg.timing.t_ccd_gb_ps, tck)), (WR_GB, RD_RES, LV_PC, wr_rd_s),
              (WR_GB, MODE, LV_PC, cwl + bl)]
    rules += [(WR_GB, r, LV_PC, wr_rd_l) for r in COL_RD]
    rules += [(WR_GB, w, LV_PC, data) for w in COL_WR]
    rules += [(RD_RES, RD_RES, LV_PC, data), (RD_RES, WR_GB, LV_PC, rtw), (RD_RES, MODE, LV_PC, cl + bl)]
    rules += [(RD_RES, r, LV_PC, data) for r in COL_RD]
    rules += [(RD_RES, w, LV_PC, rtw) for w in COL_WR]
    rules += [(MODE, n, LV_PC, mode) for n in range(N_CMDS)]
    rules = sorted((r for r in rules if r[3] > 0), key=lambda r: (r[0], r[1], r[2]))
    nb = org.ranks * org.bank_groups * org.banks_per_group
    par = np.zeros(N_PAR, dtype=np.int64)
    par[P_NB] = nb
    par[P_BPG] = org.banks_per_group
    par[P_FAW] = c(t.t_faw_ps)
    par[P_FAW_LIMIT] = cfg.power.act_window_banks
    par[P_REFI] = t.t_refi_ps // tck
    par[P_RFC] = c(t.t_rfc_ps)
    par[P_RP] = c(t.t_rp_ps)
    par[P_REFRESH] = 0 if mem.controller.refresh == "none" else 1
    for k in range(N_CMDS + 1):
        par[P_RULES_OF + k] = sum(1 for r in rules if r[0] < k)
    lat = {RD_RES: cl + bl, RD_SB: cl + bl, WR_SB: cwl + bl, ST_AB: cwl + bl, WR_GB: cwl + bl,
           MAC_AB: mac_lat, MAC_SB: mac_lat, MODE: mode}
    for k in range(N_CMDS):
        par[P_LAT_OF + k] = lat.get(k, 1)
    bg_of_bank = (np.arange(nb, dtype=np.int64) // org.banks_per_group).astype(np.int64)
    return CompiledPim(par=par, rules=np.array(rules, dtype=np.int64).reshape(-1, 4), bg_of_bank=bg_of_bank,
                       tck_ps=tck, burst_cycles=bl, cl=cl, cwl=cwl, mac_cycles=mac, banks=nb,
                       banks_per_group=org.banks_per_group)
