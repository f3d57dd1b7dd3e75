"""The flash queueing kernel: an event-driven model of an SSD's planes, dies, channels and host link.

One call replays a list of *requests* (each already split into page operations, "pieces", by
:mod:`memsim.flash.api`) and returns the admission and completion time of every request and piece.
It is a pure function over NumPy arrays, compiled with Numba; ``tests/flash_twin.py`` is an
independent plain-Python implementation of the same rules that the tests compare it with.

What is modelled
----------------
* Front end: requests are admitted strictly in order, at their arrival time, while fewer than
  ``queue_depth`` are outstanding (0 = unlimited). A request's pieces reach the flash controller
  ``command_latency`` after admission (NVMe submission, firmware); the latency overlaps between
  commands (it is not a shared resource). Optionally (``controller_time`` > 0) each command also
  occupies one of ``controller_cores`` firmware cores for ``controller_time`` first, which caps the
  command rate at cores / time; no shipped preset sets it (no source).
* Planes: one FIFO queue per plane. A plane holds one page in its page register; with *cache read* a
  second page can wait in the cache register while the next array read runs.
* Dies: one array operation (read tR, program tPROG or erase tBERS) per die at a time. With
  *multi-plane* operation the head pieces of other planes of the same die that are of the same kind
  and ready at that moment join the operation (one tR for all, the longest of their page types).
* Channels: one bus per channel, carrying command/address cycles (``command_overhead`` per plane
  addressed), write data in, and read data out. When the bus is free the controller first issues the
  oldest piece whose plane and die are ready (commands are short and keep the dies busy), otherwise it
  moves the oldest ready page out of its register. Without *die interleaving*
  the bus is held until the array operation it started ends.
* Host link: a read piece's data crosses the host link after its channel transfer, in the order the
  channel transfers start; write data crosses it (other direction, full duplex) before the piece reaches
  the controller. A request completes when its last piece has crossed the link (reads) or has been
  programmed (writes: write-through, there is no DRAM write buffer in the SSD).

What is simplified
------------------
* No FTL: logical pages map statically to planes (see the API); no garbage collection, wear levelling,
  read-disturb or retries; programs go to pre-erased pages; erases only when asked for explicitly. A
  write smaller than a page programs the whole page (no SSD write buffer merges small writes).
* Multi-plane operation ignores the page-offset constraints of real multi-plane commands; the cache
  register copy (tRCBSY), status polling and ECC decoding take no time; NVMe submission/completion
  queue entries and DLLPs do not occupy the link (only data TLPs do).
* Controller firmware costs only the fixed per-command latency and the optional per-command core time
  (a constant, not a model of FTL lookups or ECC).
"""
from __future__ import annotations

import numpy as np
from numba import njit

INF = np.int64(1) << np.int64(62)

KIND_READ, KIND_WRITE, KIND_ERASE = 0, 1, 2

# params
P_QD, P_CMD, P_LAT, P_MP, P_CACHE, P_INTERLEAVE, P_NCH, P_PPC, P_PPD, P_CTRL_T, P_CTRL_N = range(11)
N_P = 11

# stats
S_STATUS, S_OPS, S_MP_OPS, S_LINK_R, S_LINK_W, S_DATA_OUT, S_CMD = range(7)
N_S = 7


@njit(cache=True, inline="always")
def _heap_push(heap, size, value):
    i = size
    heap[i] = value
    while i > 0:
        parent = (i - 1) >> 1
        if heap[parent] <= heap[i]:
            break
        tmp = heap[parent]
        heap[parent] = heap[i]
        heap[i] = tmp
        i = parent
    return size + 1


