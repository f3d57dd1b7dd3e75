"""Reading and writing memory-request traces.

A trace is an ordered list of memory requests; each request has a byte address, a read/write flag and,
in some formats, an arrival time. memsim reads and writes four formats:

``dramsim3``
    Text, one request per line: ``<hexaddr> READ|WRITE <cycle>`` (DRAMSim3 ``TraceBasedCPU``). The
    address is hexadecimal with an optional ``0x``/``0X`` prefix (DRAMSim3 reads it with ``std::hex``);
    ``<cycle>`` is the non-negative decimal memory-clock cycle at which the request arrives
    (``arrival_unit == 'cycle'``). Cycles must be non-decreasing, because requests are issued in trace
    order.
``ramulator1``
    Text: ``<hexaddr> R|W`` (Ramulator 1.0 ``--mode=dram``). Hexadecimal address, ``0x`` optional
    (Ramulator 1.0 reads it with ``stoul(..., 16)``). No arrival time.
``ramulator2``
    Text: ``LD|ST <addr>`` (Ramulator 2 ``LoadStoreTrace``). As in Ramulator 2, an address with a
    ``0x``/``0X`` prefix is hexadecimal and one without is **decimal**. No arrival time.
``memsim``
    memsim's columnar format: a Parquet file with columns ``addr`` (uint64 byte address), ``write``
    (bool) and optionally ``arrival_ps`` (int64 arrival time in picoseconds, non-decreasing), and the
    file-metadata key ``memsim_trace_version=1``. Read batch by batch with pyarrow.

Common text rules: fields are separated by any run of spaces or tabs; ``\\r\\n`` line ends are accepted;
blank lines and lines whose first non-blank character is ``#`` are ignored (there are no trailing
comments); a last line without a newline is read normally; hexadecimal addresses have at most 16
digits, decimal numbers at most 19. Keywords are case-sensitive. Anything else (an unknown keyword, a bad
number, a missing or extra field, a negative or decreasing cycle) raises :class:`memsim.errors.TraceError`
naming the file and the 1-based line. memsim is deliberately stricter than the native simulators, which
treat unknown keywords as reads or ignore trailing text.

Text traces are parsed with vectorised numpy operations on blocks of a few MiB (no per-line Python), and
every reader streams: :func:`open_trace` yields :class:`TraceChunk` objects of at most ``chunk_size``
requests, so memory stays bounded for traces of any length. Writers build the text with numpy too, and
every file is written to a temporary file in the target directory and then renamed into place.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from memsim.errors import TraceError

__all__ = [
    "FORMATS",
    "MEMSIM_TRACE_VERSION",
    "TraceChunk",
    "detect_format",
    "open_trace",
    "read_trace",
    "write_trace",
]

#: Every format name accepted by ``fmt=`` (and the CLI's ``--format``).
FORMATS: tuple[str, ...] = ("memsim", "dramsim3", "ramulator1", "ramulator2")

#: Value of the Parquet file-metadata key ``memsim_trace_version`` that this module reads and writes.
MEMSIM_TRACE_VERSION = 1
_VERSION_KEY = b"memsim_trace_version"

#: Bytes of text parsed per vectorised step (a longer line is read whole). Tests lower it to exercise
#: block boundaries.
_BLOCK_BYTES = 8 << 20
#: Requests formatted per vectorised step when writing text.
_WRITE_ROWS = 1 << 18

_INT64_MAX = np.iinfo(np.int64).max


# ----------------------------------------------------------------------------------------------------
# Public data type
# ----------------------------------------------------------------------------------------------------
@dataclass
class TraceChunk:
    """A run of consecutive requests from one trace.

    Attributes
    ----------
    addr : numpy.ndarray
        ``uint64``, shape ``(n,)``: byte address of each request.
    is_write : numpy.ndarray
        ``bool``, shape ``(n,)``: True for a write, False for a read.
    arrival : numpy.ndarray or None
        ``int64``, shape ``(n,)``: arrival time of each request in ``arrival_unit``, non-decreasing;
        None when the format has no arrival times (the requests arrive as fast as they are accepted).
    arrival_unit : str or None
        ``'ps'`` (picoseconds, memsim format) or ``'cycle'`` (memory-clock cycles, dramsim3 format);
        None exactly when ``arrival`` is None.
    first_line : int
        1-based line number (text formats) or row number (memsim format) of the chunk's first request
        in its file, for messages.
    """

    addr: np.ndarray
    is_write: np.ndarray
    arrival: np.ndarray | None
    arrival_unit: str | None
    first_line: int

    def __len__(self) -> int:
        return int(self.addr.shape[0])


# ----------------------------------------------------------------------------------------------------
# Text format descriptions
# ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _TextSpec:
    name: str
    nfields: int
    op_field: int  # 0-based position of the READ/WRITE keyword
    addr_field: int
    cycle_field: int | None
    read_word: bytes
    write_word: bytes
    decimal_unprefixed: bool  # True: an address without 0x is decimal (ramulator2); False: hex anyway
    layout: str  # for messages


_TEXT_SPECS: dict[str, _TextSpec] = {
    "dramsim3": _TextSpec("dramsim3", 3, 1, 0, 2, b"READ", b"WRITE", False, "<hexaddr> READ|WRITE <cycle>"),
    "ramulator1": _TextSpec("ramulator1", 2, 1, 0, None, b"R", b"W", False, "<hexaddr> R|W"),
    "ramulator2": _TextSpec("ramulator2", 2, 0, 1, None, b"LD", b"ST", True, "LD|ST <addr>"),
}

_SUFFIXES = {f".{name}.trace": name for name in _TEXT_SPECS}

# Byte classification tables (index = byte value).
_WS = np.zeros(256, dtype=bool)
_WS[[ord(c) for c in " \t\n\r\x0b\x0c"]] = True  # exactly what bytes.split() splits on
_HEXVAL = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdef"):
    _HEXVAL[ord(_c)] = _i
    _HEXVAL[ord(_c.upper())] = _i
_DECVAL = np.full(256, 255, dtype=np.uint8)
_DECVAL[ord("0"):ord("9") + 1] = np.arange(10, dtype=np.uint8)
_HEXCHARS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_DIGITS_MAX = 16
_DEC_DIGITS_MAX = 19


# ----------------------------------------------------------------------------------------------------
# Format detection
# ----------------------------------------------------------------------------------------------------
def detect_format(path: str | os.PathLike) -> str:
    """Guess a trace file's format.

    The name decides first: ``*.parquet`` is ``memsim``; ``*.dramsim3.trace``, ``*.ramulator1.trace``
    and ``*.ramulator2.trace`` are the named text formats. Otherwise a file starting with the Parquet
    magic bytes is ``memsim``, and a text file is classified by its first line that is neither blank
    nor a ``#`` comment: three fields with ``READ``/``WRITE`` second is dramsim3, two fields with
    ``R``/``W`` second is ramulator1, two fields with ``LD``/``ST`` first is ramulator2.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file.

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    TraceError
        The file cannot be read, has no request lines, or its first request line fits no format (the
        message asks for ``--format``).
    """
    p = str(path)
    low = os.path.basename(p).lower()
    if low.endswith(".parquet"):
        return "memsim"
    for suffix, name in _SUFFIXES.items():
        if low.endswith(suffix):
            return name
    try:
        with open(p, "rb") as fh:
            if fh.read(4) == b"PAR1":
                return "memsim"
            fh.seek(0)
            for lineno, raw in enumerate(fh, start=1):
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                toks = raw.split()
                if not toks or toks[0].startswith(b"#"):
                    continue
                if len(toks) == 3 and toks[1] in (b"READ", b"WRITE"):
                    return "dramsim3"
                if len(toks) == 2 and toks[1] in (b"R", b"W"):
                    return "ramulator1"
                if len(toks) == 2 and toks[0] in (b"LD", b"ST"):
                    return "ramulator2"
                raise TraceError(
                    f"cannot tell the trace format from {_show(raw)}: expected "
                    "'<hexaddr> READ|WRITE <cycle>' (dramsim3), '<hexaddr> R|W' (ramulator1) or "
                    "'LD|ST <addr>' (ramulator2); name the format with --format "
                    f"(one of {', '.join(FORMATS)})",
                    file=p, line=lineno)
    except OSError as exc:
        raise TraceError(f"cannot read trace: {exc.strerror or exc}", file=p) from None
    raise TraceError("empty trace: no request lines (only blank or '#' lines), so its format cannot "
                     "be detected either", file=p)


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------
def open_trace(path: str | os.PathLike, fmt: str | None = None,
               chunk_size: int = 1 << 20) -> Iterator[TraceChunk]:
    """Stream a trace file in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The trace file.
    fmt : str, optional
        One of :data:`FORMATS`; guessed with :func:`detect_format` when None.
    chunk_size : int, default 2**20
        Requests per chunk. Every chunk but the last holds exactly ``chunk_size`` requests.

    Returns
    -------
    Iterator[TraceChunk]
        The requests in file order. Memory use is bounded by ``chunk_size`` and the internal block size,
        not by the file's length.

    Raises
    ------
    TraceError
        Unknown format, unreadable file (raised at once); a malformed line or row, or a trace without
        requests (raised while iterating, when the reader gets there; the message names the file and
        1-based line or row).
    ValueError
        ``chunk_size`` < 1.
    """
    p = str(path)
    if int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    fmt = _check_fmt(fmt, p) if fmt is not None else detect_format(p)
    if not os.path.isfile(p):
        raise TraceError("cannot read trace: no such file", file=p)
    if fmt == "memsim":
        pieces, unit = _memsim_pieces(p, int(chunk_size)), "ps"
    else:
        spec = _TEXT_SPECS[fmt]
        pieces, unit = _text_pieces(p, spec), ("cycle" if spec.cycle_field is not None else None)
    return _rechunk(pieces, int(chunk_size), unit, p)


def read_trace(path: str | os.PathLike, fmt: str | None = None) -> TraceChunk:
    """Read a whole trace into memory (for small traces).

    Parameters
    ----------
    path : str or os.PathLike
        The trace file.
    fmt : str, optional
        One of :data:`FORMATS`; guessed when None.

    Returns
    -------
    TraceChunk
        All requests, ``first_line`` being that of the first request.

    Raises
    ------
    TraceError
        As :func:`open_trace`.
    """
    chunks = list(open_trace(path, fmt))
    if len(chunks) == 1:
        return chunks[0]
    arrival = None if chunks[0].arrival is None else np.concatenate([c.arrival for c in chunks])
    return TraceChunk(np.concatenate([c.addr for c in chunks]),
                      np.concatenate([c.is_write for c in chunks]),
                      arrival, chunks[0].arrival_unit, chunks[0].first_line)


def _check_fmt(fmt: str, path: str | None) -> str:
    if fmt not in FORMATS:
        raise TraceError(f"unknown trace format {fmt!r}; expected one of {', '.join(FORMATS)}", file=path)
    return fmt


# A "piece" is (addr, is_write, arrival_or_None, lines) where lines is an int64 array of the 1-based line
# number of every request, or an int (the first of consecutive numbers).
_Piece = tuple


def _rechunk(pieces: Iterable[_Piece], chunk_size: int, unit: str | None, path: str) -> Iterator[TraceChunk]:
    parts: list[_Piece] = []
    have = 0
    total = 0
    for addr, is_w, arr, lines in pieces:
        n = addr.shape[0]
        pos = 0
        while pos < n:
            take = min(chunk_size - have, n - pos)
            first = int(lines + pos) if isinstance(lines, int) else int(lines[pos])
            sl = slice(pos, pos + take)
            parts.append((addr[sl], is_w[sl], None if arr is None else arr[sl], first))
            have += take
            pos += take
            if have == chunk_size:
                yield _join(parts, unit)
                total += have
                parts, have = [], 0
    if have:
        total += have
        yield _join(parts, unit)
    if total == 0:
        raise TraceError("empty trace: no requests (only blank or '#' lines, or no rows)", file=path)


def _join(parts: list[_Piece], unit: str | None) -> TraceChunk:
    if len(parts) == 1:
        a, w, t, first = parts[0]
    else:
        a = np.concatenate([p[0] for p in parts])
        w = np.concatenate([p[1] for p in parts])
        t = None if parts[0][2] is None else np.concatenate([p[2] for p in parts])
        first = parts[0][3]
    return TraceChunk(a, w, t, unit if t is not None else None, first)


# --- text --------------------------------------------------------------------------------------------
def _text_pieces(path: str, spec: _TextSpec) -> Iterator[_Piece]:
    state = {"prev_cycle": -1, "prev_line": 0}
    lines_done = 0
    carry = b""
    first_block = True
    with open(path, "rb") as fh:
        while True:
            raw = fh.read(_BLOCK_BYTES)
            if not raw:
                if carry:  # last line without a newline
                    yield _parse_text_block(carry + b"\n", spec, lines_done, state, path)
                return
            data = carry + raw if carry else raw
            if first_block:
                first_block = False
                if data.startswith(b"\xef\xbb\xbf"):  # UTF-8 byte-order mark
                    data = b"   " + data[3:]
            cut = data.rfind(b"\n")
            if cut < 0:
                carry = data
                continue
            block, carry = data[:cut + 1], data[cut + 1:]
            piece = _parse_text_block(block, spec, lines_done, state, path)
            lines_done += block.count(b"\n")
            if piece[0].shape[0]:
                yield piece


def _parse_text_block(block: bytes, spec: _TextSpec, lines_before: int, state: dict, path: str) -> _Piece:
    """Parse whole lines (``block`` ends with ``\\n``); line k of the block is file line lines_before+k+1."""
    buf = np.frombuffer(block, dtype=np.uint8)
    ws = _WS[buf]
    nl = np.flatnonzero(buf == 10)
    nlines = nl.shape[0]
    nonws = ~ws
    # A token starts at a non-blank byte after a blank (or at 0) and ends before a blank; the block ends
    # with '\n', so every token ends inside it.
    start_mask = nonws.copy()
    start_mask[1:] &= ws[:-1]
    tstart = np.flatnonzero(start_mask)
    end_mask = nonws
    end_mask[:-1] &= ws[1:]
    tend = np.flatnonzero(end_mask) + 1
    del start_mask, end_mask, nonws, ws
    tline = np.searchsorted(nl, tstart)  # block line index of every token
    ntok = np.bincount(tline, minlength=nlines)
    first = np.cumsum(ntok) - ntok
    has = ntok > 0
    comment = np.zeros(nlines, dtype=bool)
    comment[has] = buf[tstart[first[has]]] == ord("#")
    dl = np.flatnonzero(has & ~comment)  # block line index of every request line
    m = dl.shape[0]
    if m == 0:
        return (np.empty(0, np.uint64), np.empty(0, bool), None, 0)

    bad = ntok[dl] != spec.nfields
    last_tok = max(tstart.shape[0] - 1, 0)

    def field(j: int) -> tuple[np.ndarray, np.ndarray]:
        idx = np.minimum(first[dl] + j, last_tok)
        return tstart[idx], tend[idx]

    # keyword
    s, e = field(spec.op_field)
    is_read = _match_word(buf, s, e, spec.read_word)
    is_w = _match_word(buf, s, e, spec.write_word)
    bad |= ~(is_read | is_w)
    # address
    s, e = field(spec.addr_field)
    if spec.decimal_unprefixed:
        pre = _has_hex_prefix(buf, s, e)
        addr = np.empty(m, dtype=np.uint64)
        ok = np.empty(m, dtype=bool)
        addr[pre], ok[pre] = _parse_hex(buf, s[pre] + 2, e[pre])
        dec = ~pre
        addr[dec], ok[dec] = _parse_dec(buf, s[dec], e[dec])
    else:
        pre = _has_hex_prefix(buf, s, e)
        addr, ok = _parse_hex(buf, s + 2 * pre, e)
    bad |= ~ok
    # cycle
    cyc = None
    if spec.cycle_field is not None:
        s, e = field(spec.cycle_field)
        cyc_u, ok = _parse_dec(buf, s, e)
        ok &= cyc_u <= np.uint64(_INT64_MAX)
        bad |= ~ok
        cyc = cyc_u.astype(np.int64)

    nbad = np.flatnonzero(bad)
    limit = int(nbad[0]) if nbad.shape[0] else m  # requests before the first malformed line are good
    if cyc is not None:
        prev = state["prev_cycle"]
        c = cyc[:limit]
        drops = np.flatnonzero(c[1:] < c[:-1]) + 1
        if limit and c[0] < prev:
            drops = np.r_[0, drops]
        if drops.shape[0]:
            k = int(drops[0])
            before, before_line = (prev, state["prev_line"]) if k == 0 else (int(c[k - 1]), lines_before + int(dl[k - 1]) + 1)
            raise TraceError(
                f"expected a cycle >= {before} (that of the request on line {before_line}) as field "
                f"{spec.cycle_field + 1}, got {int(c[k])}: arrival cycles must be non-decreasing",
                file=path, line=lines_before + int(dl[k]) + 1)
    if limit < m:
        i = int(dl[limit])
        lo = int(nl[i - 1]) + 1 if i else 0
        raise TraceError(_diagnose(spec, block[lo:int(nl[i])]), file=path, line=lines_before + i + 1)
    if cyc is not None:
        state["prev_cycle"] = int(cyc[-1])
        state["prev_line"] = lines_before + int(dl[-1]) + 1
    lines = dl.astype(np.int64) + (lines_before + 1)
    return (addr, is_w, cyc, lines)


def _match_word(buf: np.ndarray, s: np.ndarray, e: np.ndarray, word: bytes) -> np.ndarray:
    out = (e - s) == len(word)
    last = buf.shape[0] - 1
    for i, ch in enumerate(word):
        out &= buf[np.minimum(s + i, last)] == ch
    return out


def _has_hex_prefix(buf: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    last = buf.shape[0] - 1
    return (((e - s) >= 2) & (buf[s] == ord("0"))
            & ((buf[np.minimum(s + 1, last)] | 0x20) == ord("x")))


def _parse_digits(buf: np.ndarray, s: np.ndarray, e: np.ndarray, table: np.ndarray,
                  base: int, maxdig: int) -> tuple[np.ndarray, np.ndarray]:
    """Value (uint64) and validity of the digit strings buf[s:e] in ``base``, vectorised over tokens."""
    ndig = e - s
    ok = (ndig >= 1) & (ndig <= maxdig)
    val = np.zeros(s.shape[0], dtype=np.uint64)
    if s.shape[0] == 0:
        return val, ok
    width = int(min(ndig.max(), maxdig))
    b = np.uint64(base)
    for k in range(width, 0, -1):  # k-th digit from the right, most significant first
        pos = e - k
        inside = pos >= s
        d = table[buf[np.maximum(pos, 0)]]
        ok &= ~(inside & (d == 255))
        d = np.where(inside, d, 0).astype(np.uint64)
        val = val * b + d
    return val, ok


def _parse_hex(buf, s, e):
    return _parse_digits(buf, s, e, _HEXVAL, 16, _HEX_DIGITS_MAX)


def _parse_dec(buf, s, e):
    return _parse_digits(buf, s, e, _DECVAL, 10, _DEC_DIGITS_MAX)


def _show(raw: bytes, limit: int = 80) -> str:
    text = raw.strip().decode("utf-8", "replace")
    if len(text) > limit:
        text = text[:limit] + "..."
    return repr(text)


def _is_hex(tok: bytes) -> bool:
    return 1 <= len(tok) <= _HEX_DIGITS_MAX and all(c in b"0123456789abcdefABCDEF" for c in tok)


def _is_dec(tok: bytes) -> bool:
    return 1 <= len(tok) <= _DEC_DIGITS_MAX and all(48 <= c <= 57 for c in tok)


def _diagnose(spec: _TextSpec, raw: bytes) -> str:
    """Explain what is wrong with one malformed request line (slow path, runs once per error)."""
    toks = raw.split()
    if len(toks) != spec.nfields:
        kind = "missing field" if len(toks) < spec.nfields else "extra field"
        return (f"expected {spec.nfields} fields '{spec.layout}', got {len(toks)} ({kind}s) in "
                f"{_show(raw)}")
    for j, tok in enumerate(toks):
        shown = _show(tok)
        where = f"as field {j + 1}"
        if j == spec.op_field:
            if tok not in (spec.read_word, spec.write_word):
                return (f"expected '{spec.read_word.decode()}' or '{spec.write_word.decode()}' {where}, "
                        f"got {shown}")
        elif j == spec.addr_field:
            prefixed = tok[:2] in (b"0x", b"0X")
            digits = tok[2:] if prefixed else tok
            if spec.decimal_unprefixed and not prefixed:
                if not _is_dec(digits):
                    return (f"expected an address {where}: 0x-prefixed hexadecimal or unprefixed decimal "
                            f"(at most {_DEC_DIGITS_MAX} digits), got {shown}")
            elif not _is_hex(digits):
                return (f"expected a hexadecimal address {where} (optional 0x, at most "
                        f"{_HEX_DIGITS_MAX} digits), got {shown}")
        elif j == spec.cycle_field:
            if tok.startswith(b"-") and _is_dec(tok[1:]):
                return f"expected a non-negative arrival cycle {where}, got {shown}"
            if not _is_dec(tok) or int(tok) > _INT64_MAX:
                return f"expected a decimal arrival cycle {where} (0 to {_INT64_MAX}), got {shown}"
    return f"malformed line: expected '{spec.layout}', got {_show(raw)}"


# --- memsim (Parquet) --------------------------------------------------------------------------------
def _memsim_pieces(path: str, chunk_size: int) -> Iterator[_Piece]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise TraceError(f"not a readable Parquet file (memsim trace format): {exc}", file=path) from None
    schema = pf.schema_arrow
    version = (schema.metadata or {}).get(_VERSION_KEY)
    if version is None:
        raise TraceError("Parquet file lacks the file-metadata key 'memsim_trace_version'; expected a memsim "
                         "trace (columns addr: uint64, write: bool, optional arrival_ps: int64)", file=path)
    if version != str(MEMSIM_TRACE_VERSION).encode():
        raise TraceError(f"expected memsim_trace_version={MEMSIM_TRACE_VERSION}, got "
                         f"{version.decode('utf-8', 'replace')!r}", file=path)
    names = set(schema.names)
    for col, want in (("addr", pa.types.is_integer), ("write", pa.types.is_boolean)):
        if col not in names:
            raise TraceError(f"missing column {col!r}; expected columns addr (uint64), write (bool) and "
                             "optional arrival_ps (int64)", file=path)
        if not want(schema.field(col).type):
            raise TraceError(f"expected column {col!r} of type {'uint64' if col == 'addr' else 'bool'}, "
                             f"got {schema.field(col).type}", file=path)
    has_arrival = "arrival_ps" in names
    if has_arrival and not pa.types.is_integer(schema.field("arrival_ps").type):
        raise TraceError(f"expected column 'arrival_ps' of type int64, got {schema.field('arrival_ps').type}",
                         file=path)
    cols = ["addr", "write"] + (["arrival_ps"] if has_arrival else [])
    row0 = 1
    prev, prev_row = -1, 0
    try:
        batches = pf.iter_batches(batch_size=min(chunk_size, 1 << 20), columns=cols)
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            arrays = {}
            for col in cols:
                arr = batch.column(col)
                if arr.null_count:
                    bad = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                    raise TraceError(f"expected a value in column {col!r}, got null (row {row0 + bad})",
                                     file=path, line=row0 + bad)
                values = arr.to_numpy(zero_copy_only=False)
                arrays[col] = values if values.flags.writeable else values.copy()  # callers may edit
            a = arrays["addr"]
            if a.dtype.kind == "i" and (a < 0).any():
                bad = int(np.flatnonzero(a < 0)[0])
                raise TraceError(f"expected a non-negative addr, got {int(a[bad])} (row {row0 + bad})",
                                 file=path, line=row0 + bad)
            a = a.astype(np.uint64, copy=False)
            w = arrays["write"].astype(bool, copy=False)
            t = None
            if has_arrival:
                t = arrays["arrival_ps"]
                if t.dtype == np.uint64 and (t > _INT64_MAX).any():
                    bad = int(np.flatnonzero(t > _INT64_MAX)[0])
                    raise TraceError(f"arrival_ps {int(t[bad])} does not fit int64 (row {row0 + bad})",
                                     file=path, line=row0 + bad)
                t = t.astype(np.int64, copy=False)
                if t[0] < prev or (t[1:] < t[:-1]).any():
                    k = 0 if t[0] < prev else int(np.flatnonzero(t[1:] < t[:-1])[0]) + 1
                    before, before_row = (prev, prev_row) if k == 0 else (int(t[k - 1]), row0 + k - 1)
                    what = "non-negative" if k == 0 and prev_row == 0 else f">= {before} (row {before_row})"
                    raise TraceError(f"expected arrival_ps {what}, got {int(t[k])} (row {row0 + k}): arrival "
                                     "times must be non-negative and non-decreasing", file=path, line=row0 + k)
                prev, prev_row = int(t[-1]), row0 + n - 1
            yield (a, w, t, row0)
            row0 += n
    except (OSError, pa.ArrowException) as exc:
        raise TraceError(f"corrupt Parquet data near row {row0}: {exc}", file=path, line=row0) from None


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------
def write_trace(path: str | os.PathLike, addr, is_write, arrival=None, fmt: str | None = None,
                arrival_unit: str | None = None) -> Path:
    """Write a trace file atomically (temporary file in the same directory, then ``os.replace``).

    Parameters
    ----------
    path : str or os.PathLike
        Destination; its directory must exist.
    addr : array_like of int
        Byte addresses, shape ``(n,)``, ``n >= 1``; converted to ``uint64`` (negative values rejected).
    is_write : array_like of bool
        Shape ``(n,)``: True for writes.
    arrival : array_like of int, optional
        Shape ``(n,)``, non-negative and non-decreasing arrival times in ``arrival_unit``. memsim stores
        them as ``arrival_ps``; dramsim3 as the cycle field (all 0 when None, i.e. "as soon as accepted");
        ramulator1/2 have no arrival field and reject it.
    fmt : str, optional
        One of :data:`FORMATS`. When None: the format named by the file name as in
        :func:`detect_format` (``*.dramsim3.trace`` and so on), else ``'memsim'``.
    arrival_unit : str, optional
        ``'ps'`` (memsim) or ``'cycle'`` (dramsim3); defaults to the format's own unit and must match it,
        because converting between them needs a clock this module does not know.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        Unknown format, mismatched shapes, negative addresses, bad arrival times or unit.
    """
    p = str(path)
    if fmt is None:
        low = os.path.basename(p).lower()
        fmt = next((name for suffix, name in _SUFFIXES.items() if low.endswith(suffix)), "memsim")
    if fmt not in FORMATS:
        raise ValueError(f"unknown trace format {fmt!r}; expected one of {', '.join(FORMATS)}")
    a = _as_addr(addr)
    w = np.asarray(is_write)
    if w.shape != a.shape:
        raise ValueError(f"is_write has shape {w.shape}, addr has {a.shape}")
    if w.dtype != bool:
        if not np.isin(w, (0, 1)).all():
            raise ValueError("is_write must be boolean (or 0/1)")
        w = w.astype(bool)
    native_unit = {"memsim": "ps", "dramsim3": "cycle"}.get(fmt)
    t = None
    if arrival is not None:
        if native_unit is None:
            raise ValueError(f"format {fmt!r} has no arrival-time field; pass arrival=None")
        if arrival_unit is not None and arrival_unit != native_unit:
            raise ValueError(f"format {fmt!r} stores arrival times in {native_unit!r}, got arrival_unit="
                             f"{arrival_unit!r}; convert first")
        t = np.asarray(arrival)
        if t.shape != a.shape or t.dtype.kind not in "iu":
            raise ValueError(f"arrival must be an integer array of shape {a.shape}, got {t.dtype} {t.shape}")
        if t.dtype == np.uint64 and (t > _INT64_MAX).any():
            raise ValueError("arrival does not fit int64")
        t = t.astype(np.int64, copy=False)
        if t[0] < 0 or (t[1:] < t[:-1]).any():
            raise ValueError("arrival times must be non-negative and non-decreasing")
    elif arrival_unit is not None and arrival_unit not in ("ps", "cycle"):
        raise ValueError(f"arrival_unit must be 'ps' or 'cycle', got {arrival_unit!r}")

    target = Path(p)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        if fmt == "memsim":
            os.close(fd)
            fd = -1
            _write_memsim(tmp, a, w, t)
        else:
            with os.fdopen(fd, "wb") as fh:
                fd = -1
                _write_text(fh, _TEXT_SPECS[fmt], a, w, t)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_addr(addr) -> np.ndarray:
    a = np.asarray(addr)
    if a.ndim != 1 or a.shape[0] == 0:
        raise ValueError(f"addr must be a non-empty 1-D array, got shape {a.shape}")
    if a.dtype.kind == "i":
        if (a < 0).any():
            raise ValueError("addr must be non-negative")
    elif a.dtype.kind != "u":
        raise ValueError(f"addr must be an integer array, got {a.dtype}")
    return a.astype(np.uint64, copy=False)


def _write_memsim(path: str, a: np.ndarray, w: np.ndarray, t: np.ndarray | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {"addr": pa.array(a, type=pa.uint64()), "write": pa.array(w, type=pa.bool_())}
    if t is not None:
        cols["arrival_ps"] = pa.array(t, type=pa.int64())
    table = pa.table(cols).replace_schema_metadata({_VERSION_KEY: str(MEMSIM_TRACE_VERSION).encode()})
    pq.write_table(table, path, row_group_size=1 << 20, compression="zstd")


def _write_text(fh, spec: _TextSpec, a: np.ndarray, w: np.ndarray, t: np.ndarray | None) -> None:
    n = a.shape[0]
    if spec.cycle_field is not None and t is None:
        t = np.zeros(n, dtype=np.int64)
    for lo in range(0, n, _WRITE_ROWS):
        hi = min(n, lo + _WRITE_ROWS)
        segs: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for j in range(spec.nfields):
            if j:
                segs.append(_literal(b" ", hi - lo))
            if j == spec.op_field:
                segs.append(_choice(w[lo:hi], spec.read_word, spec.write_word))
            elif j == spec.addr_field:
                segs.append(_literal(b"0x", hi - lo))
                segs.append(_digits(a[lo:hi], 16))
            else:
                segs.append(_digits(t[lo:hi].astype(np.uint64), 10))
        segs.append(_literal(b"\n", hi - lo))
        fh.write(_assemble(segs, hi - lo).data)


# A segment is (chars (rows or 1, width) uint8, first valid column per row, length per row).
def _literal(text: bytes, rows: int):
    chars = np.frombuffer(text, dtype=np.uint8)[None, :]
    return chars, np.zeros(rows, dtype=np.int64), np.full(rows, len(text), dtype=np.int64)


def _choice(flag: np.ndarray, if_false: bytes, if_true: bytes):
    width = max(len(if_false), len(if_true))
    words = np.zeros((2, width), dtype=np.uint8)
    words[0, :len(if_false)] = np.frombuffer(if_false, dtype=np.uint8)
    words[1, :len(if_true)] = np.frombuffer(if_true, dtype=np.uint8)
    idx = flag.astype(np.intp)
    return words[idx], np.zeros(flag.shape[0], dtype=np.int64), np.array([len(if_false), len(if_true)])[idx]


def _digits(v: np.ndarray, base: int):
    """Right-aligned digit characters of unsigned values, without leading zeros (0 → '0')."""
    width, top = 1, int(v.max()) // base
    while top:
        width, top = width + 1, top // base
    rows = v.shape[0]
    chars = np.empty((rows, width), dtype=np.uint8)
    ndig = np.ones(rows, dtype=np.int64)
    rest = v.astype(np.uint64, copy=True)
    b = np.uint64(base)
    for k in range(width):
        chars[:, width - 1 - k] = _HEXCHARS[(rest % b).astype(np.intp)]
        if k:
            ndig[rest != 0] = k + 1
        rest //= b
    return chars, width - ndig, ndig


def _assemble(segs, rows: int) -> np.ndarray:
    lengths = sum(seg[2] for seg in segs)
    ends = np.cumsum(lengths)
    out = np.empty(int(ends[-1]), dtype=np.uint8)
    cur = ends - lengths  # where the next segment starts in each row
    for chars, first_col, length in segs:
        if chars.shape[0] == 1 and not (length - length[0]).any():  # same bytes on every row
            for c in range(chars.shape[1]):
                out[cur + c] = chars[0, c]
        else:
            for c in range(chars.shape[1]):
                rel = c - first_col
                use = (rel >= 0) & (rel < length)
                out[(cur + rel)[use]] = chars[use, c]
        cur = cur + length
    return out
