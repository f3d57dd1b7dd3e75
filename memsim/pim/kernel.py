"""The PIM command-timing kernel: in-order, event-driven issue of per-pseudo-channel command streams.

``run_streams`` times several independent command streams (one per pseudo-channel, PC). Each stream is
issued strictly in program order, at most one command per memory clock; a command issues at the earliest
cycle at which every timing rule of :mod:`memsim.pim.commands` allows it on every bank it targets, and the
weighted activation window (tFAW / power limit) has room. Time jumps straight to that cycle.

Refresh: every tREFI the PC is refreshed all-bank. When the next command could only issue at or after
the due cycle, the kernel precharges the open banks at the earliest legal cycle (implicit PRE_AB, which
obeys tRAS / tRTP / tWR), refreshes for tRFC (nothing issues meanwhile), then re-activates the rows that
were open (implicit ACT_AB) so that the stream continues where it was.

The kernel is a pure function over arrays (no globals, no I/O). Its plain-Python twin is
``tests/pim_twin.py``, a cycle-by-cycle model that checks every rule against the history of issued
commands; ``tests/test_pim_kernel.py`` checks that both give identical issue cycles.

What is simplified
------------------
* The implicit re-activation after a refresh is not counted in the activation window.
* Refresh is never postponed or pulled in, and all PCs refresh at the same cycles (multiples of tREFI).
  ``run`` requires tREFI > 2 (tRP + tRFC + the longest rule), which every real device meets, so that a
  command delayed by a refresh always issues before the next one.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..jitcache import layout_of
from . import commands
from .commands import (ACT_AB, LV_BG, LV_PC, N_CMDS, P_BPG, P_FAW, P_FAW_LIMIT, P_LAT_OF, P_NB, P_REFI,
                       P_REFRESH, P_RFC, P_RP, P_RULES_OF, PRE_AB, PRE_SB)

INF = np.int64(1) << np.int64(60)

# the constants the kernel compiles in from ``commands``: an omitted default argument of ``run_streams``, and
# so part of the signature its cached build is filed under (see ``memsim.jitcache``)
PIM_LAYOUT = layout_of(commands)

# per-stream statistics
ST_END, ST_REFRESHES, ST_IMPLICIT_ACTS, ST_REFRESH_CYCLES, ST_ISSUED = 0, 1, 2, 3, 4
N_ST = 5


@njit(cache=True, inline="always")
def _apply_rules(par, rules, bg_of_bank, pc_nxt, bg_nxt, bank_nxt, cmd, t0, banks, nbanks):
    """Raise the earliest issue cycles that command ``cmd`` at cycle ``t0`` on ``banks[:nbanks]`` implies,
    rule by rule (pseudo-channel, bank-group or bank level)."""
    for r in range(par[P_RULES_OF + cmd], par[P_RULES_OF + cmd + 1]):
        nc = rules[r, 1]
        lv = rules[r, 2]
        nt = t0 + rules[r, 3]
        if lv == LV_PC:
            if pc_nxt[nc] < nt:
                pc_nxt[nc] = nt
        elif lv == LV_BG:
            for i in range(nbanks):
                g = bg_of_bank[banks[i]]
                if bg_nxt[g, nc] < nt:
                    bg_nxt[g, nc] = nt
        else:
            for i in range(nbanks):
                b = banks[i]
                if bank_nxt[b, nc] < nt:
                    bank_nxt[b, nc] = nt


@njit(cache=True)
def run_streams(par, rules, bg_of_bank, cmd, first, stride, count, row, starts, issue_out, stats_out,
                _layout=PIM_LAYOUT):
    """Time the command streams ``starts[s] .. starts[s + 1]`` of ``cmd`` / ``first`` / ``stride`` /
    ``count`` / ``row``; write each command's issue cycle to ``issue_out`` and per-stream statistics to
    ``stats_out[s]``. Returns 0, or -1 - k when command k targets a bank outside the PC. ``_layout``: never
    passed (see ``PIM_LAYOUT``)."""
    nb = par[P_NB]
    nbg = nb // par[P_BPG]
    faw = par[P_FAW]
    limit = par[P_FAW_LIMIT]
    ring_len = limit if limit > 0 else 1
    refi = par[P_REFI]
    refresh_on = par[P_REFRESH] != 0
    t_ref = par[P_RFC]
    t_rp = par[P_RP]
    tb = np.empty(nb, dtype=np.int64)  # targeted banks of the current command
    ob = np.empty(nb, dtype=np.int64)  # open banks (refresh)
    for s in range(starts.shape[0] - 1):
        bank_nxt = np.zeros((nb, N_CMDS), dtype=np.int64)
        bg_nxt = np.zeros((nbg, N_CMDS), dtype=np.int64)
        pc_nxt = np.zeros(N_CMDS, dtype=np.int64)
        open_row = np.full(nb, -1, dtype=np.int64)
        ring_t = np.zeros(ring_len, dtype=np.int64)  # most recent activations: ring_t[(head - i) % len]
        ring_w = np.zeros(ring_len, dtype=np.int64)
        ring_n = 0
        head = -1
        last = np.int64(-1)
        due = refi if refresh_on else INF
        end = np.int64(0)
        n_ref = 0
        n_impl = 0
        ref_cycles = 0
        for k in range(starts[s], starts[s + 1]):
            c = cmd[k]
            n = count[k]
            for i in range(n):
                b = first[k] + i * stride[k]
                if b < 0 or b >= nb:
                    return -1 - k
                tb[i] = b
            while True:
                t = last + 1
                if pc_nxt[c] > t:
                    t = pc_nxt[c]
                for i in range(n):
                    b = tb[i]
                    if bank_nxt[b, c] > t:
                        t = bank_nxt[b, c]
                    g = bg_of_bank[b]
                    if bg_nxt[g, c] > t:
                        t = bg_nxt[g, c]
                if c <= ACT_AB and limit > 0 and ring_n > 0:
                    if n > limit:
                        bound = ring_t[head] + faw
                        if bound > t:
                            t = bound
                    else:
                        cum = 0
                        for i in range(ring_n):
                            j = (head - i) % ring_len
                            cum += ring_w[j]
                            if cum + n > limit:
                                bound = ring_t[j] + faw
                                if bound > t:
                                    t = bound
                                break
                if t < due:
                    break
                # --- all-bank refresh -------------------------------------------------------------------
                rs = due
                if last + 1 > rs:
                    rs = last + 1
                n_open = 0
                for b in range(nb):
                    if open_row[b] >= 0:
                        ob[n_open] = b
                        n_open += 1
                if n_open > 0:
                    if pc_nxt[PRE_AB] > rs:
                        rs = pc_nxt[PRE_AB]
                    for i in range(n_open):
                        b = ob[i]
                        if bank_nxt[b, PRE_AB] > rs:
                            rs = bank_nxt[b, PRE_AB]
                        if bg_nxt[bg_of_bank[b], PRE_AB] > rs:
                            rs = bg_nxt[bg_of_bank[b], PRE_AB]
                    # implicit PRE_AB of the open banks at rs
                    _apply_rules(par, rules, bg_of_bank, pc_nxt, bg_nxt, bank_nxt, PRE_AB, rs, ob, n_open)
                    re = rs + t_rp + t_ref
                else:
                    re = rs + t_ref
                for c2 in range(N_CMDS):
                    if pc_nxt[c2] < re:
                        pc_nxt[c2] = re
                if n_open > 0:
                    # implicit ACT_AB re-opening the same rows at re
                    _apply_rules(par, rules, bg_of_bank, pc_nxt, bg_nxt, bank_nxt, ACT_AB, re, ob, n_open)
                    n_impl += n_open
                    last = re
                else:
                    last = re - 1
                n_ref += 1
                ref_cycles += re - rs
                due += refi
            # --- issue c at t -----------------------------------------------------------------------------
            _apply_rules(par, rules, bg_of_bank, pc_nxt, bg_nxt, bank_nxt, c, t, tb, n)
            if c <= ACT_AB:
                for i in range(n):
                    open_row[tb[i]] = row[k]
                if limit > 0:
                    head = (head + 1) % ring_len
                    ring_t[head] = t
                    ring_w[head] = n
                    if ring_n < ring_len:
                        ring_n += 1
            elif c == PRE_SB or c == PRE_AB:
                for i in range(n):
                    open_row[tb[i]] = -1
            issue_out[k] = t
            last = t
            done = t + par[P_LAT_OF + c]
            if done > end:
                end = done
        stats_out[s, ST_END] = end
        stats_out[s, ST_REFRESHES] = n_ref
        stats_out[s, ST_IMPLICIT_ACTS] = n_impl
        stats_out[s, ST_REFRESH_CYCLES] = ref_cycles
        stats_out[s, ST_ISSUED] = starts[s + 1] - starts[s]
    return 0


def run(cp, cmd, first, stride, count, row, starts):
    """Convenience wrapper: returns ``(issue cycles, stats[n_streams, N_ST])``."""
    par = cp.par
    longest = int(cp.rules[:, 3].max()) if cp.rules.shape[0] else 0
    if par[P_REFRESH] and par[P_REFI] <= 2 * (par[P_RP] + par[P_RFC] + longest):
        # a command waiting out a rule after a refresh could then meet the next refresh, forever
        raise ValueError(f"tREFI ({par[P_REFI]} nCK) must exceed 2 x (tRP + tRFC + the longest rule) = "
                         f"{2 * (par[P_RP] + par[P_RFC] + longest)} nCK for the refresh model to make progress")
    cmd = np.ascontiguousarray(cmd, dtype=np.int64)
    issue = np.zeros(cmd.shape[0], dtype=np.int64)
    stats = np.zeros((len(starts) - 1, N_ST), dtype=np.int64)
    rc = run_streams(par, cp.rules, cp.bg_of_bank, cmd, np.ascontiguousarray(first, dtype=np.int64),
                     np.ascontiguousarray(stride, dtype=np.int64), np.ascontiguousarray(count, dtype=np.int64),
                     np.ascontiguousarray(row, dtype=np.int64), np.ascontiguousarray(starts, dtype=np.int64),
                     issue, stats)
    if rc != 0:
        raise ValueError(f"PIM command {-1 - rc} targets a bank outside the pseudo-channel")
    return issue, stats
