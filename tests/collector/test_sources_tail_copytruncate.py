"""FileTail and copy-truncate with a glob that also matches the copies (`app.log*`): every
line handed out exactly once, whatever a poll sees of the rotation.

A real writer thread appends numbered lines (O_APPEND, one write per line) while a real
rotation runs as `logrotate copytruncate` does: older copies renamed one step up, a copy made
in chunks (with sleeps: slower than a poll) while the writer goes on, then the original
truncated. The only lines allowed to be missing are those copy-truncate itself loses: the lines
in the original after the copy's end at the moment of the truncation (read from the file
itself just before truncating it). Those may be seen once (a poll read them in between) or not
at all; every other line exactly once.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from collector.sources.tail import FileTail
from detection.event import Event

_NUMBER = re.compile(rb"line (\d+)")
_LINE = "<13>May  1 10:00:00 host app: line {}\n"


class Writer(threading.Thread):
    """Numbered lines, one `write` each, under a lock the rotation uses to know exactly which
    lines a copy or a truncation caught (the lock never delays the tail)."""

    def __init__(self, log: Path) -> None:
        super().__init__(daemon=True)
        self.fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.lock = threading.Lock()
        self.written = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for _ in range(20):
                with self.lock:
                    self.written += 1
                    os.write(self.fd, _LINE.format(self.written).encode())
            time.sleep(0.001)
        os.close(self.fd)

    def wait_for(self, lines: int) -> None:
        target = self.written + lines
        while self.written < target:
            time.sleep(0.001)


def copy_truncate(
    writer: Writer,
    log: Path,
    keep: int,
    *,
    chunk: int,
    on_chunk: Callable[[], None] = lambda: None,
    between: Callable[[], None] = lambda: None,
) -> set[int]:
    """One rotation; returns the numbers of the lines copy-truncate lost (see the docstring)."""
    for n in range(keep - 1, 0, -1):  # app.log.1 -> app.log.2 ...: renames keep the inodes
        older = log.with_name(f"{log.name}.{n}")
        if older.exists():
            older.rename(log.with_name(f"{log.name}.{n + 1}"))
    source = os.open(log, os.O_RDONLY)
    copied = 0
    try:
        with log.with_name(f"{log.name}.1").open("wb") as copy:
            while True:
                with writer.lock:  # whole lines: the writer is not half-way through one
                    data = os.pread(source, chunk, copied)
                if not data:
                    break
                copy.write(data)
                copy.flush()
                copied += len(data)
                on_chunk()
                time.sleep(0.002)
        between()
        with writer.lock:
            lost = os.pread(source, 1 << 24, copied)
            os.truncate(log, 0)
    finally:
        os.close(source)
    return {int(n) for n in _NUMBER.findall(lost)}


def drain(tail: FileTail, seen: list[int]) -> None:
    for _ in range(1000):
        events = tail.poll()
        seen += numbers(events)
        if not events and tail.stats()["lag_seconds"] == 0.0:
            return
    raise AssertionError("the tail did not catch up")


def numbers(events: list[Event]) -> list[int]:
    found = []
    for event in events:
        match = _NUMBER.search(str(event.fields["message"]).encode())
        assert match, event.fields
        found.append(int(match.group(1)))
    return found


def check_exactly_once(seen: list[int], written: int, lost: set[int]) -> None:
    counts = collections.Counter(seen)
    twice = sorted(n for n, c in counts.items() if c > 1)
    assert not twice, f"{len(twice)} line(s) handed out more than once, e.g. {twice[:10]}"
    missing = set(range(1, written + 1)) - set(counts)
    assert missing <= lost, (
        f"lines missing that copy-truncate did not lose: {sorted(missing - lost)[:10]}"
    )
    assert set(counts) <= set(range(1, written + 1))


def _tail(folder: Path) -> FileTail:
    return FileTail([str(folder / "app.log*")], rotate_wait=0.05, read_chunk=8192)


# When the tail polls, relative to the rotation: while the copy grows (after each chunk), once
# the copy is complete but before the truncation, only after the truncation, and while lines
# are written between the copy's end and the truncation (some then lost by copy-truncate).
TIMINGS = ["while_copying", "copy_complete", "after_truncate", "lines_between"]


@pytest.mark.slow
@pytest.mark.parametrize("timing", TIMINGS)
def test_copy_seen_at_any_point_of_the_rotation(tmp_path: Path, timing: str) -> None:
    log = tmp_path / "app.log"
    writer = Writer(log)
    tail = _tail(tmp_path)
    seen: list[int] = []
    lost: set[int] = set()

    def poll() -> None:
        seen.extend(numbers(tail.poll()))

    def between() -> None:
        if timing == "copy_complete":
            poll()
        elif timing == "lines_between":
            writer.wait_for(200)
            poll()  # read from the original: handed out once, not again from the copy
            writer.wait_for(200)  # not read before the truncation: lost by copy-truncate

    writer.start()
    try:
        for _ in range(4):
            writer.wait_for(1500)
            poll()
            lost |= copy_truncate(
                writer,
                log,
                keep=3,
                chunk=8192,
                on_chunk=poll if timing == "while_copying" else lambda: None,
                between=between,
            )
            if timing != "lines_between":
                poll()
    finally:
        writer.stop.set()
        writer.join()
    drain(tail, seen)
    tail.close()
    if timing == "lines_between":
        assert len(lost) >= 150  # the losses the test names did happen
    check_exactly_once(seen, writer.written, lost)
    assert len(seen) >= writer.written - len(lost)


@pytest.mark.parametrize(("poll_every", "chunk"), [(0.001, 4096), (0.03, 65536), (0.2, 2048)])
def test_free_running_poller_and_rotations(tmp_path: Path, poll_every: float, chunk: int) -> None:
    """A poller thread on its own clock against the rotations: copies seen growing, complete
    or after the truncation, as it falls; restarts from the checkpoint in between."""
    log = tmp_path / "app.log"
    writer = Writer(log)
    seen: list[int] = []
    done = threading.Event()
    holder = [_tail(tmp_path)]

    def poller() -> None:
        polls = 0
        while not done.is_set():
            seen.extend(numbers(holder[0].poll()))
            polls += 1
            if polls % 5 == 0:  # a restart of the agent resumes from the checkpoint
                state = holder[0].checkpoint()
                holder[0].close()
                holder[0] = _tail(tmp_path)
                holder[0].restore(state)
            time.sleep(poll_every)

    thread = threading.Thread(target=poller)
    lost: set[int] = set()
    writer.start()
    thread.start()
    try:
        for _ in range(4):
            writer.wait_for(1200)
            lost |= copy_truncate(writer, log, keep=3, chunk=chunk)
    finally:
        writer.stop.set()
        writer.join()
        done.set()
        thread.join()
    drain(holder[0], seen)
    holder[0].close()
    check_exactly_once(seen, writer.written, lost)


def test_a_look_alike_that_is_no_copy_is_read_whole(tmp_path: Path) -> None:
    """A new file that starts like a followed one (the same header) but goes on otherwise is
    not taken for its copy: all of it is read."""
    header = "".join(f"# header {n:04d} of the export, the same in every file\n" for n in range(40))
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(header + "".join(_LINE.format(n) for n in range(1, 201)))
    tail = FileTail([str(tmp_path / "*.log")], rotate_wait=0)
    assert numbers([e for e in tail.poll() if "line" in str(e.fields["message"])]) == list(
        range(1, 201)
    )
    second.write_text(header + "".join(_LINE.format(n) for n in range(1001, 1051)))
    got = [e for e in tail.poll() if "line" in str(e.fields["message"])]
    assert numbers(got) == list(range(1001, 1051))
    # Starting alike up to the lines read so far, then growing apart: read whole once it does.
    third = tmp_path / "c.log"
    third.write_text(header)
    tail.poll()
    with third.open("a") as fh:
        fh.write("".join(_LINE.format(n) for n in range(2001, 2301)))
    got = []
    for _ in range(3):
        got += [e for e in tail.poll() if "line" in str(e.fields["message"])]
    assert numbers(got) == list(range(2001, 2301))
    tail.close()


def test_a_tiny_file_like_the_start_of_another_is_not_taken_for_its_copy(tmp_path: Path) -> None:
    """Under MIN_COPY_BYTES alike, a new file is read whole: a short line shared by chance
    (here a whole first line) never makes the tail skip another file's own lines."""
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text("ok\n")
    tail = FileTail([str(tmp_path / "*.log")], rotate_wait=0)
    assert [e.fields["message"] for e in tail.poll()] == ["ok"]
    second.write_text("ok\n" + "".join(_LINE.format(n) for n in range(1, 4)))
    got = tail.poll()
    assert [e.fields["message"] for e in got][0] == "ok"
    assert numbers(got[1:]) == [1, 2, 3]
    with first.open("a") as fh:
        fh.write(_LINE.format(10))
    assert numbers(tail.poll()) == [10]
    tail.close()


def test_copies_of_a_file_never_truncated_are_not_read_and_not_kept_open(
    tmp_path: Path,
) -> None:
    """`logrotate copy` (no truncation), then the copy compressed away: the copy's content is
    read from the original only, and the copy is closed once gone."""
    log = tmp_path / "app.log"
    log.write_text("".join(_LINE.format(n) for n in range(1, 101)))
    tail = FileTail([str(tmp_path / "app.log*")], rotate_wait=0)
    assert numbers(tail.poll()) == list(range(1, 101))
    for rotation in range(3):
        copy = tmp_path / "app.log.1"
        copy.write_bytes(log.read_bytes())
        with log.open("a") as fh:
            fh.write(
                "".join(
                    _LINE.format(n) for n in range(1000 * (rotation + 1), 1000 * (rotation + 1) + 5)
                )
            )
        assert numbers(tail.poll()) == list(range(1000 * (rotation + 1), 1000 * (rotation + 1) + 5))
        assert tail.stats()["files"] == 2
        copy.unlink()  # compressed to app.log.1.gz, say
        assert tail.poll() == []
        assert tail.poll() == []
        assert tail.stats()["files"] == 1
    tail.close()
