"""The DRAM timing kernel: an event-driven, command-level memory-controller model over NumPy arrays.

One call replays one chunk of requests (already split into transactions and decoded into bank, row and
channel) through the per-channel controllers and returns when every request of the chunk has been
accepted (or, for the final chunk, when every request has completed). All state lives in the arrays of
:class:`KernelState`, so a trace of any length streams through in bounded memory.

What is modelled
----------------
* Per channel: a read queue and a write queue of transactions, write-drain mode with high/low watermarks,
  and three schedulers: ``frfcfs`` (ready row hits first, then the oldest ready command), ``first-ready``
  (the oldest request whose next command is ready, of any kind) and ``fcfs`` (the oldest request only).
  At most one command per cycle per channel, or one row and one column command with separate buses.
  Two further queue structures of established simulators: Ramulator 2's active buffer (a request whose
  row was activated moves there and is served first) and DRAMSim3's per-bank command queues (fed one
  transaction per cycle from the transaction queue, visited round robin, precharge only at a queue head).
* Per bank: open row, ACT/PRE/RD/WR timing from the rule table (``timing.py``), tFAW as a 4-entry window
  per rank; open, closed (auto-precharge when no queued request hits the row) and timeout row policies;
  an optional guard that never precharges a row that a queued request still hits.
* Refresh: all-bank per rank or per pseudo-channel, or per-bank round robin; a due refresh closes the
  unit's banks at the earliest legal precharge and blocks activation for tRFC.
* The front end offers requests strictly in order with head-of-line blocking, optionally limited by an
  arrival time or a maximum number of outstanding requests (QD mode).

What is simplified
------------------
* The precharge-all and refresh commands do not occupy a command-bus slot.
* Time does not advance cycle by cycle: a channel is re-examined at the earliest cycle at which any of
  its queued requests could issue. After an issue that is a lower bound over the commands its requests
  need (``quiet_until``, ``bq_quiet_until``; the next cycle where that is not worked out), after an
  arrival the earlier of that wake-up and the new request's own command (``arrival_wake``). The
  decisions skipped would find nothing ready and change nothing. Per-bank lower bounds (``blb``) let
  scans pass over banks that cannot issue yet, which likewise changes no decision. The cycle-by-cycle
  twin in ``tests/dram_twin.py`` checks that this gives identical completion cycles.
* The timeout row policy closes an idle row lazily, when the bank is next looked at (or refreshed, or at
  the end of the run), as of the cycle it became closable: the timing is that of an eager close.
* A read that finds a pending write to the same transaction address is answered at once from the write
  queue (no DRAM access), as both reference simulators do.
"""
from __future__ import annotations

import numpy as np
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros  # an LLVM intrinsic (cttz), stable since Numba 0.4x

from ..jitcache import layout_of
from . import timing
from .timing import (
    ACT, PRE, RD, WR, L_BK, L_RK, N_LEVELS, N_CMDS,
    P_NCH, P_CL, P_BURST, P_RP, P_RFC, P_RFCPB, P_REFI, P_REFIPB, P_FAW, P_RQ, P_WQ, P_WHI, P_WLO,
    P_SCHED, P_CAP, P_ROWPOL, P_TIMEOUT, P_REFRESH, P_SEPBUS, P_POSTED, P_FWD, P_GUARD,
    P_TXPERREQ, P_ACTBUF, P_BQD, P_RULES_OF, ROW_CLOSED, ROW_TIMEOUT, REF_ALLBANK, SCHED_FCFS, SCHED_FIRST_READY,
)

INF = np.int64(1) << np.int64(62)
U = np.uint64  # unsigned array index (no negative-index wrap-around); only for indices known to be >= 0


# Data layout. Queued transactions of a channel live in a pool (``ent``); each is linked into its bank's
# doubly linked list for its queue (cheap per-bank questions: pending hits, forwarding of reads from
# pending writes) and listed in ``qord``, the whole queue in arrival order as a plain array (the
# scheduler's scan, oldest first; read/write-queue controllers only: bank queues never scan it). An array
# rather than a second linked list: a scan that skips most entries on their bank's bound then issues
# independent loads instead of chasing one pointer per entry, and removal shifts a few words.
# queues per channel: 0 read buffer, 1 write buffer, 2 active buffer / per-bank command queues
Q_READ, Q_WRITE, Q_CMD = 0, 1, 2
# entry fields (entries live in a per-channel pool and are linked into one list per bank and queue)
F_BANK, F_ROW, F_ADDR, F_SLOT, F_FLAGS, F_WRITE, F_SEQ, F_NEXT, F_PREV = range(9)
N_F = 9  # F_NEXT/F_PREV link the bank's list of a queue
FLAG_ACT, FLAG_PRE = 1, 2
# per-bank list bookkeeping: head, tail, count of queue qq at 3*qq + 0/1/2; position in the channel's
# list of banks with entries at 9 + qq; a per-scan memo of command readiness (stamp at 12 + cmd, value at
# 16 + cmd); the scan in which an older request needing a row change was seen (FR-FCFS cap) at 20
L_MEMO_STAMP, L_MEMO_VAL, L_MISS_SCAN = 12, 16, 20
N_L = 21
# per channel and queue (``nab``): banks with entries at qq; the first and one past the last slot of the
# queue's entries in ``qord`` at 3 + qq and 6 + qq
N_NAB = 9
# a ``qord`` slot holds an entry's bank and pool index, (bank << QSHIFT) | entry: a scan that skips most
# entries on their bank's bound then reads the bank without a dependent load of the entry
QSHIFT = 24
QMASK = (1 << QSHIFT) - 1

# per-bank state fields: open row (-1 closed), last activity cycle, queued entries that hit the open row
# (one count per queue), column accesses since the last ACT.
# ``blb`` (an array of its own, so that a pass over a channel's banks reads one contiguous row): per bank, a
# lower bound on the cycle at which any of its candidate commands can issue (0 = unknown). Readiness only
# ever rises (every rule raises an earliest-issue time), so a bound stays valid until the bank's own
# candidates change: a command to the bank, a request joining one of its queues, a close, a refresh, or a
# write-mode flip; each of these resets it to 0. Scans skip a bank whose bound lies in the future, and the
# post-issue bounds reuse it. With bank command queues, a bank whose command queue is empty has no candidate
# at all, and a scan or bound that finds it so sets INF (until a transaction joins it).
B_ROW, B_LAST, B_HP0, B_HP1, B_HP2, B_STREAK = 0, 1, 2, 3, 4, 5
N_B = 6

# per-channel state fields
# C_CMDW: writes in the channel's per-bank command queues, so that a read arrival looks for a pending
# write there only when there is one. C_QUIET: with per-bank command queues, a lower bound on the cycle
# the channel's next command can issue (``bq_quiet_until``; 0 where unknown), so that a decision before
# it only moves a transaction. C_REFPEND: the channel's refresh units with a refresh due and not yet done.
(C_WMODE, C_ACT, C_PRE, C_RD, C_WR, C_HIT, C_MISS, C_CONF, C_REF, C_FWD, C_RR, C_NFREE,
 C_CMDW, C_QUIET, C_REFPEND) = range(15)
N_C = 15

# scalar state; after its N_S fields, ``S`` holds each channel's wake-up cycle, the next cycle at which
# its controller must decide (one contiguous row: the main loop takes their minimum at every step;
# measured 1.08x on the 8-channel DRAMSim3 HBM2 stream, 1.01-1.02x elsewhere, against a per-channel field)
(S_T, S_NEXT_GID, S_OUTSTANDING, S_FIFO_HEAD, S_FIFO_TAIL, S_FE_BLOCK, S_FE_RETRY, S_REF_MIN,
 S_LAST_DONE, S_DONE_READS, S_DONE_WRITES, S_LAT_SUM_R, S_LAT_SUM_W, S_LAT_MAX_R, S_LAT_MAX_W,
 S_REF_CYCLES, S_SCAN_ID, S_ACCEPTED, S_QUEUED, S_FREED, S_FREE_TOP, S_SEQ) = range(22)
N_S = 22

# above this many banks with queued requests, the post-issue bound of ``quiet_until`` costs about as much
# as the decision it would skip, and rarely skips one (random traffic through read/write queues: measured
# 6.0 instead of 6.4 decisions per request, and slower; remeasured with the per-bank bounds ``blb``, no
# limit ran 0.81-0.84x on the Ramulator 2 HBM2/HBM3 rows and 0.95-0.99x on DDR4, side by side): look again
# next cycle instead
QUIET_MAX_BANKS = 4

# FR-FCFS looks at the read/write queue bank by bank rather than request by request where the queue
# holds at least this many requests per busy bank (see ``schedule``)
BY_BANK_MIN_PER_BANK = 2

# at most this many busy bank queues, the DRAMSim3-style round robin visits only the busy banks (a pass
# over them per visit) rather than every bank of the channel
BQ_FEW_BANKS = 4

# channels of at most this many banks take their bank-queue passes over the bounds ``blb`` as a bit mask
# (one bit per bank in an int64, kept clear of the sign bit); wider channels list the banks instead
MASK_MAX_BANKS = 62

FE_NONE, FE_QUEUE, FE_ARRIVAL, FE_QD = 0, 1, 2, 3

# request ring fields
R_ACCEPT, R_REMAIN, R_DONE, R_WRITE, R_GID, R_FREE = 0, 1, 2, 3, 4, 5
N_R = 6  # column R_FREE is not a field of the row: it stores the stack of free slots

# refresh unit fields: next due cycle, next bank (per-bank refresh), pending flag
U_DUE, U_NEXT_BANK, U_PENDING = 0, 1, 2
N_U = 3

