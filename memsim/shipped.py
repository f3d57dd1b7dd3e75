"""Where the shipped hardware configs and workloads live.

They sit at the top of the source tree (``hw_configs/``, ``workloads/``), beside the ``memsim`` package,
so that users read, copy and edit them in place. memsim therefore runs from a source checkout installed
with ``pip install -e .`` (the README's command); a plain wheel install has no shipped configs and gets a
clear error from :func:`shipped_path` rather than a missing-file traceback.
"""
from __future__ import annotations

from pathlib import Path

from .errors import MemsimError

#: The source tree's root: the folder that holds ``memsim/``, ``hw_configs/`` and ``workloads/``.
REPO_ROOT = Path(__file__).resolve().parent.parent


def shipped_path(folder: str, *parts: str) -> Path:
    """Path of a shipped file, e.g. ``shipped_path("hw_configs", "h100_sxm.yaml")``.

    Raises MemsimError when ``folder`` is not beside the package (memsim installed without its sources).
    """
    root = REPO_ROOT / folder
    if not root.is_dir():
        raise MemsimError(f"memsim's shipped {folder}/ folder is not beside the package (looked in {REPO_ROOT}); "
                          "install memsim from a source checkout with `pip install -e .`")
    return root.joinpath(*parts)
