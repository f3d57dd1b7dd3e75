"""Error types users see.

Every error raised for bad *user input* is one of these, and its message names where the problem is:
a config file and the dotted YAML path inside it, or a trace file and its line number. Library bugs are
left as ordinary Python exceptions so that they are not mistaken for input problems.
"""
from __future__ import annotations


class MemsimError(Exception):
    """Base class of every error memsim raises for bad input."""


class ConfigError(MemsimError):
    """A hardware config, preset or workload is malformed or physically impossible.

    ``str(err)`` reads ``"<file>: <yaml.path>: <what was expected>, got <value>"``.
    """

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None):
        self.file = file
        self.path = path
        self.message = message
        where = ": ".join(p for p in (file, path) if p)
        super().__init__(f"{where}: {message}" if where else message)


class TraceError(MemsimError):
    """A memory trace is malformed. ``str(err)`` reads ``"<file>:<line>: <what was expected>"``."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        self.file = file
        self.line = line
        self.message = message
        where = file or "<trace>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")
