"""The compiled hot paths (issue 12): the agent's per-line work and `vigie netmeta`'s
per-packet work (collector/netmeta: reading, decoding, connection accounting, protocol
readers, records) compiled with mypyc.

`pip install -e '.[dev]'` (or a wheel build) compiles the modules of `COMPILED` into C
extensions that sit next to their `.py` files and are imported in their place. Everything
else about the package is in pyproject.toml.

- `VIGIE_PURE_PYTHON=1` at build time builds nothing (pure Python only); at run time it makes
  Vigie import the `.py` modules even where a compiled one is present (detection/compiled.py).
- A build where mypyc or the C compiler fails still installs, pure Python, with a warning:
  the compiled modules are a speed-up, never a condition for the agent to run.
"""

from __future__ import annotations

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

# Module paths, kept in step with detection/compiled.py's COMPILED (a test checks it). A module
# that mypyc refuses makes the whole build pure Python (with a warning): after changing one,
# `python setup.py build_ext --inplace --force` says so at once.
COMPILED = [
    "detection/sources/syslog.py",
    "collector/sources/lines.py",
    "collector/privacy.py",
    "detection/flatten.py",
    "collector/netmeta/reader.py",
    "collector/netmeta/decode.py",
    "collector/netmeta/flows.py",
    "collector/netmeta/records.py",
    "collector/netmeta/dns.py",
    "collector/netmeta/pipeline.py",
    "collector/netmeta/jsonl.py",
    "collector/netmeta/http.py",
    "collector/netmeta/handshakes.py",
    "collector/netmeta/hl7.py",
    "collector/netmeta/dicom.py",
]
# mypy runs on these only to compile them: the imports they follow are not checked here (the
# build environment holds no stubs of third-party libraries), only with the project's mypy.
# No mypy cache: a PEP 517 build runs setup.py more than once, and from a fresh cache mypyc
# generates no C at all (the extensions were then built empty).
MYPY_OPTIONS = [
    "--ignore-missing-imports",
    "--follow-imports=silent",
    "--no-warn-unused-ignores",
    f"--cache-dir={os.devnull}",
]


class OptionalBuildExt(build_ext):
    """A compiled module that cannot be built leaves its pure-Python module in use."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any failure: the pure-Python modules stay
            self._warn(exc)

    def build_extension(self, ext: object) -> None:
        try:
            super().build_extension(ext)  # type: ignore[arg-type]
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(f"warning: vigie's compiled modules not built ({exc}); pure Python", file=sys.stderr)


def extensions() -> list[object]:
    if os.environ.get("VIGIE_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("warning: mypyc not available: vigie is installed pure Python", file=sys.stderr)
        return []
    try:
        # One extension per module (`separate`): each shared library sits in its own package
        # (no top-level module, which an editable install would not find).
        return list(mypycify([*MYPY_OPTIONS, *COMPILED], separate=True, opt_level="3"))
    except BaseException as exc:  # mypy reports its errors by SystemExit
        print(f"warning: mypyc failed ({exc!r}): vigie is installed pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
