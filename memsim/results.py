"""Run folders: one folder per simulated point, named by a hash of its resolved inputs, written atomically.

Layout of one run folder ``<root>/<hash>/``::

    resolved.json   the resolved inputs the hash was computed from (canonical JSON, sorted keys)
    <files ...>     whatever the producer passed (stats.json, ops.parquet, timeline.json, dram.json ...)
    done            the completion marker, written last: status (ok / failed), the results-format version,
                    and the name, size and sha256 of every other file

Guarantees and simplifications:

* **Atomic.** Everything is written (and fsync'ed) into a temporary sibling folder
  ``<root>/.tmp.<hash>.<host>.<pid>.<random>`` that is renamed onto ``<root>/<hash>`` as a last step; a
  reader sees either no folder or a complete one. A process killed mid-write leaves only a temporary
  folder, which readers ignore and :func:`clean_stale` (called by every write and by the sweep driver)
  removes once its writer is gone (same host: the pid is dead; other hosts: older than an hour).
* **Content-addressed and deterministic.** :func:`input_hash` is the first 16 hex digits of the sha256 of
  the canonical JSON (sorted keys, no whitespace, floats by ``repr``) of ``{"memsim_results_format":
  RESULTS_FORMAT_VERSION, "inputs": resolved}``; no timestamps go into names or bytes written here, so the
  same inputs give byte-identical folders (provided the producer's files are deterministic).
* **Immutable once complete.** Writing a folder that already exists and is complete returns it
  untouched, unless ``replace=True`` (used to retry a failed point): then the old folder is first renamed
  aside to a ``.trash.*`` name (ignored and cleaned like temporaries), so a crash in between leaves no
  folder at all (the point is simply run again), never a mixed one.
* Concurrent writers of the *same* hash on one filesystem are safe (the loser's copy is discarded); the
  rename is atomic on POSIX local filesystems and NFSv3+; object stores are not supported.
"""
from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
import os
import secrets
import shutil
import socket
import time
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from memsim.errors import MemsimError

__all__ = [
    "RESULTS_FORMAT_VERSION",
    "DONE_MARKER",
    "RESOLVED_FILE",
    "ResultsError",
    "canonical_json",
    "to_jsonable",
    "input_hash",
    "write_run_folder",
    "is_complete",
    "read_run",
    "run_status",
    "clean_stale",
]

#: Bumped whenever the meaning or layout of run folders changes; part of every hash.
RESULTS_FORMAT_VERSION = 1
DONE_MARKER = "done"
RESOLVED_FILE = "resolved.json"
_RESERVED = (DONE_MARKER, RESOLVED_FILE)
_TMP_PREFIX = ".tmp."
_TRASH_PREFIX = ".trash."
#: Temporaries written from another host are removed once they are this old (seconds).
FOREIGN_STALE_AFTER_S = 3600.0


class ResultsError(MemsimError):
    """A run folder is unreadable, incomplete or corrupt, or a producer passed invalid file names."""


# ----------------------------------------------------------------------------------------------------
# Canonical JSON and hashing
# ----------------------------------------------------------------------------------------------------


