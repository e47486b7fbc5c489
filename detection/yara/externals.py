"""The external variables real rule sets expect, declared at compile time and set per file.

signature-base (and the LOKI/THOR scanners it was written for) reads `filename` (base name),
`filepath` (full path), `extension` (lower case, with its dot: ".exe"), `filetype` (an upper-case
kind guessed from the first bytes, or from the extension for scripts) and `owner` (the file
owner's user name). A rule that uses an undeclared variable does not compile, so all five are
always declared, empty by default.
"""

from __future__ import annotations

import functools
import os
from pathlib import PurePath

EXTERNAL_NAMES = ("filename", "filepath", "extension", "filetype", "owner")
DEFAULT_EXTERNALS: dict[str, str] = dict.fromkeys(EXTERNAL_NAMES, "")

# Bytes read from the start of a file to guess its type.
HEAD_SIZE = 16

# (magic, type) in the spelling signature-base's conditions compare against.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"MZ", "EXE"),
    (b"\x7fELF", "ELF"),
    (b"\xfe\xed\xfa\xce", "MACH-O"),
    (b"\xfe\xed\xfa\xcf", "MACH-O"),
    (b"\xce\xfa\xed\xfe", "MACH-O"),
    (b"\xcf\xfa\xed\xfe", "MACH-O"),
    (b"%PDF", "PDF"),
    (b"GIF8", "GIF"),
    (b"{\\rt", "RTF"),
    (b"MDMP", "MDMP"),
    (b"PK\x03\x04", "ZIP"),
    (b"Rar!", "RAR"),
    (b"7z\xbc\xaf", "7Z"),
    (b"\x1f\x8b", "GZIP"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG", "PNG"),
    (b"MSCF", "CAB"),
    (b"\xd0\xcf\x11\xe0", "OLE"),
    (b"\xca\xfe\xba\xbe", "JAVA"),
)

# Text formats have no magic: the extension decides.
_BY_EXTENSION = {
    ".php": "PHP",
    ".jsp": "JSP",
    ".asp": "ASP",
    ".aspx": "ASP",
    ".vbs": "VBS",
    ".bat": "BATCH",
    ".cmd": "BATCH",
    ".py": "Python",
    ".ps1": "PS1",
    ".js": "JS",
}


# The magics by length, looked up rather than tried one by one (this runs for every file). No
# magic is the start of another, so the order of the lookups does not matter.
_MAGIC_BY_LENGTH = {
    length: {magic: kind for magic, kind in _MAGIC if len(magic) == length}
    for length in sorted({len(magic) for magic, _ in _MAGIC})
}


def guess_filetype(head: bytes, extension: str) -> str:
    for length, kinds in _MAGIC_BY_LENGTH.items():
        kind = kinds.get(head[:length])
        if kind is not None:
            return kind
    return _BY_EXTENSION.get(extension, "")


@functools.lru_cache(maxsize=256)
def owner_name(uid: int) -> str:
    """The user name of `uid`, or the number when it has none (a file from another system)."""
    try:
        import pwd  # POSIX only: imported here so that Windows agents can load this module

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def externals_for(name: str, head: bytes, uid: int | None = None) -> dict[str, str]:
    """External variable values for one file (or buffer) called `name`."""
    filename = os.path.basename(name)
    if filename in ("", "."):  # "dir/", "dir/.": what pathlib makes of them
        filename = PurePath(name).name
    # As PurePath.suffix, without building a path object for every file scanned.
    dot = filename.rfind(".")
    extension = filename[dot:].lower() if 0 < dot < len(filename) - 1 else ""
    return {
        "filename": filename,
        "filepath": name,
        "extension": extension,
        "filetype": guess_filetype(head, extension),
        "owner": owner_name(uid) if uid is not None and os.name == "posix" else "",
    }
