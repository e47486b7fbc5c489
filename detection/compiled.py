"""Which of Vigie's modules are compiled (mypyc, built by setup.py), and the way back to their
pure-Python source.

The compiled modules are the agent's per-line work and `vigie netmeta`'s per-packet work
(issue 12): each is a C extension next to its `.py` file, which Python imports in its place.
`detection` (imported before any of them: `collector` imports it first) puts a finder ahead
of the others that loads these modules from their `.py` files instead (this module installs
it when imported):
- always, with `VIGIE_PURE_PYTHON=1` in the environment: the fallback, to compare the two
  (tests/collector/test_compiled.py) or to rule the compiled code out;
- when the `.py` file of any of them is newer than its extension: an edited module is what
  runs, not the extension built before the edit (`pip install -e .` builds it again), and
  the others run from source with it, since compiled modules call each other's classes as
  C types, which the class of a module run from source is not.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path
from types import ModuleType

# Kept in step with setup.py's COMPILED (a test checks it).
COMPILED = (
    "detection.sources.syslog",
    "collector.sources.lines",
    "collector.privacy",
    "detection.flatten",
    "collector.netmeta.reader",
    "collector.netmeta.decode",
    "collector.netmeta.flows",
    "collector.netmeta.records",
    "collector.netmeta.dns",
    "collector.netmeta.pipeline",
    "collector.netmeta.jsonl",
    "collector.netmeta.http",
    "collector.netmeta.handshakes",
    "collector.netmeta.hl7",
    "collector.netmeta.dicom",
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


class SourceFirst:
    """Finds the modules named as their `.py` files, ahead of their extension: always, or
    when the extension is older than the source. A meta path finder by its find_spec alone,
    not importlib.abc's subclass: that module's import (importlib.resources, tempfile...)
    was a twentieth of `vigie netmeta`'s start-up."""

    def __init__(self, names: Collection[str], *, always: bool) -> None:
        self.names = frozenset(names)
        self.always = always

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self.names:
            return None
        leaf = fullname.rpartition(".")[2]
        for folder in path or sys.path:
            source = Path(folder) / f"{leaf}.py"
            if not source.is_file():
                continue
            if self.always or _stale(source):
                return importlib.util.spec_from_file_location(fullname, source)
            _bind_packages(fullname)
            return None  # the extension (or the source, if none is built): the usual finders
        return None


def _bind_packages(fullname: str) -> None:
    """Set each package of `fullname` as an attribute of its parent now, not once it has run.

    A compiled module finds the C functions of another (separate=True in setup.py) by walking
    attributes from the top package (PyCapsule_Import): `collector.netmeta`, importing its
    compiled modules from its `__init__`, would otherwise not be found while that runs."""
    parts = fullname.split(".")
    for depth in range(1, len(parts) - 1):
        parent = sys.modules.get(".".join(parts[:depth]))
        child = sys.modules.get(".".join(parts[: depth + 1]))
        if parent is not None and child is not None and parts[depth] not in vars(parent):
            setattr(parent, parts[depth], child)


def _stale(source: Path) -> bool:
    """Whether an extension is built for `source` and older than it."""
    try:
        edited = source.stat().st_mtime
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            built = source.with_suffix(suffix)
            if built.is_file():
                return built.stat().st_mtime < edited
    except OSError:
        return False
    return False


def stale_modules(root: Path) -> list[str]:
    """The modules of COMPILED, under the folder holding Vigie's packages, whose extension is
    older than their source."""
    return [name for name in COMPILED if _stale(root.joinpath(*name.split(".")).with_suffix(".py"))]


def install(*, always: bool) -> None:
    """Put the finder for COMPILED first (once; `always` as asked last)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, SourceFirst)]
    sys.meta_path.insert(0, SourceFirst(COMPILED, always=always))


# At import, which `detection/__init__.py` does before anything else.
install(always=pure_python_wanted() or bool(stale_modules(Path(__file__).resolve().parents[1])))