def to_jsonable(obj: Any) -> Any:
    """Plain JSON data from dataclasses, mappings, sequences, enums, paths and numpy scalars/arrays.

    Mapping keys become strings; sets are sorted; non-finite floats become the strings "nan", "inf",
    "-inf" (JSON has no such numbers). Anything else raises TypeError: a hash must not depend on a
    ``repr`` that may contain memory addresses.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        if math.isfinite(obj):
            return float(obj)
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((to_jsonable(v) for v in obj), key=lambda v: json.dumps(v, sort_keys=True))
    # numpy without importing it here
    item = getattr(obj, "item", None)
    tolist = getattr(obj, "tolist", None)
    if tolist is not None and getattr(obj, "ndim", 0) > 0:
        return to_jsonable(tolist())
    if item is not None and callable(item):
        return to_jsonable(item())
    raise TypeError(f"cannot represent {type(obj).__name__} as canonical JSON")


def canonical_json(obj: Any, *, indent: int | None = None) -> bytes:
    """UTF-8 JSON with sorted keys; compact when ``indent`` is None (the hashed form)."""
    seps = (",", ":") if indent is None else (",", ": ")
    text = json.dumps(to_jsonable(obj), sort_keys=True, separators=seps, ensure_ascii=False, indent=indent,
                      allow_nan=False)
    return text.encode("utf-8") + (b"\n" if indent is not None else b"")


def input_hash(resolved: Mapping) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON of the resolved inputs (+ format version)."""
    if not isinstance(resolved, Mapping):
        raise TypeError(f"resolved inputs must be a mapping, got {type(resolved).__name__}")
    payload = {"memsim_results_format": RESULTS_FORMAT_VERSION, "inputs": resolved}
    return hashlib.sha256(canonical_json(payload)).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


def _check_name(name: str) -> PurePosixPath:
    p = PurePosixPath(name)
    if (not name or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts) or "\\" in name
            or name != str(p)):
        raise ResultsError(f"invalid file name for a run folder: {name!r} (relative POSIX paths only)")
    if str(p) in _RESERVED:
        raise ResultsError(f"file name {name!r} is reserved in run folders ({', '.join(_RESERVED)})")
    if p.parts[0].startswith((_TMP_PREFIX, _TRASH_PREFIX)):
        raise ResultsError(f"file name {name!r} may not start with {_TMP_PREFIX!r} or {_TRASH_PREFIX!r}")
    return p