# fields of a row of the rule table ``rules``: prev, next, level, cycles, sibling (see ``timing``)
N_RULE_F = 5

# The arena: every array the kernel reads or writes but the trace's own (the decoded transactions, the
# request flags and arrivals, the recorded completion cycles) lives in one int64 array, each array
# flattened into a region at an offset that is a constant of the build. A field's address is then the one
# arena pointer plus a constant displacement: the ~25 separate arrays this replaces each kept a base
# pointer live through the main loop, more than x86-64 has registers, and the reloads of the spilled ones
# were most of the profile's generated-code share (17.8 % of the samples of the DRAMSim3 HBM2 stream fell
# on stack-relative instructions). A region holds up to 2**region_log2 elements (a build argument: 17 for
# every shipped configuration, see ``region_log2_for``); the histogram comes last, so it takes any size.
# Consecutive regions are ``ARENA_SKEW`` elements further apart than their capacity, so that the starts of
# the regions (the hottest words: channel 0, bank 0) do not all fall into one set of the L1 cache.
# Measured against separate flat arrays (whole traces, best of 3, alternating): streams 1.07-1.13x, random
# traffic 1.04-1.07x, mixed 1.02-1.07x; stack-relative instructions 1447 -> 714, their samples 17.8 -> 11.1 %.
ARENA_REGIONS = ("S", "par", "rules", "nob", "lvl_base", "lvl_fan", "dims", "nxt", "faw", "faw_pos", "bank",
                 "blb", "chs", "nab", "qlen", "abk", "qord", "ent", "lists", "freel", "ref", "ring", "fifo",
                 "bank_stats", "hist")
ARENA_SKEW = 72  # elements (576 bytes, 9 cache lines)
ARENA_LOG2 = 17  # the default region capacity, 2**17 elements (1 MiB)
# ``dims``: the sizes the kernel reads at entry (fifo rows, refresh units, banks, queue entries per channel,
# slots of one queue-order row, bins of one latency-histogram row)
D_FIFO_ROWS, D_UNITS, D_BANKS, D_POOL, D_QORD_W, D_HIST_W = range(6)
N_D = 6


def arena_offsets(region_log2: int) -> dict[str, int]:
    """The offset (in elements) of each region of the arena for regions of ``2**region_log2`` elements."""
    step = (1 << region_log2) + ARENA_SKEW
    return {name: k * step for k, name in enumerate(ARENA_REGIONS)}


def region_log2_for(sizes: dict[str, int]) -> int:
    """The region capacity (log2) that holds arrays of the given sizes: ``ARENA_LOG2`` unless one is larger
    (the histogram, the last region, is not limited)."""
    need = max((n for name, n in sizes.items() if name != ARENA_REGIONS[-1]), default=1)
    return max(ARENA_LOG2, int(need - 1).bit_length())


