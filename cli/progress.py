"""`vigie scan`'s progress line on a terminal, as Hayabusa and Zircolite show theirs.

    files 12/40  [=====>      ]  310.2/1024.0 MB  48,210 events/s  0:00:14 left

It is drawn on stderr, and only when stderr is a terminal: stdout carries the detections
(piped to a file or to jq, it must hold nothing else), and a log collected from stderr stays
free of redraws. rich draws it, redrawn in place and cleared at the end. The hunt calls
`update` as work gets done, in its own thread: no thread is started here, so that the hunt's
worker pools can still fork (YARA's pool forks only while the process has a single thread).
"""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import Any, TextIO

from detection.hunt import Hunt, HuntProgress

REFRESH_SECONDS = 0.1  # redraw at most this often


def wanted(stream: TextIO) -> bool:
    """Whether progress belongs on `stream`: a terminal that can redraw a line."""
    try:
        is_terminal = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        return False
    return is_terminal and os.environ.get("TERM") != "dumb"


class ScanProgress:
    """Shows a hunt's progress while the `with` block runs, on `stream`.

    `redirect_stdout`: detections written to stdout go through the display, above the line,
    instead of being drawn over (only when stdout is the same terminal).
    """

    def __init__(self, hunt: Hunt, stream: TextIO, *, redirect_stdout: bool) -> None:
        # rich is imported only when a terminal is there to draw on.
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._hunt = hunt
        self._progress = Progress(
            TextColumn("files {task.fields[files]}"),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rate]} events/s"),
            TimeRemainingColumn(),
            TextColumn("left"),
            console=Console(file=stream),
            auto_refresh=False,  # redrawn by `update`, from the hunt's thread
            transient=True,
            redirect_stdout=redirect_stdout,
            redirect_stderr=True,
        )
        self._task = self._progress.add_task("scan", total=None, files="0/?", rate="0")
        self._drawn = 0.0

    def __enter__(self) -> ScanProgress:
        self._progress.start()
        self._hunt.on_progress = self.update
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._hunt.on_progress = None
        self._progress.stop()

    def update(self, now: HuntProgress) -> None:
        fields: dict[str, Any] = {
            "files": f"{now.files_done}/{now.files_total}",
            # YARA alone reads no events: no rate rather than a rate of 0.
            "rate": "-"
            if self._hunt.sigma is None
            else f"{now.events / max(now.seconds, 1e-3):,.0f}",
        }
        self._progress.update(
            self._task, total=now.bytes_total or None, completed=now.bytes_done, **fields
        )
        clock = time.monotonic()
        if clock - self._drawn >= REFRESH_SECONDS or now.files_done == now.files_total:
            self._drawn = clock
            self._progress.refresh()
