"""Validation cases of the mapping policies: each policy module may define ``validation_cases()``
returning :class:`memsim.validate.catalogue.Case` objects (published figure, source, tolerance or band);
this module gathers them for ``memsim validate`` in module-name order."""
from __future__ import annotations

import importlib
import pkgutil


def cases() -> list:
    import memsim.policies as pkg
    from memsim.policies.base import _NOT_POLICIES

    out = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if info.name in _NOT_POLICIES or info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"memsim.policies.{info.name}")
        fn = getattr(mod, "validation_cases", None)
        if fn is not None:
            out.extend(fn())
    return out