def _build_kernel(k_bank_queues, k_active_buffer, k_separate_buses, k_timeout_rows, k_tx_per_req, k_region_log2):
    """Compile :func:`run_chunk` for one controller structure (see :func:`kernel_for`), or with the first
    five arguments -1 the generic kernel, which reads the structure from ``par`` at run time; in either case
    for arena regions of ``2**k_region_log2`` elements (see ``ARENA_REGIONS``).

    The arguments are closure constants, so the compiler drops the branches of the other structures and
    unrolls the loops over a request's transactions: measured (interleaved best of 5, with the engine's
    sliced decoding) 1.02-1.20x faster than the generic kernel, the transactions per request as a constant
    the larger part of that, and each build compiles in 25-40 s instead of 56-60 s here. Numba caches each
    build on disk under its arguments.
    """

    k_layout = TIMING_LAYOUT
    # the arena's region offsets, constants of the build (Numba freezes the closure's integers): signed where
    # the index is signed, unsigned (``uo_``) for the index helpers, which index with ``U``: one IR value fewer
    # per access than a conversion at each access, and Numba's compile time grows with the IR's values
    o = arena_offsets(k_region_log2)
    o_S, o_par, o_lvl_base, o_lvl_fan, o_dims, o_blb = (o[k] for k in ("S", "par", "lvl_base", "lvl_fan", "dims", "blb"))
    uo_S, uo_par, uo_blb, uo_faw_pos, uo_rules, uo_nob = (U(o[k]) for k in ("S", "par", "blb", "faw_pos", "rules", "nob"))
    uo_nxt, uo_faw, uo_bank, uo_chs, uo_nab, uo_qlen = (U(o[k]) for k in ("nxt", "faw", "bank", "chs", "nab", "qlen"))
    uo_abk, uo_qord, uo_ent, uo_lists, uo_freel, uo_ref = (U(o[k]) for k in ("abk", "qord", "ent", "lists", "freel", "ref"))
    uo_ring, uo_fifo, uo_bank_stats, uo_hist = (U(o[k]) for k in ("ring", "fifo", "bank_stats", "hist"))

    # ``_nrt=False``: compiled without Numba's reference counting. The kernel allocates nothing (every array
    # is passed in and outlives the call), so the counts guard nothing, yet the closures below paid an
    # atomic increment and decrement, each a call, on most reads of an enclosing array: about a quarter of
    # the kernel's time (measured: streams 1.4x faster without them, random traffic 1.1-1.2x). Numba refuses
    # to compile anything that would need the runtime (an array created inside), so this cannot go wrong
    # silently.
    # ``nogil``: the engine decodes the next slice of the trace on a helper thread meanwhile.
    @njit(cache=True, _nrt=False, nogil=True)
    def run_chunk(A, tx_ch, tx_bank, tx_row, tx_addr, req_write, req_arrival, qd, final, out_done):
        """Replay one chunk of requests. Returns the number of requests of the chunk accepted.

        Parameters
        ----------
        A : int64[:], the arena of :class:`memsim.dram.engine.KernelState`: ``par`` and ``rules`` (from
            :func:`memsim.dram.timing.compile_timing`), ``nob`` (int64[n_banks, 5], the node index of each
            bank at each level, channel ... bank), ``lvl_base`` and ``lvl_fan`` (int64[5], first node index
            of each level and children per parent), the mutable state arrays and ``dims``, each flattened
            into its own region (see ``ARENA_REGIONS``) and indexed through the ``i_*`` helpers.
        tx_ch, tx_bank, tx_row, tx_addr : int64[n_req * transactions per request], decoded transactions, request-major.
        req_write : uint8[n_req]; req_arrival : int64[n_req], arrival cycle (0 = available at once).
        qd : int, maximum outstanding requests (0 = unlimited). final : bool, drain everything before return.
        out_done : int64[record_requests], each recorded request's completion cycle.
        Of the state arrays, ``ent`` is the per-channel pool of queued transactions, ``lists`` the per-bank
        queue lists, ``abk``/``nab`` the banks with entries per channel and queue, ``qord`` each queue in
        arrival order, ``freel`` the free pool slots (entry numbers across channels).
        """
        if len(k_layout) == 0:  # never: names the layout as a closure value (see ``TIMING_LAYOUT``)
            return 0




        n_req = req_write.shape[0]
        # the controller structure: this build's constants, or (generic build: -1) read from ``par``
        bank_queues = (A[o_par + P_BQD] > 0) if k_bank_queues < 0 else k_bank_queues != 0
        active_buffer = (A[o_par + P_ACTBUF] > 0) if k_active_buffer < 0 else k_active_buffer != 0
        separate_buses = (A[o_par + P_SEPBUS] != 0) if k_separate_buses < 0 else k_separate_buses != 0
        timeout_rows = (A[o_par + P_ROWPOL] == ROW_TIMEOUT) if k_timeout_rows < 0 else k_timeout_rows != 0
        tx_per = A[o_par + P_TXPERREQ] if k_tx_per_req < 0 else k_tx_per_req
        nch = A[o_par + P_NCH]
        qcap0 = A[o_par + P_RQ]
        qcap1 = A[o_par + P_WQ]
        fifo_mask = A[o_dims + D_FIFO_ROWS] - 1
        n_units = A[o_dims + D_UNITS]
        n_banks = A[o_dims + D_BANKS]
        pool_w = A[o_dims + D_POOL]  # queue entries per channel
        qord_w = A[o_dims + D_QORD_W]  # slots of one queue's order row
        hist_w = A[o_dims + D_HIST_W]  # bins of one latency histogram row
        banks_per_ch = n_banks // nch
        units_per_ch = n_units // nch
        banks_per_unit = n_banks // n_units if n_units > 0 else 1
        wide = banks_per_ch > MASK_MAX_BANKS
        all_banks = (np.int64(1) << banks_per_ch) - 1 if not wide else 0

        # The helpers below are closures rather than functions taking the arena: Numba inlines a closure
        # called in its own function. (While the kernel still ran with reference counting, see ``_nrt=False``
        # above, a closure also read the enclosing arrays with far fewer count updates than a helper taking
        # them as arguments.)
        # The hottest helpers index with unsigned integers (``U``): a signed index costs a negative-index
        # wrap-around per dimension, which these indices (banks, nodes, commands, rule rows) never need.
        # (Measured on this pattern: 8.2 -> 5.2 ns per lookup.)
        # The state arrays reach the kernel flattened into the regions of the arena (see ``ARENA_REGIONS``)
        # and are indexed through these helpers (inlined where they are called): the region's offset and a
        # row's width are constants of the build, so that most accesses are one multiply-add on constants
        # and a load at a constant displacement from the arena. (Flat arrays against the 2-D arrays before,
        # one process, best of 5 alternating: streams 1.19-1.38x, random traffic 1.09-1.23x, mixed
        # 1.05-1.09x; the arena against separate flat arrays: see ``ARENA_REGIONS``.) Entries are numbered
        # across channels (channel ``c``'s pool holds ``c * pool_w`` .. ``(c + 1) * pool_w - 1``), so an
        # entry's fields need no channel index.
        def i_nxt(node, cmd):
            return uo_nxt + U(node) * U(N_CMDS) + U(cmd)

        def i_nob(b, lv):
            return uo_nob + U(b) * U(N_LEVELS) + U(lv)

        def i_rule(k, f):
            return uo_rules + U(k) * U(N_RULE_F) + U(f)

        def i_bank(b, f):
            return uo_bank + U(b) * U(N_B) + U(f)

        def i_bstat(b, f):
            return uo_bank_stats + U(b) * U(2) + U(f)

        def i_lists(b, f):
            return uo_lists + U(b) * U(N_L) + U(f)

        def i_chs(c, f):
            return uo_chs + U(c) * U(N_C) + U(f)

        def i_nab(c, f):
            return uo_nab + U(c) * U(N_NAB) + U(f)

        def i_ring(slot, f):
            return uo_ring + U(slot) * U(N_R) + U(f)

        def i_faw(rk, k):
            return uo_faw + U(rk) * U(4) + U(k)

        def i_fifo(k, f):
            return uo_fifo + U(k) * U(2) + U(f)

        def i_ref(u, f):
            return uo_ref + U(u) * U(N_U) + U(f)

        def i_ent(e, f):
            return uo_ent + U(e) * U(N_F) + U(f)

        def i_qord(c, qq, k):
            return uo_qord + (U(c) * U(3) + U(qq)) * U(qord_w) + U(k)

        def i_abk(c, qq, k):
            return uo_abk + (U(c) * U(3) + U(qq)) * U(banks_per_ch) + U(k)

        def i_freel(c, k):
            return uo_freel + U(c) * U(pool_w) + U(k)





        def i_hist(w, k):
            return uo_hist + U(w) * U(hist_w) + U(k)

        def i_qlen(qq, c):
            return uo_qlen + U(qq) * U(nch) + U(c)

        def ready(b, cmd):
            """Earliest cycle ``cmd`` may issue to bank ``b`` by the timing rules (tFAW aside)."""
            ub = U(b)
            uc = U(cmd)
            r = A[i_nxt(A[i_nob(ub, 0)], uc)]
            for lv in range(1, N_LEVELS):
                v = A[i_nxt(A[i_nob(ub, lv)], uc)]
                if v > r:
                    r = v
            return r

        def apply_rules(b, cmd, t):
            """Command ``cmd`` issued to bank ``b`` at ``t``: raise the earliest-issue times it constrains."""
            ub = U(b)
            for k in range(A[uo_par + U(P_RULES_OF + cmd)], A[uo_par + U(P_RULES_OF + cmd + 1)]):
                uk = U(k)
                lv = A[i_rule(uk, 2)]
                nt = t + A[i_rule(uk, 3)]
                node = A[i_nob(ub, lv)]
                nc = U(A[i_rule(uk, 1)])
                if A[i_rule(uk, 4)] == 0:
                    if A[i_nxt(node, nc)] < nt:
                        A[i_nxt(node, nc)] = nt
                else:
                    fan = A[o_lvl_fan + lv]
                    first = A[o_lvl_base + lv] + ((node - A[o_lvl_base + lv]) // fan) * fan
                    for s in range(first, first + fan):
                        if s != node and A[i_nxt(s, nc)] < nt:
                            A[i_nxt(s, nc)] = nt

        def complete_request(slot, done):
            out_done_ = out_done
            lat = done - A[i_ring(slot, R_ACCEPT)]
            w = A[i_ring(slot, R_WRITE)]
            h = hist_w - 1
            A[i_hist(w, lat if lat < h else h)] += 1
            if w == 0:
                A[o_S + S_DONE_READS] += 1
                A[o_S + S_LAT_SUM_R] += lat
                if lat > A[o_S + S_LAT_MAX_R]:
                    A[o_S + S_LAT_MAX_R] = lat
            else:
                A[o_S + S_DONE_WRITES] += 1
                A[o_S + S_LAT_SUM_W] += lat
                if lat > A[o_S + S_LAT_MAX_W]:
                    A[o_S + S_LAT_MAX_W] = lat
            gid = A[i_ring(slot, R_GID)]
            if gid < out_done_.shape[0]:
                out_done_[gid] = done
            if done > A[o_S + S_LAST_DONE]:
                A[o_S + S_LAST_DONE] = done
            A[o_S + S_OUTSTANDING] -= 1
            A[i_ring(slot, R_REMAIN)] = -1
            A[i_ring(A[o_S + S_FREE_TOP], R_FREE)] = slot
            A[o_S + S_FREE_TOP] += 1

        def tx_done(slot, done):
            if slot < 0:
                return
            if done > A[i_ring(slot, R_DONE)]:
                A[i_ring(slot, R_DONE)] = done
            A[i_ring(slot, R_REMAIN)] -= 1
            if A[i_ring(slot, R_REMAIN)] == 0:
                complete_request(slot, A[i_ring(slot, R_DONE)])

        def close_bank(c, b, pre_t):
            """Precharge bank ``b`` at ``pre_t`` (auto-precharge or timeout)."""
            apply_rules(b, PRE, pre_t)
            A[i_bank(b, B_ROW)] = -1
            A[o_blb + b] = 0
            A[i_bank(b, B_HP0)] = 0
            A[i_bank(b, B_HP1)] = 0
            A[i_bank(b, B_HP2)] = 0
            A[i_chs(c, C_PRE)] += 1

        def timeout_close(c, b, t):
            """Lazily apply the timeout row policy to bank ``b`` as of cycle ``t``."""
            if A[i_bank(b, B_ROW)] < 0 or A[i_bank(b, B_HP0)] + A[i_bank(b, B_HP1)] + A[i_bank(b, B_HP2)] > 0:
                return
            close_t = A[i_bank(b, B_LAST)] + A[o_par + P_TIMEOUT]
            if close_t > t:
                return
            r = ready(b, PRE)
            if r > close_t:
                close_t = r
            if close_t <= t:
                close_bank(c, b, close_t)

        def unit_banks(u):
            if A[o_par + P_REFRESH] == REF_ALLBANK:
                return u * banks_per_unit, (u + 1) * banks_per_unit
            b0 = u * banks_per_unit + A[i_ref(u, U_NEXT_BANK)]
            return b0, b0 + 1

        def do_refresh(u, c, t):
            """Refresh unit ``u`` now: close its banks at the earliest legal precharge, then block ACT for tRFC."""
            b0, b1 = unit_banks(u)
            if timeout_rows:
                # rows that timed out before now were closed then, not by this refresh
                for b in range(b0, b1):
                    timeout_close(c, b, t)
            if A[o_par + P_REFRESH] == REF_ALLBANK:
                dur = A[o_par + P_RFC]
                interval = A[o_par + P_REFI]
            else:
                A[i_ref(u, U_NEXT_BANK)] = (A[i_ref(u, U_NEXT_BANK)] + 1) % banks_per_unit
                dur = A[o_par + P_RFCPB]
                interval = A[o_par + P_REFIPB]
            start = t
            any_open = False
            for b in range(b0, b1):
                if A[i_bank(b, B_ROW)] >= 0:
                    any_open = True
                    r = ready(b, PRE)
                    if r > start:
                        start = r
            ref_t = start + A[o_par + P_RP] if any_open else start
            for b in range(b0, b1):
                r = A[i_nxt(A[i_nob(b, L_BK)], ACT)]  # tRC / tRP of earlier commands still hold for REF
                if r > ref_t:
                    ref_t = r
            end = ref_t + dur
            for b in range(b0, b1):
                A[i_bank(b, B_ROW)] = -1
                A[o_blb + b] = 0
                A[i_bank(b, B_HP0)] = 0
                A[i_bank(b, B_HP1)] = 0
                A[i_bank(b, B_HP2)] = 0
                node = A[i_nob(b, L_BK)]
                if A[i_nxt(node, ACT)] < end:
                    A[i_nxt(node, ACT)] = end
            if any_open:
                A[i_chs(c, C_PRE)] += 1
            A[i_chs(c, C_REF)] += 1
            A[i_chs(c, C_QUIET)] = 0  # rows closed and activation blocked: the command bound is void
            A[o_S + S_REF_CYCLES] += end - t
            A[i_ref(u, U_DUE)] += interval
            A[i_ref(u, U_PENDING)] = 0
            A[i_chs(c, C_REFPEND)] -= 1

        def write_mode_flips(c):
            """Whether channel ``c``'s write mode changes at its next decision: it enters write-drain mode above
            the high watermark (or when no read waits) and leaves it below the low one (or when no write waits)."""
            rl = A[i_qlen(Q_READ, c)]
            wl = A[i_qlen(Q_WRITE, c)]
            if A[i_chs(c, C_WMODE)] != 0:
                return wl == 0 or (wl < A[o_par + P_WLO] and rl > 0)
            return wl > 0 and (wl > A[o_par + P_WHI] or rl == 0)

        def update_write_mode(c):
            if write_mode_flips(c):
                A[i_chs(c, C_WMODE)] = 1 - A[i_chs(c, C_WMODE)]
                if not bank_queues:
                    # the other queue's requests are the candidates now: their banks' bounds are void (bank
                    # command queues hold both kinds, so there the write mode changes no bank's candidates)
                    for qq in range(2):
                        for k in range(A[i_nab(c, qq)]):
                            A[uo_blb + U(A[i_abk(c, qq, k)])] = 0

        def rebase_order(c, qq):
            """Move queue ``qq``'s entries to the start of its ``qord`` row (its end was reached)."""
            uc = U(c)
            h = A[i_nab(uc, 3 + qq)]
            n = A[i_nab(uc, 6 + qq)] - h
            for k in range(n):
                A[i_qord(uc, qq, k)] = A[i_qord(uc, qq, h + k)]
            A[i_nab(uc, 3 + qq)] = 0
            A[i_nab(uc, 6 + qq)] = n

        def link(c, qq, e):
            """Append pool entry ``e`` to its bank's list of queue ``qq``."""
            uc = U(c)
            ue = U(e)
            b = A[i_ent(ue, F_BANK)]
            if qq == Q_CMD or not bank_queues:
                A[uo_blb + U(b)] = 0  # a new candidate: the bank's bound is void
            tail = A[i_lists(b, 3 * qq + 1)]
            A[i_ent(ue, F_NEXT)] = -1
            A[i_ent(ue, F_PREV)] = tail
            if tail >= 0:
                A[i_ent(tail, F_NEXT)] = e
            else:
                A[i_lists(b, 3 * qq)] = e
                # the bank gets its first entry in this queue: enter the channel's list of banks with entries
                k = A[i_nab(uc, qq)]
                A[i_abk(uc, qq, k)] = b
                A[i_lists(b, 9 + qq)] = k
                A[i_nab(uc, qq)] = k + 1
            A[i_lists(b, 3 * qq + 1)] = e
            A[i_lists(b, 3 * qq + 2)] += 1
            A[i_qlen(qq, uc)] += 1
            if qq == Q_CMD:
                A[i_chs(uc, C_CMDW)] += A[i_ent(ue, F_WRITE)]
            if not bank_queues:
                # appended to the queue order: its youngest entry
                if A[i_nab(uc, 6 + qq)] == qord_w:
                    rebase_order(c, qq)
                tl = A[i_nab(uc, 6 + qq)]
                A[i_qord(uc, qq, tl)] = (b << QSHIFT) | e
                A[i_nab(uc, 6 + qq)] = tl + 1

        def unlink(c, qq, e):
            uc = U(c)
            ue = U(e)
            b = A[i_ent(ue, F_BANK)]
            nx = A[i_ent(ue, F_NEXT)]
            pv = A[i_ent(ue, F_PREV)]
            if pv >= 0:
                A[i_ent(pv, F_NEXT)] = nx
            else:
                A[i_lists(b, 3 * qq)] = nx
            if nx >= 0:
                A[i_ent(nx, F_PREV)] = pv
            else:
                A[i_lists(b, 3 * qq + 1)] = pv
            A[i_lists(b, 3 * qq + 2)] -= 1
            A[i_qlen(qq, uc)] -= 1
            if qq == Q_CMD:
                A[i_chs(uc, C_CMDW)] -= A[i_ent(ue, F_WRITE)]
            if not bank_queues:
                # close the gap from the nearer end (entries leave mostly at the front: the oldest ready)
                h = A[i_nab(uc, 3 + qq)]
                tl = A[i_nab(uc, 6 + qq)]
                p = h
                key = (b << QSHIFT) | e
                while A[i_qord(uc, qq, p)] != key:
                    p += 1
                if p - h <= tl - 1 - p:
                    for j in range(p, h, -1):
                        A[i_qord(uc, qq, j)] = A[i_qord(uc, qq, j - 1)]
                    A[i_nab(uc, 3 + qq)] = h + 1
                else:
                    for j in range(p, tl - 1):
                        A[i_qord(uc, qq, j)] = A[i_qord(uc, qq, j + 1)]
                    A[i_nab(uc, 6 + qq)] = tl - 1
            if A[i_lists(b, 3 * qq + 2)] == 0:
                k = A[i_lists(b, 9 + qq)]
                last = A[i_nab(uc, qq)] - 1
                ob = A[i_abk(uc, qq, last)]
                A[i_abk(uc, qq, k)] = ob
                A[i_lists(ob, 9 + qq)] = k
                A[i_nab(uc, qq)] = last

        def count_hits(c, qq, b, row):
            n = 0
            e = A[i_lists(b, 3 * qq)]
            while e >= 0:
                if A[i_ent(e, F_ROW)] == row:
                    n += 1
                e = A[i_ent(e, F_NEXT)]
            return n

        def cmd_ready(b, cmd):
            r = ready(b, cmd)
            if cmd == ACT:
                rk = A[i_nob(b, L_RK)] - A[o_lvl_base + L_RK]
                fw = A[i_faw(rk, A[uo_faw_pos + U(rk)])] + A[o_par + P_FAW]
                if fw > r:
                    r = fw
            return r

        def memo_ready(b, cmd, scan):
            """``cmd_ready``, computed once per bank and command in one scheduling scan."""
            ub = U(b)
            if A[i_lists(ub, L_MEMO_STAMP + cmd)] == scan:
                return A[i_lists(ub, L_MEMO_VAL + cmd)]
            r = cmd_ready(b, cmd)
            A[i_lists(ub, L_MEMO_STAMP + cmd)] = scan
            A[i_lists(ub, L_MEMO_VAL + cmd)] = r
            return r

        def issue_col(c, qq, e, t):
            uc = U(c)
            ue = U(e)
            b = A[i_ent(ue, F_BANK)]
            w = A[i_ent(ue, F_WRITE)]
            apply_rules(b, RD + w, t)
            flags = A[i_ent(ue, F_FLAGS)]
            if flags & FLAG_PRE:
                A[i_chs(uc, C_CONF)] += 1
            elif flags & FLAG_ACT:
                A[i_chs(uc, C_MISS)] += 1
            else:
                A[i_chs(uc, C_HIT)] += 1
            A[i_chs(uc, C_RD + w)] += 1
            A[i_bank(b, B_HP0 + qq)] -= 1
            A[i_bank(b, B_STREAK)] += 1
            A[i_bank(b, B_LAST)] = t
            A[uo_blb + U(b)] = 0
            A[i_bstat(b, 1)] += 1
            slot = A[i_ent(ue, F_SLOT)]
            if w == 0:
                tl = A[o_S + S_FIFO_TAIL]
                A[i_fifo(tl & fifo_mask, 0)] = t + A[o_par + P_CL] + A[o_par + P_BURST]
                A[i_fifo(tl & fifo_mask, 1)] = slot
                A[o_S + S_FIFO_TAIL] = tl + 1
            else:
                tx_done(slot, t)
            unlink(c, qq, e)
            A[i_freel(uc, A[i_chs(uc, C_NFREE)])] = e
            A[i_chs(uc, C_NFREE)] += 1
            A[o_S + S_QUEUED] -= 1
            if qq != Q_CMD or bank_queues:
                A[o_S + S_FREED] = 1
            if A[o_par + P_ROWPOL] == ROW_CLOSED and A[i_bank(b, B_HP0)] + A[i_bank(b, B_HP1)] + A[i_bank(b, B_HP2)] == 0:
                pre_t = ready(b, PRE)
                if pre_t < t:
                    pre_t = t
                close_bank(c, b, pre_t)

        def issue_row(c, qq, e, cmd, t):
            b = A[i_ent(e, F_BANK)]
            A[uo_blb + U(b)] = 0
            if cmd == ACT:
                row = A[i_ent(e, F_ROW)]
                apply_rules(b, ACT, t)
                rk = A[i_nob(b, L_RK)] - A[o_lvl_base + L_RK]
                A[i_faw(rk, A[uo_faw_pos + U(rk)])] = t
                A[uo_faw_pos + U(rk)] = (A[uo_faw_pos + U(rk)] + 1) & 3
                A[i_bank(b, B_ROW)] = row
                A[i_bank(b, B_LAST)] = t
                A[i_bank(b, B_STREAK)] = 0
                A[i_ent(e, F_FLAGS)] |= FLAG_ACT
                A[i_chs(c, C_ACT)] += 1
                A[i_bstat(b, 0)] += 1
                if active_buffer and qq != Q_CMD and A[i_qlen(Q_CMD, c)] < A[o_par + P_ACTBUF]:
                    # Ramulator 2: an activated request leaves the read/write buffer for the active buffer
                    unlink(c, qq, e)
                    A[i_ent(e, F_SEQ)] = A[o_S + S_SEQ]
                    A[o_S + S_SEQ] += 1
                    link(c, Q_CMD, e)
                    A[o_S + S_FREED] = 1
                A[i_bank(b, B_HP0)] = count_hits(c, 0, b, row)
                A[i_bank(b, B_HP1)] = count_hits(c, 1, b, row)
                A[i_bank(b, B_HP2)] = count_hits(c, 2, b, row)
            else:
                apply_rules(b, PRE, t)
                A[i_bank(b, B_ROW)] = -1
                A[i_bank(b, B_HP0)] = 0
                A[i_bank(b, B_HP1)] = 0
                A[i_bank(b, B_HP2)] = 0
                A[i_ent(e, F_FLAGS)] |= FLAG_PRE
                A[i_chs(c, C_PRE)] += 1

        def keep_row_bound(b, qi, cmd, r, t):
            """A read/write-queue scan found ``cmd`` not ready for bank ``b`` until ``r``: where that is a row
            command and the bank has no row hits queued, it is the bank's only kind of candidate, so ``r``
            bounds the bank until its candidates change."""
            if r > t and cmd < RD and A[i_bank(b, B_HP0 + qi)] + A[i_bank(b, B_HP2)] == 0:
                A[uo_blb + U(b)] = r

        def capped(b):
            """The FR-FCFS cap: bank ``b``'s open row has served ``cap`` column accesses since its ACT."""
            cap = A[o_par + P_CAP]
            return cap > 0 and A[i_bank(b, B_STREAK)] >= cap

        def precharge_allowed(b, qi):
            """Whether a read/write-queue scan may precharge bank ``b`` for a queued miss of queue ``qi``: never
            while an activated request waits for the row (active buffer), nor, with the guard, while a queued
            request of ``qi`` still hits it, unless the row is capped."""
            if active_buffer and A[i_lists(b, 3 * Q_CMD + 2)] > 0:
                return False
            return not (A[o_par + P_GUARD] != 0 and A[i_bank(b, B_HP0 + qi)] > 0 and not capped(b))

        def due_mask(c0, t):
            """One pass over the bounds of the banks ``c0 ..`` of a channel: a mask with bit ``lb`` set where bank
            ``c0 + lb``'s bound is at most ``t`` (it may have a command ready, or its bound is unknown), and the
            least bound of the others. Written without a branch per bank so that LLVM vectorises it (a branch per
            bank would mispredict often on random traffic)."""
            m = 0
            mn = INF
            for lb in range(banks_per_ch):
                v = A[uo_blb + U(c0 + lb)]
                d = v <= t
                m |= np.int64(d) << lb
                mn = min(mn, INF if d else v)
            return m, mn

        def bq_bank_bound(c, b):
            """Earliest cycle any candidate of bank ``b``'s command queue can issue (INF if none): the
            candidates of the bank-queue scan in ``schedule`` (keep the two in step), i.e. its row hits, and
            its head's ACT / PRE where the scan would consider one."""
            uc = U(c)
            ub = U(b)
            h = A[i_lists(ub, 3 * Q_CMD)]
            if h < 0:
                return INF
            orow = A[i_bank(ub, B_ROW)]
            lower = INF
            if orow >= 0 and A[i_bank(ub, B_HP2)] > 0:
                lower = ready(b, RD)
                rw = ready(b, RD + 1)
                if rw < lower:
                    lower = rw
            if A[i_ent(h, F_ROW)] != orow:
                cmd = ACT if orow < 0 else PRE
                if cmd == ACT or A[i_bank(ub, B_HP2)] == 0 or capped(b):
                    r = cmd_ready(b, cmd)
                    if r < lower:
                        lower = r
            return lower

        def bq_next_look(c, t, quiet):
            """When a bank-queue channel whose next command cannot issue before ``quiet`` must decide again:
            at the next cycle if its write mode flips or a transaction can move into a bank queue (one per
            cycle), else at ``quiet``."""
            uc = U(c)
            t1 = t + 1
            if quiet <= t1 or write_mode_flips(c):
                return t1
            wm = A[i_chs(uc, C_WMODE)]
            for k in range(A[i_nab(uc, wm)]):
                if A[i_lists(A[i_abk(uc, wm, k)], 3 * Q_CMD + 2)] < A[o_par + P_BQD]:
                    return t1
            return quiet

        def bq_quiet_until(c, t):
            """After a DRAMSim3-style decision that issued a command at ``t``: the cycle of the channel's next
            useful decision, when it is provably later than ``t + 1`` (else ``t + 1``).

            A decision that issues nothing and moves nothing changes no state, so it can be skipped. The
            next one can act only when the write mode flips, a transaction can move into a bank queue, or a
            candidate command becomes ready; arrivals and refreshes wake the channel themselves, and the main
            loop looks again at the next cycle when a write completed as it issued under a queue-depth limit
            (the front end may take a request then). The command bound is the earliest of the candidates'
            commands over every busy bank queue: a few readiness look-ups per bank, cheaper than the
            round-robin scan of an empty decision (measured: random traffic takes 3.4 instead of 5.0
            decisions per request and runs 1.2x faster); with more than ``BQ_FEW_BANKS`` busy bank queues,
            a bank's bound ``blb`` still in the future is reused rather than recomputed. The result is kept
            in ``C_QUIET`` so that the decisions that only move a transaction before it skip the scan. Needs
            the open or closed row policy: the timeout policy closes rows lazily during scans.
            """
            uc = U(c)
            t1 = t + 1
            lower = INF
            if A[i_nab(uc, Q_CMD)] > BQ_FEW_BANKS and not wide:
                # one pass over the channel's contiguous row of bounds; recompute only those not in the future
                # (an idle bank's is INF; ``link`` voids it)
                c0 = c * banks_per_ch
                stale, lower = due_mask(c0, t1)
                while stale != 0:
                    lb = trailing_zeros(stale)
                    stale &= stale - 1
                    r = bq_bank_bound(c, c0 + lb)
                    A[uo_blb + U(c0 + lb)] = r
                    if r < lower:
                        lower = r
            elif A[i_nab(uc, Q_CMD)] > BQ_FEW_BANKS:
                c0 = c * banks_per_ch
                for lb in range(banks_per_ch):
                    ub = U(c0 + lb)
                    r = A[uo_blb + ub]
                    if r <= t1:
                        r = bq_bank_bound(c, c0 + lb)
                        A[uo_blb + ub] = r
                    if r < lower:
                        lower = r
            else:
                for k in range(A[i_nab(uc, Q_CMD)]):
                    b = A[i_abk(uc, Q_CMD, k)]
                    r = bq_bank_bound(c, b)
                    A[uo_blb + U(b)] = r
                    if r < lower:
                        lower = r
                        if lower <= t1:
                            break
            A[i_chs(uc, C_QUIET)] = lower
            return bq_next_look(c, t, lower)

        def quiet_until(c, t):
            """After a decision of a read/write-queue controller (FR-FCFS, FCFS, first-ready, with or without
            Ramulator 2's active buffer) that issued at ``t``: a lower bound on the cycle at which any of its
            candidates can issue, or ``t + 1``.

            The decisions in between would find nothing ready and change no state, so they are skipped, as
            ``bq_quiet_until`` does for bank queues. The bound is taken per bank with queued requests, over the
            commands its requests need (row hits: RD/WR; other requests: ACT or PRE), which bounds every
            candidate the scan could pick whatever its order and filters. Arrivals and refreshes wake the
            channel themselves; a write-mode flip or the timeout row policy (lazy closes during scans) need the
            next cycle, and so does a channel with more than ``QUIET_MAX_BANKS`` banks queued.
            """
            uc = U(c)
            t1 = t + 1
            wm = A[i_chs(uc, C_WMODE)]
            if write_mode_flips(c) or A[i_nab(uc, wm)] + A[i_nab(uc, Q_CMD)] > QUIET_MAX_BANKS:
                return t1
            lower = INF
            for qq in (wm, Q_CMD):
                for k in range(A[i_nab(uc, qq)]):
                    b = A[i_abk(uc, qq, k)]
                    ub = U(b)
                    r = A[uo_blb + ub]
                    if r > t1:
                        if r < lower:
                            lower = r
                        continue
                    orow = A[i_bank(ub, B_ROW)]
                    if orow < 0:
                        r = cmd_ready(b, ACT)
                    else:
                        hq = A[i_bank(ub, B_HP0 + wm)]
                        r = INF
                        if hq + A[i_bank(ub, B_HP2)] > 0:
                            r = ready(b, RD)
                            rw = ready(b, RD + 1)
                            if rw < r:
                                r = rw
                        # a precharge is a candidate only for a queued miss that the scan's filters let through
                        # (active-buffer requests never precharge; see the read/write-queue scan in ``schedule``)
                        if A[i_lists(ub, 3 * wm + 2)] > hq and precharge_allowed(b, wm):
                            rp = ready(b, PRE)
                            if rp < r:
                                r = rp
                    if orow < 0 or A[i_bank(ub, B_HP0 + wm)] + A[i_bank(ub, B_HP2)] == 0:
                        # kept only for row commands (ACT, PRE): other banks' commands move them little,
                        # while every column command of the channel moves the column commands' bound
                        A[uo_blb + ub] = r
                    if r < lower:
                        lower = r
                        if lower <= t1:
                            return t1
            return lower

        def arrival_wake(c, b, row, w, t):
            """A request for bank ``b`` (row ``row``, write ``w``) joined channel ``c``'s queue at ``t``: when
            the channel must next decide. With read/write queues, the request only adds its own command as a
            candidate, so the channel need not look before that command can issue (the earlier wake-up still
            bounds the other requests), unless the arrival flips the write mode; nor at all if the request
            waits in the queue not being served. With per-bank command queues, the request can only move on,
            and only if its bank's queue has room. The timeout row policy looks at once (it closes rows lazily).
            """
            uc = U(c)
            if timeout_rows:
                return t
            if write_mode_flips(c):
                return t
            wake = A[uo_S + U(N_S) + uc]
            wm = A[i_chs(uc, C_WMODE)]
            if w != wm:
                return wake
            if bank_queues:
                # per-bank command queues: the request waits in the transaction queue; it can move on (one
                # transaction per cycle) only if its bank's command queue has room
                return t if A[i_lists(b, 3 * Q_CMD + 2)] < A[o_par + P_BQD] else wake
            orow = A[i_bank(b, B_ROW)]
            if orow == row:
                r = ready(b, RD + w)
            elif orow < 0:
                r = cmd_ready(b, ACT)
            else:
                r = ready(b, PRE)
            if r < t:
                r = t
            return r if r < wake else wake

        def schedule(c, t):
            """One controller decision for channel ``c`` at cycle ``t``. Returns the cycle to look again.

            Requests of one bank share the bank's state, so each bank offers at most a few candidates: its oldest
            row hit of each kind (read, write) and its oldest request that needs the row changed. Candidates are
            ranked by their queue order (``F_SEQ``), which is what a scan of the whole queue would see.
            """
            uc = U(c)
            sched = A[o_par + P_SCHED]
            sep = separate_buses
            ab = active_buffer
            bq = bank_queues
            mn = INF
            # ---- refresh waiting for this channel
            ref_block = False
            for u in range(c * units_per_ch, (c + 1) * units_per_ch):
                if A[i_chs(uc, C_REFPEND)] == 0:
                    break
                if A[i_ref(u, U_PENDING)] == 0:
                    continue
                if ab:
                    b0, b1 = unit_banks(u)
                    busy = 0
                    for b in range(b0, b1):
                        busy += A[i_lists(b, 3 * Q_CMD + 2)]
                    if busy > 0:  # Ramulator 2 lets activated requests finish, and nothing else starts
                        ref_block = True
                        continue
                do_refresh(u, c, t)
            if not ab:
                update_write_mode(c)
            qi = A[i_chs(c, C_WMODE)]
            col_q = -1
            col_e = -1
            row_q = -1
            row_e = -1
            row_cmd = -1
            A[o_S + S_SCAN_ID] += 1
            scan = A[o_S + S_SCAN_ID]
            # with per-bank command queues, no command can issue before C_QUIET: the decision only moves
            move_only = bq and A[i_chs(uc, C_QUIET)] > t
            if bq and not move_only:
                # DRAMSim3: per-bank command queues, visited round robin; in each, the first ready command.
                # A precharge is only considered at the head of its queue, and only when no queued request
                # still hits the open row or the row has served ``cap`` hits already.
                rr = A[i_chs(uc, C_RR)]
                c0 = c * banks_per_ch
                # with few busy bank queues, visit just those, in round-robin order (the next one is the
                # busy bank at the least distance past the last visited): the rest would be skipped as empty
                n_busy = A[i_nab(uc, Q_CMD)]
                few = n_busy <= BQ_FEW_BANKS
                n_visit = n_busy
                visit = 0
                if not few and not wide:
                    # else one pass over the channel's bank bounds (one contiguous row) marks the banks that may
                    # have a command ready now, visited in round-robin order (the mask rotated to start at
                    # ``rr``); the others only lower ``mn``. Measured with the contiguous bounds and the pass in
                    # ``bq_quiet_until`` (interleaved best of 9, as a list of banks rather than a mask): random
                    # traffic 1.18x (DRAMSim3 HBM2) and 1.24x (DDR4), streams 0.96-1.00x. Visiting the banks in
                    # order with the same row of bounds, stopping at the first ready one, ran random traffic
                    # 0.95x of this. The mask instead of the list (side by side, 4 rounds): random traffic
                    # 1.22x (HBM2) and 1.30x (DDR4), mixed 1.17-1.20x, streams 1.00x; the mask also for few
                    # busy banks, instead of the search below, ran streams 0.73-0.85x.
                    if timeout_rows:
                        visit = all_banks
                    else:
                        visit, bmn = due_mask(c0, t)
                        if bmn < mn:
                            mn = bmn
                    if rr > 0:
                        visit = ((visit >> rr) | (visit << (banks_per_ch - rr))) & all_banks
                elif not few:
                    # channels too wide for a mask: the same pass lists the banks in the channel's ``qord`` row,
                    # which bank-queue controllers do not use otherwise
                    n_visit = 0
                    lb = rr
                    for k in range(banks_per_ch):
                        v = A[uo_blb + U(c0 + lb)]
                        A[i_qord(uc, 0, n_visit)] = lb
                        if timeout_rows or v <= t:
                            n_visit += 1
                        elif v < mn:
                            mn = v
                        lb += 1
                        if lb == banks_per_ch:
                            lb = 0
                dist = -1
                k = 0
                while True:
                    if few or wide:
                        if k == n_visit:
                            break
                        k += 1
                    elif visit == 0:
                        break
                    if few:
                        nd = banks_per_ch
                        for j in range(n_busy):
                            d = A[i_abk(uc, Q_CMD, j)] - c0 - rr
                            if d < 0:
                                d += banks_per_ch
                            if dist < d < nd:
                                nd = d
                        dist = nd
                        lb = rr + nd
                        if lb >= banks_per_ch:  # (rr + nd) % banks_per_ch without a division
                            lb -= banks_per_ch
                    elif wide:
                        lb = A[i_qord(uc, 0, k - 1)]
                    else:
                        lb = rr + trailing_zeros(visit)
                        visit &= visit - 1
                        if lb >= banks_per_ch:
                            lb -= banks_per_ch
                    b = c0 + lb
                    ub = U(b)
                    h = A[i_lists(ub, 3 * Q_CMD)]
                    if h < 0:
                        A[uo_blb + ub] = INF  # no candidate until a transaction joins (``link`` voids the bound)
                        continue
                    if timeout_rows:
                        timeout_close(c, b, t)
                    if A[uo_blb + ub] > t:
                        # no candidate of this bank can issue before its bound: skip the look-ups
                        if A[uo_blb + ub] < mn:
                            mn = A[uo_blb + ub]
                        continue
                    orow = A[i_bank(ub, B_ROW)]
                    ec = -1
                    er = -1
                    ecmd = -1
                    bmn = INF
                    if orow >= 0 and A[i_bank(ub, B_HP2)] > 0:
                        e = h
                        while e >= 0:
                            if A[i_ent(e, F_ROW)] == orow:
                                cmd = RD + A[i_ent(e, F_WRITE)]
                                r = memo_ready(b, cmd, scan)
                                if r <= t:
                                    ec = e
                                    break
                                if r < bmn:
                                    bmn = r
                            e = A[i_ent(e, F_NEXT)]
                    if A[i_ent(h, F_ROW)] != orow:
                        cmd = ACT if orow < 0 else PRE
                        if cmd == ACT or A[i_bank(ub, B_HP2)] == 0 or capped(b):
                            r = memo_ready(b, cmd, scan)
                            if r <= t:
                                er = h
                                ecmd = cmd
                            elif r < bmn:
                                bmn = r
                    if bmn < mn:
                        mn = bmn
                    if ec < 0 and er < 0:
                        A[uo_blb + ub] = bmn  # none ready: its earliest candidate bounds it until it changes
                    if sep:
                        if col_e < 0 and ec >= 0:
                            col_q, col_e = Q_CMD, ec
                        if row_e < 0 and er >= 0:
                            row_q, row_e, row_cmd = Q_CMD, er, ecmd
                        if col_e >= 0 and row_e >= 0:
                            break
                    elif ec >= 0 or er >= 0:
                        if ec >= 0 and (er < 0 or A[i_ent(ec, F_SEQ)] < A[i_ent(er, F_SEQ)]):
                            col_q, col_e = Q_CMD, ec
                        else:
                            row_q, row_e, row_cmd = Q_CMD, er, ecmd
                        A[i_chs(uc, C_RR)] = (lb + 1) % banks_per_ch
                        break
            elif not bq:
                found = False
                if ab:
                    # Ramulator 2: requests that already activated their row are served first (oldest ready)
                    for k in range(A[i_nab(uc, 3 + Q_CMD)], A[i_nab(uc, 6 + Q_CMD)]):
                        v = A[i_qord(uc, Q_CMD, k)]
                        e = v & QMASK
                        b = v >> QSHIFT
                        ub = U(b)
                        if A[uo_blb + ub] > t:
                            if A[uo_blb + ub] < mn:
                                mn = A[uo_blb + ub]
                            continue
                        orow = A[i_bank(ub, B_ROW)]
                        if orow == A[i_ent(e, F_ROW)]:
                            cmd = RD + A[i_ent(e, F_WRITE)]
                        elif orow < 0:
                            cmd = ACT  # refresh closed the row under an activated request: activate again
                        else:
                            continue
                        # readiness written out here and below: an inlined helper taking arrays costs
                        # reference-count updates on every call, which dominated the scan
                        r = memo_ready(b, cmd, scan)
                        keep_row_bound(b, qi, cmd, r, t)
                        if r > t and cmd >= RD and sched != SCHED_FCFS:
                            # the bank's row waits for an activated request, so its queued misses cannot
                            # precharge: its candidates are column commands (RD or WR), none before this bound
                            # (measured: Ramulator 2 DDR4 random traffic 1.34x; the read/write-queue scan
                            # below then skips the bank instead of looking at each of its requests). Not
                            # for FCFS, whose scan stops at a bank it skips on its bound but passes over a
                            # request that may not precharge.
                            ro = memo_ready(b, RD + WR - cmd, scan)
                            A[uo_blb + ub] = r if r < ro else ro
                        if r <= t:
                            if cmd >= RD:
                                if col_e < 0:
                                    col_q, col_e = Q_CMD, e
                            elif row_e < 0:
                                row_q, row_e, row_cmd = Q_CMD, e, cmd
                            if not sep or (col_e >= 0 and row_e >= 0):
                                break
                        elif r < mn:
                            mn = r
                    found = col_e >= 0 or row_e >= 0
                    if not found:
                        # Ramulator 2 revisits the read/write mode only when no activated request was ready
                        update_write_mode(c)
                        qi = A[i_chs(c, C_WMODE)]
                if not ref_block and (not found or (sep and (col_e < 0 or row_e < 0))) and \
                        sched != SCHED_FCFS and sched != SCHED_FIRST_READY and not timeout_rows and \
                        A[i_qlen(qi, uc)] >= BY_BANK_MIN_PER_BANK * A[i_nab(uc, qi)]:
                    # FR-FCFS's scan below, bank by bank. All of a bank's row hits need the same command, and
                    # so do all of its other requests, and the filters are the bank's own: each bank offers its
                    # oldest row hit (if the cap lets one through: only a hit older than the bank's oldest
                    # miss, i.e. at the head of its list, once capped) and its oldest miss, and the scan picks
                    # the oldest ready hit, else the oldest ready miss. This visits each busy bank once instead
                    # of each queued request, which pays where banks hold several requests (streams); the
                    # scan stops at the first ready hit, which pays where they hold one or two (random
                    # traffic). Measured (interleaved best of 5): streams 1.14x (HBM3_6400) and 1.18x
                    # (DDR5_4800), random traffic unchanged; by bank everywhere, random traffic on HBM3_6400
                    # ran 0.85-0.94x. First-ready, whose scan stops at the first ready request of any kind
                    # (by bank it ran 0.64-0.80x on Ramulator 2 HBM2), the timeout policy (lazy closes
                    # mid-scan) and FCFS (the head only) keep the scan.
                    bc = -1
                    bc_seq = INF  # bc_seq/br_seq: queue order (F_SEQ) of the best ready hit / miss so far
                    br = -1
                    br_seq = INF
                    br_cmd = -1
                    need_c = col_e < 0
                    need_r = row_e < 0
                    for k in range(A[i_nab(uc, qi)]):
                        b = A[i_abk(uc, qi, k)]
                        ub = U(b)
                        if A[uo_blb + ub] > t:
                            if A[uo_blb + ub] < mn:
                                mn = A[uo_blb + ub]
                            continue
                        orow = A[i_bank(ub, B_ROW)]
                        h = A[i_lists(ub, 3 * qi)]
                        hp = A[i_bank(ub, B_HP0 + qi)]
                        if need_c and hp > 0 and not (capped(b) and A[i_ent(h, F_ROW)] != orow):
                            r = memo_ready(b, RD + qi, scan)
                            if r <= t:
                                e = h
                                while A[i_ent(e, F_ROW)] != orow:
                                    e = A[i_ent(e, F_NEXT)]
                                if A[i_ent(e, F_SEQ)] < bc_seq:
                                    bc_seq = A[i_ent(e, F_SEQ)]
                                    bc = e
                            elif r < mn:
                                mn = r
                        if need_r and A[i_lists(ub, 3 * qi + 2)] > hp:
                            if orow < 0:
                                cmd = ACT
                            else:
                                cmd = PRE
                                if not precharge_allowed(b, qi):
                                    continue
                            r = memo_ready(b, cmd, scan)
                            keep_row_bound(b, qi, cmd, r, t)
                            if r <= t:
                                e = h
                                while A[i_ent(e, F_ROW)] == orow:
                                    e = A[i_ent(e, F_NEXT)]
                                if A[i_ent(e, F_SEQ)] < br_seq:
                                    br_seq = A[i_ent(e, F_SEQ)]
                                    br = e
                                    br_cmd = cmd
                            elif r < mn:
                                mn = r
                    # one of each (the row command issues with a single bus only if no column command does)
                    if bc >= 0:
                        col_q, col_e = qi, bc
                    if br >= 0:
                        row_q, row_e, row_cmd = qi, br, br_cmd
                elif not ref_block and (not found or (sep and (col_e < 0 or row_e < 0))):
                    for k in range(A[i_nab(uc, 3 + qi)], A[i_nab(uc, 6 + qi)]):
                        v = A[i_qord(uc, qi, k)]
                        e = v & QMASK
                        b = v >> QSHIFT
                        ub = U(b)
                        if timeout_rows:
                            timeout_close(c, b, t)
                        if A[uo_blb + ub] > t:
                            if A[uo_blb + ub] < mn:
                                mn = A[uo_blb + ub]
                            if sched == SCHED_FCFS:
                                break
                            continue
                        orow = A[i_bank(ub, B_ROW)]
                        if orow == A[i_ent(e, F_ROW)]:
                            cmd = RD + qi
                            if capped(b) and A[i_lists(ub, L_MISS_SCAN)] == scan:
                                # FR-FCFS cap: an older miss to this bank has waited long enough
                                continue
                            if sep and col_e >= 0:
                                continue
                        else:
                            A[i_lists(ub, L_MISS_SCAN)] = scan
                            if sep and row_e >= 0:
                                continue
                            if orow < 0:
                                cmd = ACT
                            else:
                                cmd = PRE
                                if not precharge_allowed(b, qi):
                                    continue
                        r = memo_ready(b, cmd, scan)
                        keep_row_bound(b, qi, cmd, r, t)
                        if r <= t:
                            if cmd >= RD:
                                if col_e < 0:
                                    col_q, col_e = qi, e
                            elif row_e < 0:
                                row_q, row_e, row_cmd = qi, e, cmd
                            if sep:
                                if col_e >= 0 and row_e >= 0:
                                    break
                            elif sched == SCHED_FIRST_READY or col_e >= 0:
                                break
                        elif r < mn:
                            mn = r
                        if sched == SCHED_FCFS:
                            break
            issued = False
            if col_e >= 0:
                cb = A[i_ent(col_e, F_BANK)]
                issue_col(c, col_q, col_e, t)
                issued = True
                if row_e >= 0 and sep:
                    # the column command may have changed what the row candidate needs
                    rb = A[i_ent(row_e, F_BANK)]
                    if rb == cb:
                        orow = A[i_bank(rb, B_ROW)]
                        if orow == A[i_ent(row_e, F_ROW)]:
                            now = RD + A[i_ent(row_e, F_WRITE)]
                        else:
                            now = ACT if orow < 0 else PRE
                        if now != row_cmd:
                            row_e = -1
                        elif cmd_ready(rb, row_cmd) > t:
                            row_e = -1
            if row_e >= 0 and (sep or not issued):
                issue_row(c, row_q, row_e, row_cmd, t)
                issued = True
            moved = -1
            if bq:
                # move the oldest transaction whose bank queue has room (after issuing, as DRAMSim3 does)
                src = qi
                best = -1
                best_seq = INF
                for k in range(A[i_nab(uc, src)]):
                    b = A[i_abk(uc, src, k)]
                    if A[i_lists(b, 3 * Q_CMD + 2)] < A[o_par + P_BQD]:
                        h = A[i_lists(b, 3 * src)]
                        if A[i_ent(h, F_SEQ)] < best_seq:
                            best_seq = A[i_ent(h, F_SEQ)]
                            best = h
                if best >= 0:
                    b = A[i_ent(best, F_BANK)]
                    unlink(c, src, best)
                    A[i_ent(best, F_SEQ)] = A[o_S + S_SEQ]
                    A[o_S + S_SEQ] += 1
                    link(c, Q_CMD, best)
                    if A[i_bank(b, B_ROW)] == A[i_ent(best, F_ROW)]:
                        A[i_bank(b, B_HP0 + src)] -= 1
                        A[i_bank(b, B_HP2)] += 1
                    A[o_S + S_FREED] = 1
                    moved = b
            if move_only:
                # nothing could issue; a moved transaction adds its bank's candidates to the bound
                if moved >= 0:
                    r = bq_bank_bound(c, moved)
                    A[uo_blb + U(moved)] = r
                    if r < A[i_chs(uc, C_QUIET)]:
                        A[i_chs(uc, C_QUIET)] = r
                return bq_next_look(c, t, A[i_chs(uc, C_QUIET)])
            if issued or moved >= 0:
                if not timeout_rows:
                    if not bq:
                        return quiet_until(c, t)
                    if not sep:
                        return bq_quiet_until(c, t)
                return t + 1
            return mn


        i = 0
        t = A[o_S + S_T]
        while True:
            # ---- 1. retire reads whose data returned in an earlier cycle (the front end sees a completion
            #         one cycle after the data, as in the reference replays: QD1 issues back to back + 1 cycle)
            while A[o_S + S_FIFO_HEAD] < A[o_S + S_FIFO_TAIL]:
                h = A[o_S + S_FIFO_HEAD] & fifo_mask
                if A[i_fifo(h, 0)] >= t:
                    break
                tx_done(A[i_fifo(h, 1)], A[i_fifo(h, 0)])
                A[o_S + S_FIFO_HEAD] += 1
            # ---- 2. front end: accept requests in order until one is refused
            A[o_S + S_FE_BLOCK] = FE_NONE
            while i < n_req:
                if req_arrival[i] > t:
                    A[o_S + S_FE_BLOCK] = FE_ARRIVAL
                    break
                if qd > 0 and A[o_S + S_OUTSTANDING] >= qd:
                    A[o_S + S_FE_BLOCK] = FE_QD
                    break
                w = req_write[i]
                qcap = qcap1 if w else qcap0
                ok = True
                for k in range(tx_per):
                    c = tx_ch[U(i * tx_per + k)]
                    need = 1
                    for k2 in range(k):
                        if tx_ch[U(i * tx_per + k2)] == c:
                            need += 1
                    if A[i_qlen(w, c)] + need > qcap:
                        ok = False
                        break
                if not ok:
                    A[o_S + S_FE_BLOCK] = FE_QUEUE
                    A[o_S + S_FE_RETRY] = INF
                    break
                if A[o_S + S_FREE_TOP] == 0:  # cannot happen: the ring holds more slots than can be in flight
                    A[o_S + S_FE_BLOCK] = FE_QD
                    break
                gid = A[o_S + S_NEXT_GID]
                A[o_S + S_FREE_TOP] -= 1
                slot = A[i_ring(A[o_S + S_FREE_TOP], R_FREE)]
                A[i_ring(slot, R_ACCEPT)] = t
                A[i_ring(slot, R_REMAIN)] = tx_per
                A[i_ring(slot, R_DONE)] = t
                A[i_ring(slot, R_WRITE)] = w
                A[i_ring(slot, R_GID)] = gid
                A[o_S + S_NEXT_GID] += 1
                A[o_S + S_OUTSTANDING] += 1
                A[o_S + S_ACCEPTED] += 1
                posted = w != 0 and A[o_par + P_POSTED] != 0
                for k in range(tx_per):
                    x = i * tx_per + k
                    c = tx_ch[x]
                    b = tx_bank[U(x)]
                    row = tx_row[U(x)]
                    if w == 0 and A[o_par + P_FWD] != 0:
                        # a pending write to the same address is in this bank's write list (or, with per-bank
                        # command queues, possibly already in the bank's command queue)
                        hit_wq = False
                        j = A[i_lists(b, 3 * Q_WRITE)]
                        while j >= 0:
                            if A[i_ent(j, F_ADDR)] == tx_addr[U(x)]:
                                hit_wq = True
                                break
                            j = A[i_ent(j, F_NEXT)]
                        if not hit_wq and bank_queues and A[i_chs(c, C_CMDW)] > 0:
                            j = A[i_lists(b, 3 * Q_CMD)]
                            while j >= 0:
                                if A[i_ent(j, F_WRITE)] != 0 and A[i_ent(j, F_ADDR)] == tx_addr[U(x)]:
                                    hit_wq = True
                                    break
                                j = A[i_ent(j, F_NEXT)]
                        if hit_wq:
                            A[i_chs(c, C_FWD)] += 1
                            tx_done(slot, t)
                            continue
                    if timeout_rows:
                        timeout_close(c, b, t)
                    A[i_chs(c, C_NFREE)] -= 1
                    e = A[i_freel(c, A[i_chs(c, C_NFREE)])]
                    A[i_ent(e, F_BANK)] = b
                    A[i_ent(e, F_ROW)] = row
                    A[i_ent(e, F_ADDR)] = tx_addr[U(x)]
                    A[i_ent(e, F_SLOT)] = -1 if posted else slot
                    A[i_ent(e, F_FLAGS)] = 0
                    A[i_ent(e, F_WRITE)] = w
                    A[i_ent(e, F_SEQ)] = A[o_S + S_SEQ]
                    A[o_S + S_SEQ] += 1
                    link(c, w, e)
                    A[o_S + S_QUEUED] += 1
                    if A[i_bank(b, B_ROW)] == row:
                        A[i_bank(b, B_HP0 + w)] += 1
                    if A[uo_S + U(N_S) + U(c)] > t:
                        A[uo_S + U(N_S) + U(c)] = arrival_wake(c, b, row, w, t)
                if posted and A[i_ring(slot, R_REMAIN)] > 0:
                    A[i_ring(slot, R_REMAIN)] = 1
                    tx_done(slot, t)
                i += 1
            if i >= n_req and not final:
                break  # the next chunk's requests are offered in this same cycle, before anything else happens
            # ---- 3. refresh falling due
            if n_units > 0 and A[o_S + S_REF_MIN] <= t:
                m = INF
                for u in range(n_units):
                    if A[i_ref(u, U_PENDING)] == 0 and A[i_ref(u, U_DUE)] <= t:
                        A[i_ref(u, U_PENDING)] = 1
                        A[o_S + N_S + u // units_per_ch] = t
                        A[i_chs(u // units_per_ch, C_REFPEND)] += 1
                    if A[i_ref(u, U_PENDING)] == 0 and A[i_ref(u, U_DUE)] < m:
                        m = A[i_ref(u, U_DUE)]
                A[o_S + S_REF_MIN] = m
            # ---- 4. controllers
            A[o_S + S_FREED] = 0
            refresh_done = False
            for c in range(nch):
                if A[uo_S + U(N_S) + U(c)] > t:
                    continue
                pend_before = A[i_chs(c, C_REFPEND)]
                A[uo_S + U(N_S) + U(c)] = schedule(c, t)
                pend_after = A[i_chs(c, C_REFPEND)]
                if pend_after > 0 and A[uo_S + U(N_S) + U(c)] > t + 1:
                    A[uo_S + U(N_S) + U(c)] = t + 1  # a waiting refresh is re-examined every cycle
                if pend_after != pend_before:
                    refresh_done = True
            if refresh_done:
                m = INF
                for u in range(n_units):
                    if A[i_ref(u, U_PENDING)] == 0 and A[i_ref(u, U_DUE)] < m:
                        m = A[i_ref(u, U_DUE)]
                A[o_S + S_REF_MIN] = m
            if A[o_S + S_FREED] != 0 and A[o_S + S_FE_BLOCK] == FE_QUEUE:
                A[o_S + S_FE_RETRY] = t + 1
            # ---- 5. done?
            if i >= n_req and A[o_S + S_QUEUED] == 0 and A[o_S + S_FIFO_HEAD] == A[o_S + S_FIFO_TAIL]:
                if timeout_rows:
                    # count the precharges of rows that timed out (before now) after the last look at their bank
                    for b in range(n_banks):
                        timeout_close(b // banks_per_ch, b, t)
                break
            # ---- 6. next event time
            nt = INF
            for c in range(nch):
                if A[uo_S + U(N_S) + U(c)] < nt:
                    nt = A[uo_S + U(N_S) + U(c)]
            blk = A[o_S + S_FE_BLOCK]
            if i < n_req:
                if blk == FE_QUEUE:
                    if A[o_S + S_FE_RETRY] < nt:
                        nt = A[o_S + S_FE_RETRY]
                elif blk == FE_ARRIVAL:
                    if req_arrival[i] < nt:
                        nt = req_arrival[i]
            if blk == FE_QD and A[o_S + S_OUTSTANDING] < qd and t + 1 < nt:
                nt = t + 1  # a write completed as it issued: the front end takes the next request next cycle
            if (blk == FE_QD or (i >= n_req and A[o_S + S_QUEUED] == 0)) and A[o_S + S_FIFO_HEAD] < A[o_S + S_FIFO_TAIL]:
                ft = A[i_fifo(A[o_S + S_FIFO_HEAD] & fifo_mask, 0)] + 1
                if ft < nt:
                    nt = ft
            if nt >= INF:
                break  # nothing can happen any more (only when the chunk is exhausted)
            if n_units > 0 and A[o_S + S_REF_MIN] < nt:
                nt = A[o_S + S_REF_MIN]
            if nt <= t:
                nt = t + 1
            t = nt
        A[o_S + S_T] = t
        return i

    return run_chunk


_KERNELS: dict = {}

# the constants the kernel compiles in from ``timing``, a closure value of every build so that an edit of
# ``timing.py`` alone rebuilds the cached builds (see ``memsim.jitcache``)
TIMING_LAYOUT = layout_of(timing)

# The structures built as constants (``structure_key``): those of the reference configurations and of the
# HBM presets that the system models use. Any other configuration runs the generic kernel: specialising
# every structure met would compile about twenty variants in one test run.
SPECIALISED = frozenset({
    (1, 0, 0, 0, 1),  # DRAMSim3: per-bank command queues, one transaction per request
    (0, 1, 0, 0, 1),  # Ramulator 2 DDR4: active buffer, one transaction per request
    (0, 1, 0, 0, 2),  # Ramulator 2 HBM2/HBM3: active buffer, two 32-byte transactions per 64-byte line
    (0, 0, 1, 0, 2),  # memsim's HBM presets: separate row/column buses, two transactions per line
})
GENERIC = (-1, -1, -1, -1, -1)


def structure_key(par) -> tuple[int, int, int, int, int]:
    """What of ``par`` a specialised kernel fixes: DRAMSim3-style bank command queues, Ramulator 2's active
    buffer, separate row/column command buses, the timeout row policy (each 0 or 1), transactions per
    request."""
    return (int(par[P_BQD] > 0), int(par[P_ACTBUF] > 0), int(par[P_SEPBUS] != 0),
            int(par[P_ROWPOL] == ROW_TIMEOUT), int(par[P_TXPERREQ]))


def kernel_for(par, *, generic: bool = False):
    """The compiled :func:`run_chunk` for ``par``: specialised to its structure where that is one of
    ``SPECIALISED`` (unless ``generic``), else the generic kernel. Each is built once per process.

    Returned as a wrapper that takes a :class:`memsim.dram.engine.KernelState` in place of the arena and
    the recorded completion cycles, and runs the build for the state's region capacity; the build for
    ``ARENA_LOG2`` is the wrapper's ``jitted`` attribute."""
    key = structure_key(par)
    if generic or key not in SPECIALISED:
        key = GENERIC
    return _kernel(key + (ARENA_LOG2,))


def _kernel(key):
    k = _KERNELS.get(key)
    if k is None:
        k = _KERNELS[key] = _on_arena(key, _build_kernel(*key))
    return k


def _on_arena(key, jitted):
    """``jitted`` (built for ``key``) called on a kernel state's arena, or the build for the state's region
    capacity where that is another."""
    def run_chunk(st, tx_ch, tx_bank, tx_row, tx_addr, req_write, req_arrival, qd, final):
        if st.region_log2 != key[-1]:
            return _kernel(key[:-1] + (st.region_log2,))(st, tx_ch, tx_bank, tx_row, tx_addr, req_write,
                                                          req_arrival, qd, final)
        return jitted(st.arena, tx_ch, tx_bank, tx_row, tx_addr, req_write, req_arrival, qd, final, st.out_done)
    run_chunk.jitted = jitted
    run_chunk.__doc__ = jitted.__doc__
    return run_chunk
