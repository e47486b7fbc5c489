"""Which of Vigie's modules are compiled (mypyc, built by setup.py), and the way back to their
pure-Python source.

The compiled modules are the agent's per-line work (issue 12): each is a C extension next to
its `.py` file, which Python imports in its place. With `VIGIE_PURE_PYTHON=1` in the
environment, `detection` (imported before any of them: `collector` imports it first) puts a
finder ahead of the others that loads these modules from their `.py` files: the fallback, to
compare the two (tests/collector/test_compiled.py) or to rule the compiled code out.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

# Kept in step with setup.py's COMPILED (a test checks it).
COMPILED = (
    "detection.sources.syslog",
    "collector.sources.lines",
    "collector.privacy",
    "detection.flatten",
)
ENVIRONMENT = "VIGIE_PURE_PYTHON"


def pure_python_wanted() -> bool:
    return os.environ.get(ENVIRONMENT) == "1"


def is_compiled(module: ModuleType) -> bool:
    """Whether a module was loaded from a C extension."""
    return isinstance(getattr(module, "__loader__", None), importlib.machinery.ExtensionFileLoader)


def compiled_modules() -> dict[str, bool]:
    """Each compiled-capable module and whether it runs compiled (imported here if need be)."""
    return {name: is_compiled(importlib.import_module(name)) for name in COMPILED}


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the modules of COMPILED as their `.py` files, ahead of the extension."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in COMPILED:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for folder in path or sys.path:
            candidate = Path(folder) / leaf
            if candidate.is_file():
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def prefer_pure_python() -> None:
    """Import the modules of COMPILED from their source from now on (idempotent)."""
    if not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())