def _write_synced(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _as_bytes(name: str, data: bytes | str) -> bytes:
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise ResultsError(f"file {name!r}: expected bytes or str, got {type(data).__name__}")


def _host_tag() -> str:
    host = socket.gethostname().split(".")[0] or "host"
    return "".join(c if c.isalnum() or c == "-" else "-" for c in host)[:40]


def write_run_folder(root: str | os.PathLike, resolved: Mapping, files: Mapping[str, bytes | str], *,
                     status: str = "ok", replace: bool = False) -> Path:
    """Write one run folder ``root/<input_hash(resolved)>/`` atomically and return its path.

    Parameters
    ----------
    root : path
        Folder holding run folders (created if missing).
    resolved : mapping
        The resolved inputs; hashed (:func:`input_hash`) and stored as ``resolved.json``.
    files : mapping of str to bytes or str
        File name (relative POSIX path, sub-folders allowed) to contents; str is written as UTF-8.
    status : str, default "ok"
        Recorded in the ``done`` marker ("ok" or "failed"; a failed point stores its error in a file).
    replace : bool, default False
        Replace an existing complete folder (otherwise it is returned untouched).
    """
    if status not in ("ok", "failed"):
        raise ResultsError(f"status must be 'ok' or 'failed', got {status!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    h = input_hash(resolved)
    target = root / h
    clean_stale(root)
    if not replace and is_complete(target):
        return target
    blobs = {str(_check_name(n)): _as_bytes(n, d) for n, d in files.items()}
    blobs[RESOLVED_FILE] = canonical_json(resolved, indent=1)
    tmp = root / f"{_TMP_PREFIX}{h}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}"
    try:
        tmp.mkdir()
        listing = {}
        for name in sorted(blobs):
            data = blobs[name]
            _write_synced(tmp / name, data)
            listing[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        marker = {"hash": h, "memsim_results_format": RESULTS_FORMAT_VERSION, "status": status,
                  "files": listing}
        _write_synced(tmp / DONE_MARKER, canonical_json(marker, indent=1))
        _fsync_dir(tmp)
        if target.exists() or target.is_symlink():
            if is_complete(target) and not replace:  # someone else finished it meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            aside = root / f"{_TRASH_PREFIX}{h}.{_host_tag()}.{os.getpid()}.{secrets.token_hex(4)}"
            os.replace(target, aside)
            _fsync_dir(root)
            shutil.rmtree(aside, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            if is_complete(target) and not replace:  # lost a race with an identical writer
                shutil.rmtree(tmp, ignore_errors=True)
                return target
            raise
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(root: str | os.PathLike) -> list[Path]:
    """Remove temporaries and set-aside folders whose writer is gone; return what was removed.

    A temporary from this host is stale when its writer's pid is no longer alive; one from another host
    when it is older than FOREIGN_STALE_AFTER_S; an unparseable ``.tmp.*`` / ``.trash.*`` name always.
    """
    root = Path(root)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return removed
    me, now = _host_tag(), time.time()
    for e in entries:
        if not e.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            continue
        parts = e.name.split(".")  # "", "tmp", hash, host, pid, rand
        stale = True
        if len(parts) == 6 and parts[4].isdigit():
            host, pid = parts[3], int(parts[4])
            if host == me:
                stale = not _pid_alive(pid)
            else:
                try:
                    stale = now - e.stat(follow_symlinks=False).st_mtime > FOREIGN_STALE_AFTER_S
                except FileNotFoundError:
                    continue
        if stale:
            p = Path(e.path)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
            removed.append(p)
    return removed


# ----------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------


def _marker(folder: Path) -> dict | None:
    try:
        m = json.loads((folder / DONE_MARKER).read_bytes())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or not isinstance(m.get("files"), dict):
        return None
    return m


def is_complete(folder: str | os.PathLike) -> bool:
    """True when ``folder`` is a finished run folder: its ``done`` marker parses and every file it lists
    exists with the listed size (contents are verified by :func:`read_run`, not here)."""
    folder = Path(folder)
    if folder.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)) or not folder.is_dir():
        return False
    m = _marker(folder)
    if m is None or m.get("memsim_results_format") != RESULTS_FORMAT_VERSION:
        return False
    for name, info in m["files"].items():
        try:
            if (folder / name).stat().st_size != info.get("bytes"):
                return False
        except (OSError, AttributeError):
            return False
    return True


def run_status(folder: str | os.PathLike) -> str | None:
    """"ok" or "failed" for a complete run folder, None for a missing or incomplete one."""
    if not is_complete(folder):
        return None
    return _marker(Path(folder)).get("status")


def read_run(folder: str | os.PathLike, *, load: bool = True, verify: bool = True) -> dict:
    """Read a complete run folder.

    Returns
    -------
    dict with ``hash`` (str), ``path`` (Path), ``status`` ("ok"/"failed"), ``resolved`` (the resolved
    inputs), and ``files``: name -> bytes (``load=True``) or name -> Path (``load=False``), without
    ``resolved.json`` and ``done``. JSON files are also parsed into ``json``: name -> object.

    Raises
    ------
    ResultsError
        When the folder is missing, incomplete, or (``verify=True``) a file's sha256 differs from the
        marker's.
    """
    folder = Path(folder)
    if not is_complete(folder):
        raise ResultsError(f"{folder}: not a complete run folder (no valid '{DONE_MARKER}' marker)")
    m = _marker(folder)
    files: dict[str, Any] = {}
    parsed: dict[str, Any] = {}
    resolved = None
    for name, info in sorted(m["files"].items()):
        path = folder / name
        data = None
        if load or verify or name == RESOLVED_FILE or name.endswith(".json"):
            data = path.read_bytes()
            if verify and hashlib.sha256(data).hexdigest() != info.get("sha256"):
                raise ResultsError(f"{path}: contents differ from the checksum in '{DONE_MARKER}'")
        if name == RESOLVED_FILE:
            resolved = json.loads(data)
            continue
        if name.endswith(".json"):
            try:
                parsed[name] = json.loads(data)
            except ValueError as exc:
                raise ResultsError(f"{path}: invalid JSON ({exc})") from None
        files[name] = data if load else path
    return {"hash": m.get("hash", folder.name), "path": folder, "status": m.get("status", "ok"),
            "resolved": resolved, "files": files, "json": parsed}
