"""The data directory holds password hashes, TLP:RED alerts and every establishment's events:
it is the service account's alone (0700, files 0600).

`private_files()` sets the umask that gives new files and folders those modes; `vigie serve`
sets it for the whole process, `create_app` around the files it makes at start (the SQLite
files, whose WAL and SHM files SQLite creates with the database's mode, the event store, the
bundle signing key, the generated secret, the rule cache). `check(data_dir)` makes the folder
if it is missing, warns when an existing one is open to other accounts, and closes the files
in it that are.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("vigie.api")

PRIVATE_UMASK = 0o077


@contextmanager
def private_files() -> Iterator[None]:
    """New files and folders readable by their owner only, for the time of the block."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def check(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data directory %s has mode %04o: other local accounts may read it (chmod 700 it)",
            data_dir,
            mode,
        )
    for path in data_dir.iterdir():
        if path.is_file() and not path.is_symlink():
            file_mode = stat.S_IMODE(path.stat().st_mode)
            if file_mode & 0o077:
                path.chmod(file_mode & 0o700)
                log.warning("%s had mode %04o: now %04o", path, file_mode, file_mode & 0o700)
