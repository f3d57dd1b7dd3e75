"""Timing rules as data: a DramConfig compiled into the integer tables the kernel reads.

A rule ``(prev, next, level, cycles, sibling)`` says: after command ``prev`` is issued to a bank, command
``next`` may not be issued to any bank under the same node of ``level`` (or, with ``sibling``, under the
*other* nodes of that level that share its parent) for ``cycles`` memory-clock cycles. The kernel keeps,
for every node of every level, the earliest cycle each command may issue; a candidate command is ready
when it is ready at all five levels on its bank's path. tFAW is a window rule kept separately.

What is simplified
------------------
* Times are rounded *up* to whole cycles of tCK (a 14 ns tRCD at tCK 0.83 ns is 17 cycles).
* ACT is a one-cycle command on the row bus (HBM's two-cycle ACT is not modelled).
* Rank-to-rank data-bus turnaround on the same channel uses tCCD_R only (no separate tRTRS).
* DDR5's tCCD_L_WR and same-bank refresh variants are not modelled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config.schema import DramConfig

# command codes
ACT, PRE, RD, WR = 0, 1, 2, 3
N_CMDS = 4
CMD_NAMES = ("ACT", "PRE", "RD", "WR")
# levels, top to bottom
L_CH, L_PC, L_RK, L_BG, L_BK = 0, 1, 2, 3, 4
N_LEVELS = 5
LEVEL_NAMES = ("channel", "pseudo_channel", "rank", "bank_group", "bank")

# indices into the scalar parameter vector ``par``
(P_NCH, P_NPC, P_NRK, P_NBG, P_NBA, P_CL, P_CWL, P_BURST, P_RP, P_RFC, P_RFCPB, P_REFI, P_REFIPB,
 P_FAW, P_RQ, P_WQ, P_WHI, P_WLO, P_SCHED, P_CAP, P_ROWPOL, P_TIMEOUT, P_REFRESH, P_REFLEVEL,
 P_STAGGER, P_SEPBUS, P_POSTED, P_FWD, P_GUARD, P_TXPERREQ, P_RTP, P_WRREC, P_ACTBUF, P_BQD,
 P_RULES_OF) = range(35)
N_PAR = P_RULES_OF + N_CMDS + 1  # rules of command k are rows par[P_RULES_OF + k] .. par[P_RULES_OF + k + 1]

SCHED_FRFCFS, SCHED_FCFS, SCHED_FIRST_READY = 0, 1, 2
ROW_OPEN, ROW_CLOSED, ROW_TIMEOUT = 0, 1, 2
REF_ALLBANK, REF_PERBANK, REF_NONE = 0, 1, 2


def cycles(ps: int, tck_ps: int) -> int:
    """Whole cycles needed to cover ``ps`` picoseconds (rounded up)."""
    return -(-int(ps) // int(tck_ps))


@dataclass(frozen=True)
class CompiledTiming:
    """Integer tables for the kernel. All times in memory-clock cycles."""

    par: np.ndarray  # int64[N_PAR]
    rules: np.ndarray  # int64[n_rules, 5]: prev, next, level, cycles, sibling; the kernel's table
    tck_ps: int
    burst_cycles: int
    #: every rule, including those another rule implies (``rules`` leaves those out; see :func:`implied`)
    all_rules: np.ndarray

    def describe(self) -> list[str]:
        kept = {tuple(r) for r in self.rules.tolist()}
        return [f"{CMD_NAMES[p]}->{CMD_NAMES[n]} @{LEVEL_NAMES[lv]}{' (sibling)' if s else ''}: {c} nCK"
                + ("" if (p, n, lv, c, s) in kept else " (implied by a wider rule)")
                for p, n, lv, c, s in self.all_rules.tolist()]


def implied(rule: tuple, by: tuple) -> bool:
    """Whether rule ``by`` makes ``rule`` redundant: the same pair of commands, ``by`` not a sibling rule and
    at a level above (a node there contains every bank ``rule`` constrains: the issuing bank's node, or with
    ``sibling`` its node's siblings under the same parent), and at least as long. Both raise the earliest
    issue time of the same command, and a command is ready only when it is ready at every level on its
    bank's path, so dropping ``rule`` changes no readiness (measured: one rule fewer per read and per
    write on every reference configuration, two on DRAMSim3 HBM2, whose tCCD_L equals the burst)."""
    p, n, lv, cyc, _sibling = rule
    return by[0] == p and by[1] == n and by[4] == 0 and by[2] < lv and by[3] >= cyc


def compile_timing(cfg: DramConfig) -> CompiledTiming:
    org, t, ctl = cfg.organization, cfg.timing, cfg.controller
    tck = t.t_ck_ps
    c = lambda ps: cycles(ps, tck)  # noqa: E731
    # beats per clock are an integer (2 for DDR, 4 for HBM3's quad-rate data); datasheets round tCK
    # (0.833 ns for DDR4-2400), so take the nearest integer rather than dividing exact picoseconds.
    beats_per_clock = max(1, round(org.data_rate_bps * tck / 10**12))
    bl = max(1, -(-org.burst_length // beats_per_clock))
    cl, cwl = c(t.cl_ps), c(t.cwl_ps)
    wr_to_rd_s = cwl + bl + c(t.t_wtr_s_ps)
    wr_to_rd_l = cwl + bl + c(t.t_wtr_l_ps)
    wr_to_pre = cwl + bl + c(t.t_wr_ps)
    rules = [
        (ACT, ACT, L_BK, c(t.t_rc_ps), 0),
        (ACT, PRE, L_BK, c(t.t_ras_ps), 0),
        (ACT, RD, L_BK, c(t.t_rcdrd_ps), 0),
        (ACT, WR, L_BK, c(t.t_rcdwr_ps), 0),
        (ACT, ACT, L_BG, c(t.t_rrd_l_ps), 0),
        (ACT, ACT, L_RK, c(t.t_rrd_s_ps), 0),
        (PRE, ACT, L_BK, c(t.t_rp_ps), 0),
        (RD, RD, L_BG, c(t.t_ccd_l_ps), 0),
        (RD, RD, L_RK, c(t.t_ccd_s_ps), 0),
        (RD, RD, L_PC, bl, 0),  # the data bus is busy for one burst
        (RD, WR, L_PC, c(t.t_rtw_ps), 0),
        (RD, PRE, L_BK, c(t.t_rtp_ps), 0),
        (WR, WR, L_BG, c(t.t_ccd_l_ps), 0),
        (WR, WR, L_RK, c(t.t_ccd_s_ps), 0),
        (WR, WR, L_PC, bl, 0),
        (WR, RD, L_BG, wr_to_rd_l, 0),
        (WR, RD, L_RK, wr_to_rd_s, 0),
        (WR, PRE, L_BK, wr_to_pre, 0),
    ]
    if org.ranks > 1:
        ccd_r = max(c(t.t_ccd_r_ps), bl)
        rules += [(RD, RD, L_RK, ccd_r, 1), (WR, WR, L_RK, ccd_r, 1)]
    # grouped by the command that triggers them, so that issuing a command visits only its own rules
    rules = sorted((r for r in rules if r[3] > 0), key=lambda r: r[0])
    # the issue times each command raises, without the rules another one implies (fewer writes per command)
    kernel_rules = [r for r in rules if not any(implied(r, q) for q in rules if q is not r)]
    par = np.zeros(N_PAR, dtype=np.int64)
    par[P_NCH] = org.channels
    par[P_NPC] = org.pseudo_channels
    par[P_NRK] = org.ranks
    par[P_NBG] = org.bank_groups
    par[P_NBA] = org.banks_per_group
    par[P_CL] = cl
    par[P_CWL] = cwl
    par[P_BURST] = bl
    par[P_RP] = c(t.t_rp_ps)
    par[P_RFC] = c(t.t_rfc_ps)
    par[P_RFCPB] = c(t.t_rfcpb_ps)
    par[P_REFI] = t.t_refi_ps // tck  # interval: rounded down so refresh is never late
    par[P_REFIPB] = t.t_refipb_ps // tck
    par[P_FAW] = c(t.t_faw_ps)
    par[P_RQ] = ctl.read_queue
    par[P_WQ] = ctl.write_queue
    par[P_WHI] = int(np.floor(ctl.write_high_watermark * ctl.write_queue))
    par[P_WLO] = int(np.ceil(ctl.write_low_watermark * ctl.write_queue))
    par[P_SCHED] = {"frfcfs": SCHED_FRFCFS, "fcfs": SCHED_FCFS, "first-ready": SCHED_FIRST_READY}[ctl.scheduler]
    par[P_CAP] = ctl.frfcfs_cap
    par[P_ROWPOL] = {"open": ROW_OPEN, "closed": ROW_CLOSED, "timeout": ROW_TIMEOUT}[ctl.row_policy]
    par[P_TIMEOUT] = c(ctl.row_timeout_ps)
    par[P_REFRESH] = {"all-bank": REF_ALLBANK, "per-bank": REF_PERBANK, "none": REF_NONE}[ctl.refresh]
    par[P_REFLEVEL] = {"rank": L_RK, "pseudo_channel": L_PC}[ctl.refresh_level]
    par[P_STAGGER] = int(ctl.refresh_stagger)
    par[P_SEPBUS] = int(ctl.separate_row_column_bus)
    par[P_POSTED] = int(ctl.posted_writes)
    par[P_FWD] = int(ctl.read_from_write_queue)
    par[P_GUARD] = int(ctl.precharge_guard)
    par[P_TXPERREQ] = max(1, cfg.line_bytes // org.transaction_bytes)
    par[P_RTP] = c(t.t_rtp_ps)
    par[P_WRREC] = wr_to_pre
    par[P_ACTBUF] = ctl.active_buffer
    par[P_BQD] = ctl.bank_queue_depth
    for k in range(N_CMDS + 1):
        par[P_RULES_OF + k] = sum(1 for r in kernel_rules if r[0] < k)
    return CompiledTiming(par, np.array(kernel_rules, dtype=np.int64).reshape(-1, 5), tck, bl,
                          np.array(rules, dtype=np.int64).reshape(-1, 5))
