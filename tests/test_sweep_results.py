"""memsim.results: content-addressed, atomic, crash-safe run folders."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from memsim.results import (
    DONE_MARKER,
    ResultsError,
    canonical_json,
    clean_stale,
    input_hash,
    is_complete,
    read_run,
    run_status,
    write_run_folder,
)

RES = {"kind": "dram", "hw": {"channels": 8, "tck_ps": 625}, "trace": {"name": "seq", "requests": 1000}}


def test_hash_is_order_independent_and_sensitive():
    a = input_hash(RES)
    assert a == input_hash({"trace": RES["trace"], "hw": {"tck_ps": 625, "channels": 8}, "kind": "dram"})
    assert len(a) == 16 and int(a, 16) >= 0
    assert a != input_hash({**RES, "hw": {"channels": 16, "tck_ps": 625}})
    assert a != input_hash({**RES, "hw": {"channels": 8.0 + 1e-9, "tck_ps": 625}})


def test_canonical_json_rejects_unrepresentable():
    with pytest.raises(TypeError):
        canonical_json({"x": object()})
    assert canonical_json({"b": 1, "a": float("nan")}) == b'{"a":"nan","b":1}'


def test_write_and_read_roundtrip_deterministic(tmp_path):
    files = {"stats.json": '{"x": 1}', "sub/ops.bin": b"\x00\x01"}
    f1 = write_run_folder(tmp_path / "a", RES, files)
    f2 = write_run_folder(tmp_path / "b", RES, files)
    assert f1.name == f2.name == input_hash(RES)
    for name in ("stats.json", "sub/ops.bin", "resolved.json", DONE_MARKER):
        assert (f1 / name).read_bytes() == (f2 / name).read_bytes()
    run = read_run(f1)
    assert run["resolved"] == RES and run["status"] == "ok"
    assert run["files"] == {"stats.json": b'{"x": 1}', "sub/ops.bin": b"\x00\x01"}
    assert run["json"]["stats.json"] == {"x": 1}
    assert sorted(os.listdir(tmp_path / "a")) == [f1.name]  # no temporaries left behind


def test_complete_folder_is_not_rewritten_unless_replace(tmp_path):
    f = write_run_folder(tmp_path, RES, {"err.json": "{}"}, status="failed")
    assert run_status(f) == "failed"
    assert write_run_folder(tmp_path, RES, {"stats.json": "{}"}) == f
    assert run_status(f) == "failed"
    write_run_folder(tmp_path, RES, {"stats.json": "{}"}, replace=True)
    assert run_status(f) == "ok" and not (f / "err.json").exists()
    assert sorted(os.listdir(tmp_path)) == [f.name]


def test_reserved_and_bad_names(tmp_path):
    for bad in ("done", "resolved.json", "../x", "/abs", "a//b", ".tmp.x"):
        with pytest.raises(ResultsError):
            write_run_folder(tmp_path, RES, {bad: "x"})
    assert not any(tmp_path.iterdir())


def test_half_written_leftovers_are_ignored_and_cleaned(tmp_path):
    # a temporary of a dead writer on this host, a folder whose marker is missing, one with a truncated file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    from memsim.results import _host_tag

    tmp = tmp_path / f".tmp.{input_hash(RES)}.{_host_tag()}.{dead}.abcd1234"
    tmp.mkdir()
    (tmp / "stats.json").write_text("{")
    f = write_run_folder(tmp_path, RES, {"stats.json": "{}"})
    (f / "stats.json").write_text("{}  ")  # size differs from the marker -> incomplete
    assert not is_complete(f)
    with pytest.raises(ResultsError):
        read_run(f)
    (f / "stats.json").write_text("[]")  # same size, other bytes -> checksum error on read
    assert is_complete(f)
    with pytest.raises(ResultsError, match="checksum"):
        read_run(f)
    (f / DONE_MARKER).unlink()
    assert not is_complete(f) and run_status(f) is None
    assert not tmp.exists()  # cleaned by the write above
    write_run_folder(tmp_path, RES, {"stats.json": "{}"})  # an incomplete folder is replaced
    assert read_run(f)["json"]["stats.json"] == {}


def test_live_writer_temporaries_are_kept(tmp_path):
    from memsim.results import _host_tag

    live = tmp_path / f".tmp.0123456789abcdef.{_host_tag()}.{os.getpid()}.00000000"
    live.mkdir()
    assert clean_stale(tmp_path) == [] and live.exists()
    junk = tmp_path / ".tmp.garbage"
    junk.mkdir()
    assert clean_stale(tmp_path) == [junk]