@njit(cache=True, inline="always")
def _heap_pop(heap, size):
    top = heap[0]
    size -= 1
    heap[0] = heap[size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and heap[left + 1] < heap[left]:
            child = left + 1
        if heap[i] <= heap[child]:
            break
        tmp = heap[i]
        heap[i] = heap[child]
        heap[child] = tmp
        i = child
    return top, size


@njit(cache=True, inline="always")
def _cmd_allowed(kind, p, cache, out0_p, out1_p):
    if kind == KIND_READ and cache:
        return out1_p[p] < 0
    return out0_p[p] < 0


@njit(cache=True, inline="always")
def _channel_next(c, ppc, pl_die, cache, ch_free, qhead, pc_kind, avail, arr_free, die_free, out0_p, out0_r, out1_p):
    best = INF
    for p in range(c * ppc, (c + 1) * ppc):
        if out0_p[p] >= 0 and out0_r[p] < best:
            best = out0_r[p]
        h = qhead[p]
        if h >= 0 and _cmd_allowed(pc_kind[h], p, cache, out0_p, out1_p):
            r = max(avail[h], arr_free[p], die_free[pl_die[p]])
            if r < best:
                best = r
    if best == INF:
        return INF
    return max(best, ch_free[c])


@njit(cache=True)
def simulate(req_arrival, req_first, req_count, pc_plane, pc_kind, pc_array, pc_xfer, pc_link, params,
             n_planes):
    """Replay requests; returns (req_start, req_done, pc_done, ch_busy, plane_busy, stats).

    Parameters (all int64 arrays; times in ps)
    ------------------------------------------
    req_arrival, req_first, req_count : per request: arrival time, index of its first piece, piece count
        (>= 1); a request's pieces are contiguous.
    pc_plane : global plane of each piece; planes are numbered channel-major (plane // P_PPC is the
        channel, plane // P_PPD the die).
    pc_kind : KIND_READ, KIND_WRITE or KIND_ERASE.
    pc_array : array-operation time of the piece (tR / tPROG of its page type, tBERS).
    pc_xfer : channel data time (read data out or write data in; 0 for erases).
    pc_link : host-link time of the piece's payload (0 for erases).
    params : see the P_* indices.
    """
    n_req = req_arrival.shape[0]
    n_pc = pc_plane.shape[0]
    qd = params[P_QD]
    t_cmd = params[P_CMD]
    lat = params[P_LAT]
    ctrl_t = params[P_CTRL_T]
    ctrl_free = np.zeros(max(params[P_CTRL_N], 1), dtype=np.int64)
    mp = params[P_MP] != 0
    cache = params[P_CACHE] != 0
    interleave = params[P_INTERLEAVE] != 0
    n_ch = params[P_NCH]
    ppc = params[P_PPC]
    ppd = params[P_PPD]
    n_dies = n_planes // ppd

    req_start = np.full(n_req, -1, dtype=np.int64)
    req_done = np.zeros(n_req, dtype=np.int64)
    req_rem = req_count.copy()
    pc_done = np.full(n_pc, -1, dtype=np.int64)
    pc_req = np.empty(n_pc, dtype=np.int64)
    for r in range(n_req):
        for j in range(req_first[r], req_first[r] + req_count[r]):
            pc_req[j] = r
    avail = np.full(n_pc, INF, dtype=np.int64)
    nextp = np.full(n_pc, -1, dtype=np.int64)
    qhead = np.full(n_planes, -1, dtype=np.int64)
    qtail = np.full(n_planes, -1, dtype=np.int64)
    arr_free = np.zeros(n_planes, dtype=np.int64)
    out0_p = np.full(n_planes, -1, dtype=np.int64)
    out0_r = np.zeros(n_planes, dtype=np.int64)
    out1_p = np.full(n_planes, -1, dtype=np.int64)
    out1_r = np.zeros(n_planes, dtype=np.int64)
    die_free = np.zeros(n_dies, dtype=np.int64)
    ch_free = np.zeros(n_ch, dtype=np.int64)
    ch_next = np.full(n_ch, INF, dtype=np.int64)
    ch_dirty = np.zeros(n_ch, dtype=np.bool_)
    ch_busy = np.zeros(n_ch, dtype=np.int64)
    plane_busy = np.zeros(n_planes, dtype=np.int64)
    stats = np.zeros(N_S, dtype=np.int64)
    heap = np.zeros(max(qd, 1) + 1, dtype=np.int64)
    heap_n = 0
    inflight = 0
    nxt = 0
    last_adm = np.int64(0)
    link_r_free = np.int64(0)
    link_w_free = np.int64(0)
    done_pc = 0
    gather = np.empty(ppd, dtype=np.int64)
    pl_die = np.arange(n_planes) // ppd
    pl_ch = np.arange(n_planes) // ppc

    while done_pc < n_pc:
        # next admission
        t_adm = INF
        if nxt < n_req:
            if qd == 0 or inflight < qd:
                t_adm = max(req_arrival[nxt], last_adm)
            elif heap_n > 0:
                t_adm = max(req_arrival[nxt], last_adm, heap[0])
        # next channel decision
        cmin = -1
        t_ch = INF
        for c in range(n_ch):
            if ch_dirty[c]:
                ch_next[c] = _channel_next(c, ppc, pl_die, cache, ch_free, qhead, pc_kind, avail, arr_free,
                                           die_free, out0_p, out0_r, out1_p)
                ch_dirty[c] = False
            if ch_next[c] < t_ch:
                t_ch = ch_next[c]
                cmin = c
        if t_adm < INF and t_adm <= t_ch:
            if qd > 0 and inflight >= qd:
                _, heap_n = _heap_pop(heap, heap_n)
                inflight -= 1
            r = nxt
            nxt += 1
            inflight += 1
            last_adm = t_adm
            req_start[r] = t_adm
            t_fw = t_adm  # controller firmware: one of ctrl_free's cores for ctrl_t per command
            if ctrl_t > 0:
                k = 0
                for q in range(1, ctrl_free.shape[0]):
                    if ctrl_free[q] < ctrl_free[k]:
                        k = q
                t_fw = max(t_adm, ctrl_free[k]) + ctrl_t
                ctrl_free[k] = t_fw
            for j in range(req_first[r], req_first[r] + req_count[r]):
                if pc_kind[j] == KIND_WRITE:
                    ls = max(t_fw + lat, link_w_free)
                    link_w_free = ls + pc_link[j]
                    stats[S_LINK_W] += pc_link[j]
                    avail[j] = link_w_free
                else:
                    avail[j] = t_fw + lat
                p = pc_plane[j]
                if qtail[p] < 0:
                    qhead[p] = j
                else:
                    nextp[qtail[p]] = j
                qtail[p] = j
                ch_dirty[pl_ch[p]] = True
            continue
        if cmin < 0:
            stats[S_STATUS] = 1  # nothing can proceed: a bug, reported to the caller
            break
        c = cmin
        T = t_ch
        ch_dirty[c] = True
        # 1) the oldest piece whose plane and die are ready; else 2) the oldest ready data-out
        best_p = -1
        best_h = INF
        out_p = -1
        out_r = INF
        out_h = INF
        for p in range(c * ppc, (c + 1) * ppc):
            h = qhead[p]
            if h >= 0 and h < best_h and _cmd_allowed(pc_kind[h], p, cache, out0_p, out1_p):
                if max(avail[h], arr_free[p], die_free[pl_die[p]]) <= T:
                    best_h = h
                    best_p = p
            h = out0_p[p]
            if h >= 0 and out0_r[p] <= T:
                if out0_r[p] < out_r or (out0_r[p] == out_r and h < out_h):
                    out_r = out0_r[p]
                    out_h = h
                    out_p = p
        if best_p < 0:
            if out_p >= 0:
                p = out_p
                h = out_h
                xe = T + pc_xfer[h]
                ch_free[c] = xe
                ch_busy[c] += pc_xfer[h]
                ls = max(xe, link_r_free)
                link_r_free = ls + pc_link[h]
                stats[S_LINK_R] += pc_link[h]
                stats[S_DATA_OUT] += 1
                pc_done[h] = link_r_free
                out0_p[p] = -1
                if cache:
                    if out1_p[p] >= 0:
                        out0_p[p] = out1_p[p]
                        out0_r[p] = max(out1_r[p], xe)
                        out1_p[p] = -1
                        if out0_r[p] > arr_free[p]:
                            arr_free[p] = out0_r[p]
                else:
                    arr_free[p] = xe
                r = pc_req[h]
                if pc_done[h] > req_done[r]:
                    req_done[r] = pc_done[h]
                req_rem[r] -= 1
                done_pc += 1
                if req_rem[r] == 0 and qd > 0:
                    heap_n = _heap_push(heap, heap_n, req_done[r])
                continue
        p0 = best_p
        kind = pc_kind[best_h]
        d = pl_die[p0]
        ng = 0
        if mp:
            for q in range(d * ppd, (d + 1) * ppd):
                h = qhead[q]
                if q == p0 or (h >= 0 and pc_kind[h] == kind and _cmd_allowed(kind, q, cache, out0_p, out1_p)
                               and avail[h] <= T and arr_free[q] <= T):
                    gather[ng] = q
                    ng += 1
        else:
            gather[0] = p0
            ng = 1
        t = T
        op = np.int64(0)
        for g in range(ng):
            h = qhead[gather[g]]
            t += t_cmd
            if kind == KIND_WRITE:
                t += pc_xfer[h]
            if pc_array[h] > op:
                op = pc_array[h]
        end = t + op
        ch_busy[c] += t - T
        ch_free[c] = t if interleave else end
        die_free[d] = end
        stats[S_OPS] += 1
        stats[S_CMD] += ng
        if ng > 1:
            stats[S_MP_OPS] += 1
        for g in range(ng):
            q = gather[g]
            h = qhead[q]
            qhead[q] = nextp[h]
            if qhead[q] < 0:
                qtail[q] = -1
            plane_busy[q] += op
            arr_free[q] = end
            if kind == KIND_READ:
                if out0_p[q] < 0:
                    out0_p[q] = h
                    out0_r[q] = end
                else:
                    out1_p[q] = h
                    out1_r[q] = end
            else:
                pc_done[h] = end
                r = pc_req[h]
                if end > req_done[r]:
                    req_done[r] = end
                req_rem[r] -= 1
                done_pc += 1
                if req_rem[r] == 0 and qd > 0:
                    heap_n = _heap_push(heap, heap_n, req_done[r])
    return req_start, req_done, pc_done, ch_busy, plane_busy, stats


@njit(cache=True)
def split(off, size, kind, page, block_bytes, granularity, order, radix):
    """Split requests into pieces (one per page touched; erases: one per block touched).

    ``order`` lists the striping digits fastest first (0 channel, 1 way/package, 2 die, 3 plane) and
    ``radix`` their counts in that fixed C, W, D, P numbering. Returns per request (first piece, piece
    count) and per piece (kind, global plane, index inside the plane, host bytes, channel bytes).
    """
    n = off.shape[0]
    count = np.empty(n, dtype=np.int64)
    first = np.empty(n, dtype=np.int64)
    total = 0
    for r in range(n):
        u = block_bytes if kind[r] == KIND_ERASE else page
        first[r] = total
        count[r] = (off[r] + size[r] - 1) // u - off[r] // u + 1
        total += count[r]
    pkind = np.empty(total, dtype=np.int64)
    plane = np.empty(total, dtype=np.int64)
    in_plane = np.empty(total, dtype=np.int64)
    host = np.empty(total, dtype=np.int64)
    chan = np.empty(total, dtype=np.int64)
    digit = np.zeros(4, dtype=np.int64)
    for r in range(n):
        u = block_bytes if kind[r] == KIND_ERASE else page
        end = off[r] + size[r]
        idx = off[r] // u
        for j in range(first[r], first[r] + count[r]):
            base = idx * u
            lo = max(off[r], base) - base
            hi = min(end, base + u) - base
            pkind[j] = kind[r]
            if kind[r] == KIND_ERASE:
                host[j] = 0
                chan[j] = 0
            else:
                host[j] = hi - lo
                chan[j] = ((hi + granularity - 1) // granularity - lo // granularity) * granularity
            rest = idx
            for k in range(4):
                d = order[k]
                digit[d] = rest % radix[d]
                rest //= radix[d]
            plane[j] = ((digit[0] * radix[1] + digit[1]) * radix[2] + digit[2]) * radix[3] + digit[3]
            in_plane[j] = rest
            idx += 1
    return first, count, pkind, plane, in_plane, host, chan
