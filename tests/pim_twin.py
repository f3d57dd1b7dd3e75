"""Plain-Python twin of the PIM kernel (memsim/pim/kernel.py), used only by the tests.

It is written differently on purpose: time advances one cycle at a time, and a command is legal at a
cycle when no rule is violated by any command issued before it (checked against every command issued within the longest rule distance) and
the activation window has room. Refresh is triggered when the cycle reaches the due time before the
next command became legal. Identical issue cycles from both show that the kernel's earliest-time tables
and its jumps are exact.
"""
from __future__ import annotations

from memsim.pim import commands as C


def run_twin(cp, cmd, first, stride, count, row, starts):
    par = [int(v) for v in cp.par]
    rules: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for p, n, lv, d in cp.rules.tolist():
        rules.setdefault((p, n), []).append((lv, d))
    horizon = max([d for _, _, _, d in cp.rules.tolist()] + [int(cp.par[C.P_FAW])]) + 1
    bg = [int(v) for v in cp.bg_of_bank]
    faw, limit = par[C.P_FAW], par[C.P_FAW_LIMIT]
    refi, rfc, rp = par[C.P_REFI], par[C.P_RFC], par[C.P_RP]
    refresh_on = par[C.P_REFRESH] != 0
    issue = [0] * len(cmd)
    stats = []
    for s in range(len(starts) - 1):
        history: list[tuple[int, int, frozenset]] = []
        acts: list[tuple[int, int]] = []
        open_rows: dict[int, int] = {}
        blocked_until = 0
        last = -1
        due = refi if refresh_on else float("inf")
        end = n_ref = n_impl = ref_cycles = 0

        def legal(t, c, banks):
            if t < blocked_until:
                return False
            groups = {bg[b] for b in banks}
            for tp, cp_, bp in history:
                if tp + horizon <= t:
                    continue  # too old to constrain anything
                for lv, d in rules.get((cp_, c), ()):
                    if t >= tp + d:
                        continue
                    if lv == C.LV_PC:
                        return False
                    if lv == C.LV_BG and groups & {bg[b] for b in bp}:
                        return False
                    if lv == C.LV_BANK and banks & bp:
                        return False
            if c in C.ACTS and limit > 0:
                window = [w for tp, w in acts if tp + faw > t]
                if len(banks) > limit:
                    if window:
                        return False
                elif sum(window) + len(banks) > limit:
                    return False
            return True

        for k in range(int(starts[s]), int(starts[s + 1])):
            c = int(cmd[k])
            banks = frozenset(int(first[k]) + i * int(stride[k]) for i in range(int(count[k])))
            t = last + 1
            while True:
                if t >= due:
                    opened = frozenset(b for b, r in open_rows.items() if r >= 0)
                    rs = max(due, last + 1)
                    if opened:
                        while not legal(rs, C.PRE_AB, opened):
                            rs += 1
                        history.append((rs, C.PRE_AB, opened))
                        re = rs + rp + rfc
                    else:
                        re = rs + rfc
                    blocked_until = max(blocked_until, re)
                    if opened:
                        history.append((re, C.ACT_AB, opened))
                        n_impl += len(opened)
                        last = re
                    else:
                        last = re - 1
                    n_ref += 1
                    ref_cycles += re - rs
                    due += refi
                    t = last + 1
                    continue
                if legal(t, c, banks):
                    break
                t += 1
            history = [h for h in history if h[0] + horizon > t]
            history.append((t, c, banks))
            if c in C.ACTS:
                for b in banks:
                    open_rows[b] = int(row[k])
                acts.append((t, len(banks)))
            elif c in C.PRES:
                for b in banks:
                    open_rows[b] = -1
            issue[k] = t
            last = t
            end = max(end, t + par[C.P_LAT_OF + c])
        stats.append((end, n_ref, n_impl, ref_cycles, int(starts[s + 1]) - int(starts[s])))
    return issue, stats
