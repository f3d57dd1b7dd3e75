"""Plain-Python twin of the flash kernel (memsim/flash/kernel.py), used only in tests.

Written independently from the kernel's data layout: per-plane queues are Python deques, the
outstanding-request bound uses heapq, and every channel's next decision time is recomputed from
scratch at every step (the kernel caches it per channel). The rules are those of the kernel's
docstring; the tests require identical admission and completion times.
"""
from __future__ import annotations

import heapq
from collections import deque

READ, WRITE, ERASE = 0, 1, 2


def simulate(req_arrival, req_first, req_count, pc_plane, pc_kind, pc_array, pc_xfer, pc_link, *, qd, t_cmd,
             lat, mp, cache, interleave, n_ch, ppc, ppd, n_planes, ctrl_t=0, ctrl_n=1):
    n_req, n_pc = len(req_arrival), len(pc_plane)
    owner = {}
    for r in range(n_req):
        for j in range(req_first[r], req_first[r] + req_count[r]):
            owner[j] = r
    start = [None] * n_req
    done = [0] * n_req
    left = [int(c) for c in req_count]
    pdone = [None] * n_pc
    avail = {}
    queue = [deque() for _ in range(n_planes)]
    free = [0] * n_planes              # array (and page register) free
    outs = [[] for _ in range(n_planes)]  # [(piece, ready)], at most 2 with cache read, else 1
    die = [0] * (n_planes // ppd)
    bus = [0] * n_ch
    completions: list[int] = []
    outstanding = 0
    nxt = 0
    last = 0
    link_r = link_w = 0
    finished = 0
    cores = [0] * ctrl_n

    def may_issue(p, kind):
        limit = 2 if (kind == READ and cache) else 1
        return len(outs[p]) < limit if kind == READ else not outs[p]

    def cmd_ready(p):
        h = queue[p][0]
        return max(avail[h], free[p], die[p // ppd])

    def next_time(c):
        cand = []
        for p in range(c * ppc, (c + 1) * ppc):
            if outs[p]:
                cand.append(outs[p][0][1])
            if queue[p] and may_issue(p, pc_kind[queue[p][0]]):
                cand.append(cmd_ready(p))
        return max(min(cand), bus[c]) if cand else None

    def finish(h, t):
        nonlocal finished
        pdone[h] = t
        r = owner[h]
        done[r] = max(done[r], t)
        left[r] -= 1
        finished += 1
        if left[r] == 0 and qd > 0:
            heapq.heappush(completions, done[r])

    while finished < n_pc:
        t_adm = None
        if nxt < n_req:
            if qd == 0 or outstanding < qd:
                t_adm = max(req_arrival[nxt], last)
            elif completions:
                t_adm = max(req_arrival[nxt], last, completions[0])
        times = [(next_time(c), c) for c in range(n_ch)]
        times = [x for x in times if x[0] is not None]
        t_ch, c = min(times) if times else (None, None)
        if t_adm is not None and (t_ch is None or t_adm <= t_ch):
            if qd > 0 and outstanding >= qd:
                heapq.heappop(completions)
                outstanding -= 1
            r = nxt
            nxt += 1
            outstanding += 1
            last = t_adm
            start[r] = t_adm
            t0 = t_adm
            if ctrl_t:
                k = cores.index(min(cores))
                t0 = cores[k] = max(t_adm, cores[k]) + ctrl_t
            for j in range(req_first[r], req_first[r] + req_count[r]):
                if pc_kind[j] == WRITE:
                    link_w = max(t0 + lat, link_w) + pc_link[j]
                    avail[j] = link_w
                else:
                    avail[j] = t0 + lat
                queue[pc_plane[j]].append(j)
            continue
        assert t_ch is not None, "twin deadlock"
        T = t_ch
        ready_cmds = [(queue[p][0], p) for p in range(c * ppc, (c + 1) * ppc)
                      if queue[p] and may_issue(p, pc_kind[queue[p][0]]) and cmd_ready(p) <= T]
        if not ready_cmds:
            outs_ready = [(outs[p][0][1], outs[p][0][0], p) for p in range(c * ppc, (c + 1) * ppc)
                          if outs[p] and outs[p][0][1] <= T]
            _, h, p = min(outs_ready)
            end = T + pc_xfer[h]
            bus[c] = end
            link_r = max(end, link_r) + pc_link[h]
            outs[p].pop(0)
            if cache:
                if outs[p]:
                    piece, ready = outs[p][0]
                    outs[p][0] = (piece, max(ready, end))
                    free[p] = max(free[p], outs[p][0][1])
            else:
                free[p] = end
            finish(h, link_r)
            continue
        h0, p0 = min(ready_cmds)
        kind = pc_kind[h0]
        d = p0 // ppd
        group = [p0]
        if mp:
            group = [q for q in range(d * ppd, (d + 1) * ppd)
                     if q == p0 or (queue[q] and pc_kind[queue[q][0]] == kind and may_issue(q, kind)
                                    and avail[queue[q][0]] <= T and free[q] <= T)]
        t = T
        for q in group:
            t += t_cmd + (pc_xfer[queue[q][0]] if kind == WRITE else 0)
        op = max(pc_array[queue[q][0]] for q in group)
        end = t + op
        bus[c] = t if interleave else end
        die[d] = end
        for q in group:
            h = queue[q].popleft()
            free[q] = end
            if kind == READ:
                outs[q].append((h, end))
            else:
                finish(h, end)
    return start, done, pdone
