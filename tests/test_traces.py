"""Tests of memsim.traces: the four trace formats and the synthetic reference traces."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memsim.errors import TraceError
from memsim.traces import (
    FORMATS,
    REFERENCE_TRACES,
    TraceChunk,
    detect_format,
    gemv,
    mix,
    open_trace,
    rand,
    rand_unloaded,
    read_trace,
    seq,
    write_trace,
)
from memsim.traces import formats as fmts

TEXT = ("dramsim3", "ramulator1", "ramulator2")
NAME = {"memsim": "t.memsim.parquet", "dramsim3": "t.dramsim3.trace", "ramulator1": "t.ramulator1.trace",
        "ramulator2": "t.ramulator2.trace"}


@pytest.fixture
def small_blocks(monkeypatch):
    """Parse text in 64-byte blocks so that block boundaries fall everywhere."""
    monkeypatch.setattr(fmts, "_BLOCK_BYTES", 64)


def _sample(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    addr = rng.integers(0, 1 << 40, size=n, dtype=np.uint64)
    addr[:4] = [0, 1, (1 << 64) - 1, 0xDEADBEEF]
    is_w = rng.random(n) < 0.4
    arrival = np.cumsum(rng.integers(0, 1000, size=n)).astype(np.int64)
    return addr, is_w, arrival


def _arrival_for(fmt, arrival):
    return arrival if fmt in ("memsim", "dramsim3") else None


def _write_text(tmp_path, name, text: str | bytes):
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _err(path, fmt=None, chunk_size=1 << 20) -> TraceError:
    with pytest.raises(TraceError) as info:
        for _ in open_trace(path, fmt, chunk_size=chunk_size):
            pass
    return info.value


# ---------------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_whole(tmp_path, fmt):
    addr, is_w, arrival = _sample()
    arr = _arrival_for(fmt, arrival)
    p = write_trace(tmp_path / NAME[fmt], addr, is_w, arr, fmt=fmt)
    assert detect_format(p) == fmt
    tr = read_trace(p)
    assert tr.addr.dtype == np.uint64 and tr.is_write.dtype == bool
    np.testing.assert_array_equal(tr.addr, addr)
    np.testing.assert_array_equal(tr.is_write, is_w)
    if arr is None:
        assert tr.arrival is None and tr.arrival_unit is None
    else:
        assert tr.arrival.dtype == np.int64
        np.testing.assert_array_equal(tr.arrival, arr)
        assert tr.arrival_unit == ("ps" if fmt == "memsim" else "cycle")
    assert tr.first_line == 1
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # no temp file left behind


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk_size", [1, 7, 250, 1000, 5000])
def test_round_trip_chunks(tmp_path, small_blocks, fmt, chunk_size):
    addr, is_w, arrival = _sample(1000)
    arr = _arrival_for(fmt, arrival)
    p = write_trace(tmp_path / NAME[fmt], addr, is_w, arr, fmt=fmt)
    chunks = list(open_trace(p, chunk_size=chunk_size))
    sizes = [len(c) for c in chunks]
    assert sum(sizes) == 1000
    assert all(s == chunk_size for s in sizes[:-1]) and 0 < sizes[-1] <= chunk_size
    assert [c.first_line for c in chunks] == [1 + i * chunk_size for i in range(len(chunks))]
    np.testing.assert_array_equal(np.concatenate([c.addr for c in chunks]), addr)
    np.testing.assert_array_equal(np.concatenate([c.is_write for c in chunks]), is_w)
    if arr is not None:
        np.testing.assert_array_equal(np.concatenate([c.arrival for c in chunks]), arr)


@settings(max_examples=25, deadline=None)
@given(addr=st.lists(st.integers(0, (1 << 64) - 1), min_size=1, max_size=60),
       data=st.data(), block=st.integers(1, 200), chunk=st.integers(1, 70))
def test_round_trip_property(tmp_path_factory, addr, data, block, chunk):
    n = len(addr)
    is_w = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    cyc = np.cumsum(data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))).astype(np.int64)
    a = np.array(addr, dtype=np.uint64)
    d = tmp_path_factory.mktemp("rt")
    old = fmts._BLOCK_BYTES
    fmts._BLOCK_BYTES = block
    try:
        for fmt in TEXT:
            arr = _arrival_for(fmt, cyc)
            p = write_trace(d / NAME[fmt], a, is_w, arr)
            chunks = list(open_trace(p, chunk_size=chunk))
            np.testing.assert_array_equal(np.concatenate([c.addr for c in chunks]), a)
            np.testing.assert_array_equal(np.concatenate([c.is_write for c in chunks]), is_w)
            if arr is not None:
                np.testing.assert_array_equal(np.concatenate([c.arrival for c in chunks]), arr)
    finally:
        fmts._BLOCK_BYTES = old


def test_dramsim3_without_arrival_writes_cycle_zero(tmp_path):
    p = write_trace(tmp_path / "a.dramsim3.trace", [0x40, 0x80], [False, True])
    assert p.read_text() == "0x40 READ 0\n0x80 WRITE 0\n"
    tr = read_trace(p)
    np.testing.assert_array_equal(tr.arrival, [0, 0])
    assert tr.arrival_unit == "cycle"


def test_written_text_matches_reference_layout(tmp_path):
    a, w = np.array([0, 0x1F40], dtype=np.uint64), np.array([False, True])
    assert write_trace(tmp_path / "x.ramulator1.trace", a, w).read_text() == "0x0 R\n0x1f40 W\n"
    assert write_trace(tmp_path / "x.ramulator2.trace", a, w).read_text() == "LD 0x0\nST 0x1f40\n"
    # without a recognised suffix the default format is memsim
    p = write_trace(tmp_path / "x.bin", a, w)
    assert p.read_bytes()[:4] == b"PAR1" and detect_format(p) == "memsim"


def test_memsim_schema(tmp_path):
    addr, is_w, arrival = _sample(10)
    p = write_trace(tmp_path / "m.parquet", addr, is_w, arrival)
    pf = pq.ParquetFile(p)
    assert pf.schema_arrow.metadata[b"memsim_trace_version"] == b"1"
    assert pf.schema_arrow.field("addr").type == pa.uint64()
    assert pf.schema_arrow.field("write").type == pa.bool_()
    assert pf.schema_arrow.field("arrival_ps").type == pa.int64()
    p2 = write_trace(tmp_path / "m2.parquet", addr, is_w)
    assert "arrival_ps" not in pq.ParquetFile(p2).schema_arrow.names
    assert read_trace(p2).arrival is None


def test_write_overwrites_atomically(tmp_path):
    p = tmp_path / "o.ramulator2.trace"
    p.write_text("old\n")
    write_trace(p, [64], [True])
    assert p.read_text() == "ST 0x40\n"
    assert os.listdir(tmp_path) == ["o.ramulator2.trace"]


def test_write_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="no arrival-time field"):
        write_trace(tmp_path / "x.ramulator1.trace", [0], [False], arrival=[0])
    with pytest.raises(ValueError, match="'cycle'"):
        write_trace(tmp_path / "x.dramsim3.trace", [0], [False], arrival=[0], arrival_unit="ps")
    with pytest.raises(ValueError, match="non-decreasing"):
        write_trace(tmp_path / "x.parquet", [0, 64], [False, False], arrival=[5, 4])
    with pytest.raises(ValueError, match="non-negative"):
        write_trace(tmp_path / "x.parquet", [-64], [False])
    with pytest.raises(ValueError, match="shape"):
        write_trace(tmp_path / "x.parquet", [0, 64], [False])
    with pytest.raises(ValueError, match="non-empty"):
        write_trace(tmp_path / "x.parquet", [], [])
    with pytest.raises(ValueError, match="unknown trace format"):
        write_trace(tmp_path / "x.parquet", [0], [False], fmt="csv")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------
# Text details
# ---------------------------------------------------------------------------------------------------
def test_comments_blank_lines_crlf_tabs(tmp_path):
    text = ("# header\r\n\r\n  0x40 READ 3\r\n\t# indented comment\n0X80\tWRITE  5 \n"
            "\n   \nABCDEF00 READ 5\n# tail")
    p = _write_text(tmp_path, "c.dramsim3.trace", text)
    chunks = list(open_trace(p, chunk_size=1))
    assert [c.first_line for c in chunks] == [3, 5, 8]
    tr = read_trace(p)
    np.testing.assert_array_equal(tr.addr, [0x40, 0x80, 0xABCDEF00])
    np.testing.assert_array_equal(tr.is_write, [False, True, False])
    np.testing.assert_array_equal(tr.arrival, [3, 5, 5])


def test_address_conventions(tmp_path):
    # ramulator1: hex with or without 0x (as Ramulator 1.0 reads it)
    tr = read_trace(_write_text(tmp_path, "a.ramulator1.trace", "40 R\n0x40 W\nffffffffffffffff R\n"))
    np.testing.assert_array_equal(tr.addr, [0x40, 0x40, (1 << 64) - 1])
    # ramulator2: 0x → hex, otherwise decimal (as Ramulator 2 reads it)
    tr = read_trace(_write_text(tmp_path, "a.ramulator2.trace", "LD 0x40\nST 64\nLD 0\n"))
    np.testing.assert_array_equal(tr.addr, [64, 64, 0])
    np.testing.assert_array_equal(tr.is_write, [False, True, False])


def test_truncated_last_line_complete_is_fine(tmp_path, small_blocks):
    p = _write_text(tmp_path, "t.dramsim3.trace", "0x40 READ 0\n0x80 WRITE 1")
    tr = read_trace(p)
    np.testing.assert_array_equal(tr.addr, [0x40, 0x80])
    np.testing.assert_array_equal(tr.arrival, [0, 1])


def test_truncated_last_line_missing_field(tmp_path, small_blocks):
    p = _write_text(tmp_path, "t.dramsim3.trace", "0x40 READ 0\n0x80 WRITE 1\n0xc0 REA")
    err = _err(p)
    assert err.line == 3 and err.file == str(p)
    assert "expected 3 fields '<hexaddr> READ|WRITE <cycle>', got 2" in str(err)
    assert str(err).startswith(f"{p}:3: ")


# (format, good line, bad line, expected message fragment)
MALFORMED = [
    ("dramsim3", "0x40 READ 0", "0x40 RAED 0", "expected 'READ' or 'WRITE' as field 2, got 'RAED'"),
    ("dramsim3", "0x40 READ 0", "0x40 read 0", "expected 'READ' or 'WRITE' as field 2, got 'read'"),
    ("dramsim3", "0x40 READ 0", "0xg0 READ 0", "expected a hexadecimal address as field 1"),
    ("dramsim3", "0x40 READ 0", "0x READ 0", "got '0x'"),
    ("dramsim3", "0x40 READ 0", "0x11112222333344445 READ 0", "at most 16 digits"),
    ("dramsim3", "0x40 READ 0", "0x40 READ", "expected 3 fields"),
    ("dramsim3", "0x40 READ 0", "0x40 READ 0 7", "got 4 (extra fields)"),
    ("dramsim3", "0x40 READ 0", "0x40 READ -1", "expected a non-negative arrival cycle as field 3, got '-1'"),
    ("dramsim3", "0x40 READ 0", "0x40 READ 1.5", "expected a decimal arrival cycle as field 3"),
    ("dramsim3", "0x40 READ 0", "0x40 READ 99999999999999999999", "expected a decimal arrival cycle"),
    ("ramulator1", "0x40 R", "0x40 X", "expected 'R' or 'W' as field 2, got 'X'"),
    ("ramulator1", "0x40 R", "0x40", "expected 2 fields '<hexaddr> R|W', got 1 (missing fields)"),
    ("ramulator1", "0x40 R", "0x40 R R", "got 3 (extra fields)"),
    ("ramulator1", "0x40 R", "zz R", "expected a hexadecimal address as field 1"),
    ("ramulator2", "LD 0x40", "LOAD 0x40", "expected 'LD' or 'ST' as field 1, got 'LOAD'"),
    ("ramulator2", "LD 0x40", "LD 0xfoo", "expected a hexadecimal address as field 2"),
    ("ramulator2", "LD 0x40", "LD 12ab", "unprefixed decimal"),
    ("ramulator2", "LD 0x40", "ST", "expected 2 fields 'LD|ST <addr>', got 1"),
]


@pytest.mark.parametrize("fmt,good,bad,msg", MALFORMED)
def test_malformed_line_number_in_later_block(tmp_path, small_blocks, fmt, good, bad, msg):
    lines = ["# comment", ""] + [good] * 40 + [bad] + [good] * 5 + ["also garbage"]
    p = _write_text(tmp_path, NAME[fmt], "\n".join(lines) + "\n")
    err = _err(p, chunk_size=8)
    assert err.line == 43, str(err)
    assert msg in str(err), str(err)
    assert str(err).startswith(f"{p}:43: ")


@pytest.mark.parametrize("fmt,good,bad,msg", MALFORMED[:3])
def test_malformed_first_line_default_blocks(tmp_path, fmt, good, bad, msg):
    p = _write_text(tmp_path, NAME[fmt], bad + "\n" + good + "\n")
    err = _err(p)
    assert err.line == 1 and msg in str(err)


def test_good_chunks_arrive_before_a_later_error(tmp_path, small_blocks):
    p = _write_text(tmp_path, "g.ramulator1.trace", "0x40 R\n" * 30 + "oops\n")
    it = open_trace(p, chunk_size=10)
    assert len(next(it)) == 10
    with pytest.raises(TraceError) as info:
        list(it)
    assert info.value.line == 31


def test_decreasing_cycle(tmp_path, small_blocks):
    lines = [f"0x{64 * i:x} READ {i}" for i in range(20)] + ["0x0 READ 3"]
    p = _write_text(tmp_path, "d.dramsim3.trace", "\n".join(lines) + "\n")
    err = _err(p)
    assert err.line == 21
    assert "expected a cycle >= 19 (that of the request on line 20)" in str(err)


def test_decreasing_cycle_at_block_start(tmp_path, monkeypatch):
    monkeypatch.setattr(fmts, "_BLOCK_BYTES", 6 * 12)  # six 12-byte lines per block
    p = _write_text(tmp_path, "d.dramsim3.trace", "0x40 READ 0\n" * 5 + "0x40 READ 9\n" + "0x40 READ 3\n")
    err = _err(p)
    assert err.line == 7 and "expected a cycle >= 9 (that of the request on line 6)" in str(err)


def test_chunks_are_writable(tmp_path):
    for fmt in FORMATS:
        p = write_trace(tmp_path / NAME[fmt], [0, 64], [False, True], _arrival_for(fmt, np.array([0, 1])))
        for c in open_trace(p):
            assert c.addr.flags.writeable and c.is_write.flags.writeable
            assert c.arrival is None or c.arrival.flags.writeable


def test_first_error_wins(tmp_path):
    # a decreasing cycle on line 3 comes before the bad keyword on line 4
    p = _write_text(tmp_path, "f.dramsim3.trace", "0x0 READ 5\n0x0 READ 6\n0x0 READ 2\n0x0 X 9\n")
    assert _err(p).line == 3
    p = _write_text(tmp_path, "f.dramsim3.trace", "0x0 READ 5\n0x0 X 6\n0x0 READ 2\n")
    assert _err(p).line == 2


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n\n   \n"])
@pytest.mark.parametrize("fmt", TEXT)
def test_empty_trace(tmp_path, fmt, text):
    p = _write_text(tmp_path, NAME[fmt], text)
    err = _err(p)
    assert "empty trace" in str(err) and err.file == str(p)


def test_empty_file_without_format_hint(tmp_path):
    p = _write_text(tmp_path, "e.trace", "# nothing\n")
    with pytest.raises(TraceError, match="empty trace"):
        detect_format(p)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        open_trace(tmp_path / "nope.dramsim3.trace")
    with pytest.raises(TraceError, match="unknown trace format 'csv'"):
        open_trace(tmp_path / "nope.trace", fmt="csv")
    with pytest.raises(ValueError):
        open_trace(tmp_path / "x.parquet", chunk_size=0)


# ---------------------------------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,fmt", [("a.parquet", "memsim"), ("A.PARQUET", "memsim"),
                                      ("w.dramsim3.trace", "dramsim3"), ("w.ramulator1.trace", "ramulator1"),
                                      ("w.ramulator2.trace", "ramulator2")])
def test_detect_by_name(tmp_path, name, fmt):
    assert detect_format(tmp_path / name) == fmt  # the name alone decides; the file need not exist


@pytest.mark.parametrize("text,fmt", [("# c\n\n0x40 WRITE 10\n", "dramsim3"), ("0x40 W\n", "ramulator1"),
                                      ("  ST 0x40\n", "ramulator2"), ("LD 1234", "ramulator2")])
def test_detect_by_content(tmp_path, text, fmt):
    p = _write_text(tmp_path, "x.trace", text)
    assert detect_format(p) == fmt
    assert len(read_trace(p)) == 1


def test_detect_parquet_by_magic(tmp_path):
    p = write_trace(tmp_path / "x.parquet", [0], [False])
    q = tmp_path / "renamed.bin"
    os.rename(p, q)
    assert detect_format(q) == "memsim"


def test_detect_ambiguous(tmp_path):
    p = _write_text(tmp_path, "x.trace", "# hdr\n0x40 LOAD\n")
    with pytest.raises(TraceError, match="--format") as info:
        detect_format(p)
    assert info.value.line == 2
    with pytest.raises(TraceError, match="expected 'R' or 'W' as field 2, got 'LOAD'"):
        read_trace(p, fmt="ramulator1")


# ---------------------------------------------------------------------------------------------------
# memsim Parquet errors
# ---------------------------------------------------------------------------------------------------
def _parquet(path, cols, metadata={b"memsim_trace_version": b"1"}):
    table = pa.table(cols)
    if metadata is not None:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


def test_memsim_missing_version(tmp_path):
    p = _parquet(tmp_path / "a.parquet", {"addr": pa.array([0], pa.uint64()), "write": [False]}, None)
    with pytest.raises(TraceError, match="memsim_trace_version"):
        list(open_trace(p))
    p = _parquet(tmp_path / "b.parquet", {"addr": pa.array([0], pa.uint64()), "write": [False]},
                 {b"memsim_trace_version": b"2"})
    with pytest.raises(TraceError, match="got '2'"):
        list(open_trace(p))


def test_memsim_bad_columns(tmp_path):
    p = _parquet(tmp_path / "a.parquet", {"address": pa.array([0], pa.uint64()), "write": [False]})
    with pytest.raises(TraceError, match="missing column 'addr'"):
        list(open_trace(p))
    p = _parquet(tmp_path / "b.parquet", {"addr": pa.array([0], pa.uint64()), "write": ["no"]})
    with pytest.raises(TraceError, match="column 'write' of type bool"):
        list(open_trace(p))


def test_memsim_null_and_order_rows(tmp_path):
    p = _parquet(tmp_path / "a.parquet", {"addr": pa.array([0, None, 5], pa.uint64()),
                                          "write": [False, True, True]})
    err = _err(p)
    assert err.line == 2 and "null" in str(err)
    p = _parquet(tmp_path / "b.parquet", {"addr": pa.array(np.arange(10, dtype=np.uint64)),
                                          "write": np.zeros(10, bool),
                                          "arrival_ps": pa.array([0, 1, 2, 3, 4, 5, 6, 7, 3, 9], pa.int64())})
    err = _err(p, chunk_size=4)
    assert err.line == 9 and "non-decreasing" in str(err)
    p = _parquet(tmp_path / "c.parquet", {"addr": pa.array([], pa.uint64()), "write": pa.array([], pa.bool_())})
    assert "empty trace" in str(_err(p))


def test_not_parquet(tmp_path):
    p = _write_text(tmp_path, "x.parquet", "0x40 READ 0\n")
    with pytest.raises(TraceError, match="Parquet"):
        list(open_trace(p))


def test_trace_chunk_len():
    c = TraceChunk(np.zeros(3, np.uint64), np.zeros(3, bool), None, None, 1)
    assert len(c) == 3


# ---------------------------------------------------------------------------------------------------
# Synthetic reference traces
# ---------------------------------------------------------------------------------------------------
def test_seq():
    a, w = seq()
    assert a.dtype == np.uint64 and w.dtype == bool
    assert a.size == 1 << 20 and not w.any()
    assert a[:3].tolist() == [0, 64, 128] and int(a[-1]) == (64 << 20) - 64


def test_rand_and_unloaded():
    a, w = rand()
    assert a.size == 1 << 20 and not w.any() and a.dtype == np.uint64
    assert (a % 64 == 0).all() and int(a.max()) < 4 << 30
    u, uw = rand_unloaded()
    assert u.size == 20_000 and not uw.any()
    np.testing.assert_array_equal(u, a[:20_000])
    # same numpy calls as the definition
    ref = np.random.default_rng(1).integers(0, (4 << 30) // 64, size=5, dtype=np.uint64) * np.uint64(64)
    np.testing.assert_array_equal(a[:5], ref)


def test_mix():
    a, w = mix()
    assert a.size == 1 << 20
    assert int((~w).sum()) == 699_434 and int(w.sum()) == 349_142
    rng = np.random.default_rng(2)
    ref = rng.integers(0, (4 << 30) // 64, size=1 << 20, dtype=np.uint64) * np.uint64(64)
    np.testing.assert_array_equal(a, ref)


def test_gemv():
    a, w = gemv()
    assert a.size == 1_048_960 and int(w.sum()) == 256
    assert int(a[0]) == 0x8000_0000 and int(a[127]) == 0x8000_0000 + 127 * 64
    assert int(a[128]) == 0x4000_0000 and int(a[129]) == 0x4000_0040
    # first block: 32 rows x 128 lines, then the y write
    blk = 128 + 32 * 128
    assert int(a[blk - 1]) == 0x4000_0000 + 31 * 8192 + 127 * 64 and not w[blk - 1]
    assert w[blk] and int(a[blk]) == 0x8010_0000
    assert int(a[blk + 1]) == 0x4000_0000 + 32 * 8192
    assert w[-1] and int(a[-1]) == 0x8010_0000 + 255 * 64
    assert np.unique(a).size == a.size


def test_reference_names():
    assert list(REFERENCE_TRACES) == ["seq", "rand", "mix2:1", "gemv", "rand-unloaded(QD1,20k)"]
    assert len(REFERENCE_TRACES["rand-unloaded(QD1,20k)"]()[0]) == 20_000


# ---------------------------------------------------------------------------------------------------
# Shipped sample traces
# ---------------------------------------------------------------------------------------------------
SAMPLES = os.path.join(os.path.dirname(__file__), os.pardir, "workloads", "traces")


def test_shipped_samples_agree():
    pq_path = os.path.join(SAMPLES, "hbm_mixed_small.memsim.parquet")
    txt_path = os.path.join(SAMPLES, "hbm_mixed_small.dramsim3.trace")
    a, b = read_trace(pq_path), read_trace(txt_path)
    assert len(a) == 20_000
    np.testing.assert_array_equal(a.addr, b.addr)
    np.testing.assert_array_equal(a.is_write, b.is_write)
    assert a.arrival is None and b.arrival_unit == "cycle" and not b.arrival.any()
