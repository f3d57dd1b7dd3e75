"""What Numba's disk cache does not see: the constants a jitted kernel imports from another module.

Numba files a cached build (``cache=True``) under the kernel file's source stamp, the values of the
kernel's closure and its signature. Module constants the kernel reads (command codes, ``par`` indices) are
compiled in, yet an edit of the module that defines them leaves all three unchanged, so the stale build is
loaded and runs with the old indices: no error, wrong timing (this happened once while developing the DRAM
kernel). A kernel therefore carries :func:`layout_of` of each such module in its cache key: the DRAM kernel
as a closure value, the PIM kernel as an omitted default argument (part of the signature).
"""
from __future__ import annotations

from types import ModuleType


def layout_of(module: ModuleType) -> tuple[int, ...]:
    """Every upper-case integer constant of ``module``, in name order: changes whenever one is added,
    removed or given another value."""
    return tuple(value for name, value in sorted(vars(module).items())
                 if name.isupper() and isinstance(value, int))
