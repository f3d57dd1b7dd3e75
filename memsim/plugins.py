"""Optional parts of memsim: modules listed in an extension table that may not exist (yet)."""
from __future__ import annotations

import importlib
from types import ModuleType


def import_optional(module: str) -> ModuleType | None:
    """Import ``module``; None if it (or a package above it) does not exist. Any other import error,
    including a missing dependency *inside* an existing module, propagates."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise
