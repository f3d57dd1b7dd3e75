"""A plain-Python, cycle-by-cycle twin of the DRAM controller kernel (``memsim.dram.kernel.run_chunk``).

Used only by tests. It is deliberately simple and slow: time advances by exactly one memory-clock cycle
per loop iteration and every channel re-evaluates everything in every cycle, with the state held in
ordinary Python objects (lists for queues, dataclasses for banks, requests and refresh units, a dict of
"earliest issue cycle" per node of the bank tree, a deque per rank for the tFAW window). It shares no
code with the kernel: it only reads the compiled ``par`` vector and ``rules`` table of ``timing.py``
(the interface between the configuration and any controller model) and the decoded transactions of
``DramEngine.decode``.

Where the kernel's event skipping could differ from a model that looks at every cycle, this twin is the
specification of the intended behaviour. The one place where the twin does something eagerly that the
kernel does lazily is the timeout row policy: here a row is closed in the first cycle in which it has been
idle for the timeout, has no queued hit and may legally be precharged (before anything else happens in
that cycle); the kernel closes it retroactively at that same cycle when it next looks at the bank.

Order of operations inside one cycle ``t`` (as in the kernel):

0. timeout row policy: close idle rows (see above);
1. retire reads whose data returned before ``t`` (the front end sees a completion one cycle after the data);
2. front end: accept requests in order until one is refused (arrival time, queue depth, queue space);
3. refresh falling due: mark refresh units pending;
4. each channel, in index order, makes one decision (refresh, write-mode switch, scheduling, issue, and
   with per-bank command queues, one transaction moved into its bank's queue).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from memsim.dram.timing import (
    ACT, PRE, RD, WR, L_BK, L_RK, N_LEVELS,
    P_NCH, P_NPC, P_NRK, P_NBG, P_NBA, P_CL, P_BURST, P_RP, P_RFC, P_RFCPB, P_REFI, P_REFIPB, P_FAW,
    P_RQ, P_WQ, P_WHI, P_WLO, P_SCHED, P_CAP, P_ROWPOL, P_TIMEOUT, P_REFRESH, P_REFLEVEL, P_STAGGER,
    P_SEPBUS, P_POSTED, P_FWD, P_GUARD, P_TXPERREQ, P_ACTBUF, P_BQD,
    SCHED_FCFS, SCHED_FIRST_READY, ROW_CLOSED, ROW_TIMEOUT, REF_ALLBANK, REF_NONE,
)

CLOSED = -1


@dataclass(eq=False)
class Request:
    gid: int
    write: bool
    accept: int
    remain: int  # transactions still to complete
    done: int  # latest completion cycle of its transactions so far


@dataclass(eq=False)
class Entry:
    """One queued transaction."""

    bank: int
    row: int
    addr: int
    write: bool
    req: Request | None  # None: a posted write, already acknowledged
    activated: bool = False  # an ACT was issued for it (a row miss)
    precharged: bool = False  # a PRE was issued for it (a row conflict)


@dataclass(eq=False)
class Bank:
    coords: tuple  # (channel, pseudo-channel, rank, bank group, bank)
    local: int  # index of the bank inside its channel
    row: int = CLOSED
    last: int = 0  # cycle of the last ACT or column command
    streak: int = 0  # column commands since the last ACT


@dataclass(eq=False)
class RefreshUnit:
    banks: list  # bank ids, ascending
    due: int
    pending: bool = False
    next_bank: int = 0  # per-bank refresh: index into ``banks`` of the next bank to refresh


@dataclass(eq=False)
class Channel:
    index: int
    banks: list  # bank ids of the channel, ascending
    units: list  # refresh units of the channel, in index order
    reads: list = field(default_factory=list)
    writes: list = field(default_factory=list)
    active: list = field(default_factory=list)  # Ramulator-style active buffer
    bank_queues: dict = field(default_factory=dict)  # DRAMSim3-style per-bank command queues: bank -> list
    write_mode: bool = False
    rr: int = 0  # round-robin pointer over the channel's banks (per-bank command queues)


@dataclass
class TwinResult:
    completion: np.ndarray  # completion cycle of every request, in trace order
    counters: dict
    cycles: int  # the cycle at which the simulation ended


class DramTwin:
    """Cycle-by-cycle controller model. See the module docstring."""

    def __init__(self, par, rules, tx_ch, tx_bank, tx_row, tx_addr, req_write, req_arrival, qd=0,
                 max_cycles=10_000_000):
        p = [int(x) for x in par]
        self.p = p
        self.rules = [tuple(int(x) for x in r) for r in np.asarray(rules).reshape(-1, 5)]
        self.counts = [p[P_NCH], p[P_NPC], p[P_NRK], p[P_NBG], p[P_NBA]]
        self.tx_per = p[P_TXPERREQ]
        self.tx = list(zip((int(x) for x in tx_ch), (int(x) for x in tx_bank), (int(x) for x in tx_row),
                           (int(x) for x in tx_addr)))
        self.req_write = [bool(x) for x in req_write]
        self.req_arrival = [int(x) for x in req_arrival]
        self.n = len(self.req_write)
        assert len(self.tx) == self.n * self.tx_per
        self.qd = int(qd)
        self.max_cycles = max_cycles

        self.sched = p[P_SCHED]
        self.sep = p[P_SEPBUS] != 0
        self.ab = p[P_ACTBUF]
        self.bqd = p[P_BQD]
        self.cap = p[P_CAP]
        self.rowpol = p[P_ROWPOL]

        # ---- banks: global id -> coordinates (the engine numbers banks channel-major, bank fastest)
        n_banks = 1
        for k in self.counts:
            n_banks *= k
        self.banks = []
        for b in range(n_banks):
            coords = []
            rest = b
            for k in reversed(self.counts):
                coords.append(rest % k)
                rest //= k
            coords = tuple(reversed(coords))
            self.banks.append(Bank(coords, 0))
        per_ch = n_banks // self.counts[0]
        for b, bk in enumerate(self.banks):
            bk.local = b - bk.coords[0] * per_ch
        self.banks_per_channel = per_ch

        # earliest issue cycle of each command, per node of the tree; a node is a coordinate prefix
        self.earliest: dict[tuple, list] = {}
        # tFAW: the cycles of the last four ACTs of each rank
        self.faw: dict[tuple, deque] = {}

        # ---- refresh units
        units: list[RefreshUnit] = []
        mode = p[P_REFRESH]
        if mode != REF_NONE:
            depth = (p[P_REFLEVEL] if mode == REF_ALLBANK else L_RK) + 1  # coordinate prefix of a unit
            groups: dict[tuple, list] = {}
            for b, bk in enumerate(self.banks):
                groups.setdefault(bk.coords[:depth], []).append(b)
            interval = p[P_REFI] if mode == REF_ALLBANK else p[P_REFIPB]
            keys = sorted(groups)
            units_per_ch = len(keys) // self.counts[0]
            for u, key in enumerate(keys):
                if p[P_STAGGER]:
                    due = ((u % units_per_ch + 1) * interval) // units_per_ch
                else:
                    due = interval
                units.append(RefreshUnit(groups[key], due))
        self.units = units

        self.channels = []
        for c in range(self.counts[0]):
            ch_banks = [b for b, bk in enumerate(self.banks) if bk.coords[0] == c]
            ch_units = [un for un in units if self.banks[un.banks[0]].coords[0] == c]
            self.channels.append(Channel(c, ch_banks, ch_units, bank_queues={b: [] for b in ch_banks}))

        self.fifo: deque = deque()  # reads in flight: (data cycle, request)
        self.outstanding = 0
        self.completion = np.full(self.n, -1, dtype=np.int64)
        self.c = dict(ACT=0, PRE=0, RD=0, WR=0, REF=0, hits=0, misses=0, conflicts=0, forwarded=0,
                      refresh_cycles=0)

    # ------------------------------------------------------------------ timing tables
    def _node(self, b: int, level: int) -> tuple:
        return self.banks[b].coords[:level + 1]

    def _earliest(self, node: tuple) -> list:
        e = self.earliest.get(node)
        if e is None:
            e = self.earliest[node] = [0, 0, 0, 0]
        return e

    def ready(self, b: int, cmd: int) -> int:
        """Earliest cycle ``cmd`` may issue to bank ``b``: the latest constraint over its five ancestors
        (and, for ACT, the tFAW window of its rank)."""
        r = max(self._earliest(self._node(b, lv))[cmd] for lv in range(N_LEVELS))
        if cmd == ACT:
            acts = self.faw.get(self._node(b, L_RK))
            if acts is not None and len(acts) == 4:
                r = max(r, acts[0] + self.p[P_FAW])
        return r

    def apply_rules(self, b: int, cmd: int, t: int) -> None:
        coords = self.banks[b].coords
        for prev, nxt, lv, cyc, sibling in self.rules:
            if prev != cmd:
                continue
            if sibling:
                targets = [coords[:lv] + (k,) for k in range(self.counts[lv]) if k != coords[lv]]
            else:
                targets = [coords[:lv + 1]]
            for node in targets:
                e = self._earliest(node)
                e[nxt] = max(e[nxt], t + cyc)

    # ------------------------------------------------------------------ queries
    def needs(self, e: Entry) -> int:
        """The next command an entry needs: its column command on a hit, ACT if closed, else PRE."""
        row = self.banks[e.bank].row
        if row == e.row:
            return WR if e.write else RD
        return ACT if row == CLOSED else PRE

    def hits_in(self, b: int, queue) -> int:
        row = self.banks[b].row
        if row == CLOSED:
            return 0
        return sum(1 for e in queue if e.bank == b and e.row == row)

    def cmd_queue(self, ch: Channel) -> list:
        """The channel's third queue: the active buffer, or all per-bank command queues."""
        if self.bqd > 0:
            return [e for b in ch.banks for e in ch.bank_queues[b]]
        return ch.active

    def hits_all(self, b: int) -> int:
        ch = self.channels[self.banks[b].coords[0]]
        return (self.hits_in(b, ch.reads) + self.hits_in(b, ch.writes) + self.hits_in(b, ch.active)
                + self.hits_in(b, ch.bank_queues[b]))

    def in_cmd_queue(self, b: int) -> int:
        ch = self.channels[self.banks[b].coords[0]]
        return sum(1 for e in ch.active if e.bank == b) + len(ch.bank_queues[b])

    def capped(self, b: int) -> bool:
        return self.cap > 0 and self.banks[b].streak >= self.cap

    # ------------------------------------------------------------------ requests
    def tx_done(self, req: Request | None, done: int) -> None:
        if req is None:
            return
        req.done = max(req.done, done)
        req.remain -= 1
        if req.remain == 0:
            self.completion[req.gid] = req.done
            self.outstanding -= 1

    # ------------------------------------------------------------------ commands
    def close_bank(self, b: int, at: int) -> None:
        self.apply_rules(b, PRE, at)
        self.banks[b].row = CLOSED
        self.c["PRE"] += 1

    def issue_col(self, queue: list, e: Entry, t: int) -> None:
        b = e.bank
        bk = self.banks[b]
        self.apply_rules(b, WR if e.write else RD, t)
        if e.precharged:
            self.c["conflicts"] += 1
        elif e.activated:
            self.c["misses"] += 1
        else:
            self.c["hits"] += 1
        self.c["WR" if e.write else "RD"] += 1
        bk.streak += 1
        bk.last = t
        if e.write:
            self.tx_done(e.req, t)
        else:
            self.fifo.append((t + self.p[P_CL] + self.p[P_BURST], e.req))
        queue.remove(e)
        if self.rowpol == ROW_CLOSED and self.hits_all(b) == 0:
            self.close_bank(b, max(self.ready(b, PRE), t))  # auto-precharge, possibly in the future

    def issue_row(self, ch: Channel, queue: list, e: Entry, cmd: int, t: int) -> None:
        b = e.bank
        bk = self.banks[b]
        self.apply_rules(b, cmd, t)
        if cmd == ACT:
            self.faw.setdefault(self._node(b, L_RK), deque(maxlen=4)).append(t)
            bk.row = e.row
            bk.last = t
            bk.streak = 0
            e.activated = True
            self.c["ACT"] += 1
            if self.ab > 0 and queue is not ch.active and len(ch.active) < self.ab:
                queue.remove(e)
                ch.active.append(e)
        else:
            bk.row = CLOSED
            e.precharged = True
            self.c["PRE"] += 1

    def refresh(self, unit: RefreshUnit, t: int) -> None:
        """Close the unit's banks at the earliest legal precharge, refresh, block ACT until the end."""
        p = self.p
        if p[P_REFRESH] == REF_ALLBANK:
            banks = list(unit.banks)
            dur, interval = p[P_RFC], p[P_REFI]
        else:
            banks = [unit.banks[unit.next_bank]]
            unit.next_bank = (unit.next_bank + 1) % len(unit.banks)
            dur, interval = p[P_RFCPB], p[P_REFIPB]
        start = t
        any_open = False
        for b in banks:
            if self.banks[b].row != CLOSED:
                any_open = True
                start = max(start, self.ready(b, PRE))
        ref_t = start + p[P_RP] if any_open else start
        for b in banks:
            ref_t = max(ref_t, self._earliest(self._node(b, L_BK))[ACT])
        end = ref_t + dur
        for b in banks:
            self.banks[b].row = CLOSED
            e = self._earliest(self._node(b, L_BK))
            e[ACT] = max(e[ACT], end)
        if any_open:
            self.c["PRE"] += 1
        self.c["REF"] += 1
        self.c["refresh_cycles"] += end - t
        unit.due += interval
        unit.pending = False

    # ------------------------------------------------------------------ one cycle, step by step
    def timeout_rows(self, t: int) -> None:
        if self.rowpol != ROW_TIMEOUT:
            return
        for b, bk in enumerate(self.banks):
            if (bk.row != CLOSED and bk.last + self.p[P_TIMEOUT] <= t and self.hits_all(b) == 0
                    and self.ready(b, PRE) <= t):
                self.close_bank(b, t)

    def retire(self, t: int) -> None:
        while self.fifo and self.fifo[0][0] < t:
            done, req = self.fifo.popleft()
            self.tx_done(req, done)

    def front_end(self, t: int, i: int) -> int:
        p = self.p
        while i < self.n:
            if self.req_arrival[i] > t:
                break
            if self.qd > 0 and self.outstanding >= self.qd:
                break
            w = self.req_write[i]
            txs = self.tx[i * self.tx_per:(i + 1) * self.tx_per]
            need: dict[int, int] = {}
            for c, _, _, _ in txs:
                need[c] = need.get(c, 0) + 1
            cap = p[P_WQ] if w else p[P_RQ]
            if any(len(self._queue(self.channels[c], w)) + k > cap for c, k in need.items()):
                break
            req = Request(i, w, t, self.tx_per, t)
            self.outstanding += 1
            posted = w and p[P_POSTED] != 0
            for c, b, row, addr in txs:
                ch = self.channels[c]
                if not w and p[P_FWD] != 0:
                    pending_writes = list(ch.writes)
                    if self.bqd > 0:
                        pending_writes += [e for e in self.cmd_queue(ch) if e.write]
                    if any(e.addr == addr for e in pending_writes):
                        self.c["forwarded"] += 1
                        self.tx_done(req, t)
                        continue
                self._queue(ch, w).append(Entry(b, row, addr, w, None if posted else req))
            if posted:
                req.remain = 1
                self.tx_done(req, t)
            i += 1
        return i

    @staticmethod
    def _queue(ch: Channel, write: bool) -> list:
        return ch.writes if write else ch.reads

    def mark_refresh_due(self, t: int) -> None:
        for u in self.units:
            if not u.pending and u.due <= t:
                u.pending = True

    def update_write_mode(self, ch: Channel) -> None:
        rl, wl = len(ch.reads), len(ch.writes)
        if ch.write_mode:
            if wl == 0 or (wl < self.p[P_WLO] and rl > 0):
                ch.write_mode = False
        elif wl > 0 and (wl > self.p[P_WHI] or rl == 0):
            ch.write_mode = True

    def decide(self, ch: Channel, t: int) -> None:
        """One controller decision of channel ``ch`` in cycle ``t``."""
        # refresh waiting for this channel
        ref_block = False
        for u in ch.units:
            if not u.pending:
                continue
            if self.ab > 0:
                targets = u.banks if self.p[P_REFRESH] == REF_ALLBANK else [u.banks[u.next_bank]]
                if any(e.bank in targets for e in self.cmd_queue(ch)):
                    ref_block = True  # activated requests finish first; nothing else starts
                    continue
            self.refresh(u, t)
        if self.ab == 0:
            self.update_write_mode(ch)
        queue = ch.writes if ch.write_mode else ch.reads
        col = None  # (queue, entry)
        row = None  # (queue, entry, cmd)
        if self.bqd > 0:
            col, row = self._pick_bank_queues(ch, t)
        else:
            if self.ab > 0:
                for e in ch.active:
                    cmd = self.needs(e)
                    if cmd == PRE:
                        continue
                    if self.ready(e.bank, cmd) <= t:
                        if cmd >= RD:
                            col = col or (ch.active, e)
                        elif row is None:
                            row = (ch.active, e, cmd)
                        if not self.sep or (col and row):
                            break
            found = col is not None or row is not None
            if self.ab > 0 and not found:
                self.update_write_mode(ch)
                queue = ch.writes if ch.write_mode else ch.reads
            if not ref_block and (not found or (self.sep and (col is None or row is None))):
                col, row = self._pick_queue(ch, queue, col, row, t)
        # issue
        issued = False
        if col is not None and (self.sep or row is None or self.sched != SCHED_FIRST_READY or self.bqd > 0):
            cq, ce = col
            self.issue_col(cq, ce, t)
            issued = True
            if row is not None and self.sep and row[1].bank == ce.bank:
                # the column command may have changed what the row candidate needs, or when
                if self.needs(row[1]) != row[2] or self.ready(ce.bank, row[2]) > t:
                    row = None
        if row is not None and (self.sep or not issued):
            self.issue_row(ch, row[0], row[1], row[2], t)
        if self.bqd > 0:
            # one transaction moves into its bank's command queue per cycle, after issuing
            for e in queue:
                if len(ch.bank_queues[e.bank]) < self.bqd:
                    queue.remove(e)
                    ch.bank_queues[e.bank].append(e)
                    break

    def _pick_queue(self, ch: Channel, queue: list, col, row, t: int):
        """Read/write queue scheduling: frfcfs, first-ready or fcfs over ``queue``, oldest first."""
        waiting_row_cmd = set()  # banks for which an older entry needs ACT or PRE (FR-FCFS cap)
        for e in queue:
            b = e.bank
            cmd = self.needs(e)
            if cmd >= RD:
                if self.capped(b) and b in waiting_row_cmd:
                    continue
                if self.sep and col is not None:
                    continue
            else:
                waiting_row_cmd.add(b)
                if self.sep and row is not None:
                    continue
                if cmd == PRE:
                    if self.ab > 0 and self.in_cmd_queue(b) > 0:
                        continue
                    if self.p[P_GUARD] and self.hits_in(b, queue) > 0 and not self.capped(b):
                        continue
            if self.ready(b, cmd) <= t:
                if cmd >= RD:
                    col = col or (queue, e)
                elif row is None:
                    row = (queue, e, cmd)
                if self.sep:
                    if col is not None and row is not None:
                        break
                elif self.sched == SCHED_FIRST_READY or col is not None:
                    break
            if self.sched == SCHED_FCFS:
                break
        return col, row

    def _pick_bank_queues(self, ch: Channel, t: int):
        """Per-bank command queues: in each, the first ready command (a precharge only at the head, and
        only when no queued entry still hits the row or the hit cap is reached); banks round robin."""
        best = {}  # bank -> (first ready column position, first ready row (position, cmd))
        for b in ch.banks:
            bq = ch.bank_queues[b]
            if not bq:
                continue
            first_col = None
            first_row = None
            for pos, e in enumerate(bq):
                cmd = self.needs(e)
                if cmd == PRE:
                    if pos != 0:
                        continue
                    if self.hits_in(b, bq) > 0 and not self.capped(b):
                        continue
                if self.ready(b, cmd) <= t:
                    if cmd >= RD:
                        if first_col is None:
                            first_col = pos
                    elif first_row is None:
                        first_row = (pos, cmd)
            best[b] = (first_col, first_row)
        col = row = None
        n = self.banks_per_channel
        for k in range(n):
            b = ch.banks[(ch.rr + k) % n]
            if b not in best:
                continue
            fc, fr = best[b]
            bq = ch.bank_queues[b]
            if self.sep:
                if col is None and fc is not None:
                    col = (bq, bq[fc])
                if row is None and fr is not None:
                    row = (bq, bq[fr[0]], fr[1])
                if col is not None and row is not None:
                    break
            elif fc is not None or fr is not None:
                if fc is not None and (fr is None or fc < fr[0]):
                    col = (bq, bq[fc])
                else:
                    row = (bq, bq[fr[0]], fr[1])
                ch.rr = (self.banks[b].local + 1) % n
                break
        return col, row

    # ------------------------------------------------------------------ the loop
    def run(self) -> TwinResult:
        t = 0
        i = 0
        while True:
            self.timeout_rows(t)
            self.retire(t)
            i = self.front_end(t, i)
            self.mark_refresh_due(t)
            for ch in self.channels:
                self.decide(ch, t)
            queued = sum(len(ch.reads) + len(ch.writes) + len(self.cmd_queue(ch)) for ch in self.channels)
            if i >= self.n and queued == 0 and not self.fifo:
                break
            t += 1
            if t > self.max_cycles:
                raise RuntimeError(f"twin: no progress by cycle {t} ({i} of {self.n} accepted, {queued} queued)")
        counters = dict(self.c)
        return TwinResult(self.completion.copy(), counters, t)


def run_twin(engine, addr, is_write, arrival_ps=None, queue_depth=0, **kw) -> TwinResult:
    """Decode a trace with ``engine`` (a ``DramEngine``) and replay it through the twin."""
    ct = engine.timing
    ch, bank, row, txa = engine.decode(np.asarray(addr, dtype=np.uint64))
    w = np.asarray(is_write, dtype=bool)
    if arrival_ps is None:
        arr = np.zeros(len(w), dtype=np.int64)
    else:
        arr = -(-np.asarray(arrival_ps, dtype=np.int64) // ct.tck_ps)
    # every rule, also those the kernel leaves out as implied by a wider one: the twin checks that too
    return DramTwin(ct.par, ct.all_rules, ch, bank, row, txa, w, arr, queue_depth, **kw).run()
