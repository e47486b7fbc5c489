"""The extraction loop: captures read frame by frame, decoded, accounted for, records out.

Apart from `extract` (the package's `__init__`) so that it is compiled with the modules it
drives (setup.py): each frame then goes from the reader to the decoder as a C call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from collector.netmeta.decode import Decoder
from collector.netmeta.errors import CaptureFormatError
from collector.netmeta.flows import ConnTracker
from collector.netmeta.reader import Frame, ReadStats, read_capture
from collector.netmeta.records import Record


def run(
    paths: Iterable[Path], read: ReadStats, decoder: Decoder, tracker: ConnTracker
) -> Iterator[Record]:
    """The records of the captures, as their connections end, then of those left at the end.

    Captures are read in the order given as one stream, and a file that is not a capture is
    counted in `read.files_failed` and skipped."""
    done = tracker.done  # records of the connections ended, in order
    for path in paths:
        try:
            # Through iter(): mypyc (1.20) fails to compile a loop straight over a generator
            # of another compiled module.
            frames: Iterator[Frame] = iter(read_capture(path, read))
            for ts, linktype, data, wire in frames:
                decoder.frame(ts, linktype, data, wire)
                while done:
                    yield done.popleft()
        except (CaptureFormatError, OSError) as exc:
            read.files_failed += 1
            read.errors.append(str(exc))
            continue
        read.files_read += 1
    tracker.flush()
    while done:
        yield done.popleft()
