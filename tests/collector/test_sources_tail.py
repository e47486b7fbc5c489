"""FileTail: rotation (rename, copy-truncate), restarts from a checkpoint, partial lines, new
files, bad lines. Real files in tmp_path; `rotate_wait=0` so that no test sleeps."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

from collector.sources.base import Source
from collector.sources.tail import FileTail
from detection.event import Event

_NUMBER = re.compile(r"line (\d+)")


def numbers(events: list[Event]) -> list[int]:
    out = []
    for event in events:
        match = _NUMBER.search(str(event.fields["message"]))
        assert match, event.fields
        out.append(int(match.group(1)))
    return out


def write(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    with path.open("ab") as fh:
        fh.write(data)


def new_tail(patterns: list[str], state: dict[str, Any] | None = None, **kw: Any) -> FileTail:
    kw.setdefault("rotate_wait", 0)
    tail = FileTail(patterns, **kw)
    if state is not None:
        tail.restore(json.loads(json.dumps(state)))  # as the core persists it
    return tail


def test_is_a_source(tmp_path: Path) -> None:
    tail = FileTail([str(tmp_path / "*.log")])
    assert isinstance(tail, Source)
    assert tail.name == f"tail:{tmp_path}/*.log"
    assert tail.stats()["lag_seconds"] is None  # nothing known before the first poll
    tail.close()


def test_syslog_json_and_plain_lines_parsed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(
        log,
        "<34>1 2024-05-01T10:00:00Z pacs sshd 42 - - Failed password for root\n"
        "May  1 10:00:01 pacs sudo: alice : TTY=pts/0 ; USER=root ; COMMAND=/bin/sh\n"
        '{"@timestamp": "2024-05-01T10:00:02Z", "event": {"action": "login"}}\n'
        "just some text\n",
    )
    tail = new_tail([str(log)])
    events = tail.poll()
    assert len(events) == 4
    first, second, third, fourth = events
    assert first.fields["log"]["syslog"]["appname"] == "sshd"
    assert first.fields["host"] == {"hostname": "pacs"}
    assert first.timestamp.isoformat() == "2024-05-01T10:00:00+00:00"
    assert first.source == str(log)
    assert first.fields["log"]["offset"] == 0
    assert second.fields["process"]["name"] == "sudo"
    assert second.fields["COMMAND"] == "/bin/sh"
    assert third.fields["event"] == {"action": "login"}
    assert third.timestamp.isoformat() == "2024-05-01T10:00:02+00:00"
    assert fourth.fields["message"] == "just some text"
    assert tail.stats()["read"] == 4
    assert tail.stats()["lag_seconds"] == 0.0
    tail.close()


def test_partial_line_held_until_completed(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\nline ")
    tail = new_tail([str(log)])
    assert numbers(tail.poll()) == [1]
    assert tail.poll() == []
    state = tail.checkpoint()
    tail.close()
    write(log, "2 done")
    tail = new_tail([str(log)], state)  # a restart in the middle of the line
    assert tail.poll() == []
    write(log, "\nline 3\n")
    assert numbers(tail.poll()) == [2, 3]
    tail.close()


def test_rotation_by_rename_while_writing(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\nline 2\n")
    tail = new_tail([str(log)])
    assert numbers(tail.poll()) == [1, 2]
    write(log, "line 3\n")
    log.rename(tmp_path / "app.log.1")  # the writer still has the old file open...
    write(tmp_path / "app.log.1", "line 4\n")  # ...and writes once more before reopening
    write(log, "line 5\n")
    assert numbers(tail.poll()) == [3, 4, 5]
    write(log, "line 6\n")
    assert numbers(tail.poll()) == [6]
    assert tail.stats()["files"] == 1  # the rotated file was closed once read to its end
    assert tail.stats()["rotations"] == 1
    tail.close()


def test_rotated_file_kept_open_while_it_may_grow(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\n")
    tail = FileTail([str(log)], rotate_wait=3600)
    assert numbers(tail.poll()) == [1]
    log.rename(tmp_path / "app.log.1")
    write(log, "line 3\n")
    assert numbers(tail.poll()) == [3]
    write(tmp_path / "app.log.1", "line 2\n")  # a late write to the old file is not lost
    assert numbers(tail.poll()) == [2]
    assert tail.stats()["files"] == 2
    tail.close()


def test_rotation_by_copy_truncate(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "".join(f"line {n}\n" for n in range(1, 11)))
    tail = new_tail([str(log)])
    assert numbers(tail.poll()) == list(range(1, 11))
    shutil.copy(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    write(log, "line 11\n")
    assert numbers(tail.poll()) == [11]
    assert tail.stats()["truncations"] == 1
    # The copy-truncate rewrote the file past the old offset before the poll: the first
    # bytes changed, which says it is another content.
    write(log, "".join(f"line {n}\n" for n in range(12, 40)))
    assert numbers(tail.poll()) == list(range(12, 40))
    shutil.copy(log, tmp_path / "app.log.1")
    with log.open("r+b") as fh:
        fh.truncate(0)
        fh.write(b"".join(f"line {n}\n".encode() for n in range(40, 90)))
    assert numbers(tail.poll()) == list(range(40, 90))
    tail.close()


def test_copy_matched_by_the_patterns_resumes_where_the_original_was_left(
    tmp_path: Path,
) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\nline 2\n")
    tail = new_tail([str(tmp_path / "app.log*")])
    assert numbers(tail.poll()) == [1, 2]
    write(log, "line 3\n")  # written after the last poll, before the rotation
    shutil.copy(log, tmp_path / "app.log.1")
    os.truncate(log, 0)
    write(log, "line 4\n")
    assert sorted(numbers(tail.poll())) == [3, 4]  # line 3 from the copy, once
    tail.close()


def test_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """N numbered lines, written in random pieces with rename rotations interleaved, polled by
    tails restarted from the last checkpoint: every line exactly once."""
    rng = random.Random(4)
    log = tmp_path / "app.log"
    total = 3000
    text = "".join(f"<13>May  1 10:00:00 host app: line {n}\n" for n in range(1, total + 1))
    data = text.encode()
    seen: list[int] = []
    state: dict[str, Any] | None = None
    tail = new_tail([str(log)], read_chunk=4096, max_bytes=64 * 1024)
    written, rotations = 0, 0
    just_rotated = True  # the first file is not seen yet either
    while written < len(data) or tail.stats()["lag_seconds"]:
        if written < len(data):
            piece = rng.randint(1, 3000)
            write(log, data[written : written + piece])  # pieces cut lines anywhere
            written = min(written + piece, len(data))
        action = rng.random()
        # No second rotation before a poll saw the new file: with only `app.log` followed,
        # a file rotated away before it was ever seen cannot be found (nor by `tail -F`).
        if action < 0.15 and not just_rotated:
            end = data.find(b"\n", written - 1) + 1  # writers rotate between lines
            write(log, data[written:end])
            written = end
            rotations += 1
            log.rename(tmp_path / f"app.log.{rotations}")
        elif 0.15 <= action < 0.35:
            tail.close()  # a restart: what was polled since the checkpoint comes again...
            tail = new_tail([str(log)], state, read_chunk=4096, max_bytes=64 * 1024)
        just_rotated = action < 0.15 and not just_rotated
        events = tail.poll()
        state = tail.checkpoint()  # ...but the core persists this after spooling each poll
        seen += numbers(events)
    seen += numbers(tail.poll())
    assert rotations > 3
    assert seen == list(range(1, total + 1))
    assert tail.stats()["skipped"] == 0
    tail.close()


def test_restart_after_rotation_reads_the_rest_of_the_renamed_file(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\n")
    tail = new_tail([str(log)])
    assert numbers(tail.poll()) == [1]
    state = tail.checkpoint()
    tail.close()
    # While the agent is stopped: more lines, a rotation, a new file.
    write(log, "line 2\n")
    log.rename(tmp_path / "app.log-20240501")
    write(log, "line 3\n")
    tail = new_tail([str(log)], state)
    assert numbers(tail.poll()) == [2, 3]
    assert numbers(tail.poll()) == []
    tail.close()


def test_reused_inode_noticed_by_fingerprint(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1 of the old file\n")
    tail = new_tail([str(log)])
    assert numbers(tail.poll()) == [1]
    state = tail.checkpoint()
    tail.close()
    # Same inode, other content (what a deleted file's reused inode looks like): a file of
    # the same length or longer must still be read from its start.
    with log.open("r+b") as fh:
        fh.write(b"line 7 of the new file, longer\n")
    tail = new_tail([str(log)], state)
    assert numbers(tail.poll()) == [7]
    tail.close()


def test_glob_picks_up_new_files(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("line 1\n")
    tail = new_tail([str(tmp_path / "*.log")])
    assert numbers(tail.poll()) == [1]
    (tmp_path / "b.log").write_text("line 2\n")
    (tmp_path / "c.txt").write_text("line 99\n")  # not matched
    (tmp_path / "d.log.gz").write_bytes(b"\x1f\x8b\x08\x00")
    assert numbers(tail.poll()) == [2]
    sub = tmp_path / "sub"
    sub.mkdir()
    write(sub / "e.log", "line 3\n")
    assert numbers(tail.poll()) == []
    tail.close()
    deep = new_tail([str(tmp_path / "**" / "e.log")])
    assert numbers(deep.poll()) == [3]
    deep.close()


def test_gzip_rotations_are_not_followed(tmp_path: Path) -> None:
    (tmp_path / "app.log.2.gz").write_bytes(b"\x1f\x8b\x08\x00garbage\n")
    tail = new_tail([str(tmp_path / "app.log*")])
    assert tail.poll() == []
    assert tail.stats()["skipped"] == 0
    tail.close()


def test_binary_garbage_lines_counted(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    rng = random.Random(1)
    garbage = bytes(rng.randrange(256) for _ in range(400)).replace(b"\n", b"")
    write(log, b"line 1\n" + garbage + b"\nline 2\n\x00\x01\x02\x03\n")
    write(log, "line 3 caf\xe9 in Latin-1\n".encode("latin-1"))
    tail = new_tail([str(log)])
    events = tail.poll()
    assert numbers(events) == [1, 2, 3]
    assert "\ufffd" in events[2].fields["message"]  # kept, as `vigie scan` reads it
    stats = tail.stats()
    assert stats["skipped"] == 2
    assert stats["read"] == 3
    assert "binary data" in stats["errors"][0]
    tail.close()


def test_over_long_line_dropped_and_counted(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, "line 1\n" + "x" * 5000)
    tail = new_tail([str(log)], max_line_bytes=1000, read_chunk=512)
    assert numbers(tail.poll()) == [1]
    state = tail.checkpoint()
    tail.close()
    write(log, "y" * 3000 + "\nline 2\n")
    tail = new_tail([str(log)], state, max_line_bytes=1000, read_chunk=512)
    assert numbers(tail.poll()) == [2]
    assert tail.stats()["skipped"] == 0  # counted once, by the tail that met it
    tail.close()


def test_json_parser_counts_bad_lines(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write(log, '{"message": "line 1"}\n{not json\n[1, 2]\nplain\n{"message": "line 2"}\n')
    tail = new_tail([str(log)], parser="json")
    assert numbers(tail.poll()) == [1, 2]
    assert tail.stats()["skipped"] == 3
    tail.close()


def test_reading_is_bounded_per_poll(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write(log, "".join(f"line {n}\n" for n in range(1, 20001)))
    tail = new_tail([str(log)], max_bytes=32 * 1024)
    first = tail.poll()
    assert 0 < len(first) < 20000
    assert tail.stats()["lag_seconds"] is not None
    seen = numbers(first)
    while events := tail.poll():
        seen += numbers(events)
    assert seen == list(range(1, 20001))
    tail.close()


def test_bad_checkpoint_entries_are_counted(tmp_path: Path) -> None:
    tail = new_tail([str(tmp_path / "*.log")])
    tail.restore(
        {
            "files": [
                {"path": "x"},
                {
                    "path": str(tmp_path / "gone.log"),
                    "dev": 1,
                    "ino": 2,
                    "fp_len": 0,
                    "fp": "",
                    "offset": 5,
                },
            ]
        }
    )
    assert tail.stats()["missing_on_restore"] == 2
    assert tail.poll() == []
    tail.close()


def _writer(folder: Path, total: int, rotate_every: int, how: str) -> None:
    """Write numbered lines as an application would (O_APPEND), rotating as it goes."""
    log = folder / "app.log"
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    rotations = 0
    for n in range(1, total + 1):
        os.write(fd, f"<13>May  1 10:00:00 host app: line {n}\n".encode())
        if n % rotate_every == 0:
            rotations += 1
            if how == "rename":  # logrotate's default; the application reopens its log
                log.rename(folder / f"app.log.{rotations}")
                os.close(fd)
                fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
            else:  # copytruncate: the application keeps its descriptor
                shutil.copyfile(log, folder / f"app.log.{rotations}")
                os.truncate(log, 0)
    os.close(fd)


def _follow_while_writing(tmp_path: Path, how: str) -> list[int]:
    import threading

    total = 20000
    writer = threading.Thread(target=_writer, args=(tmp_path, total, 1700, how))
    patterns = [str(tmp_path / "app.log*")]
    # A little wait before closing a file that left the patterns: a listing that raced with a
    # rename may miss it for one poll, while the writer may be half-way through a line.
    options: dict[str, Any] = {"read_chunk": 8192, "max_bytes": 32 * 1024, "rotate_wait": 0.5}
    tail = new_tail(patterns, **options)
    seen: list[int] = []
    polls = 0
    writer.start()
    while True:
        done = not writer.is_alive()  # before the poll: then the poll sees all of it
        events = tail.poll()
        seen += numbers(events)
        state = tail.checkpoint()
        if done and not events and tail.stats()["lag_seconds"] == 0.0:
            break
        polls += 1
        if polls % 7 == 0:  # restarts from the checkpoint while the writer goes on
            tail.close()
            tail = new_tail(patterns, state, **options)
    writer.join()
    tail.close()
    return seen


def test_rename_rotation_while_writing_with_restarts(tmp_path: Path) -> None:
    seen = _follow_while_writing(tmp_path, "rename")
    assert sorted(seen) == list(range(1, 20001))  # each line once, none lost


def test_copy_truncate_while_writing_loses_nothing(tmp_path: Path) -> None:
    seen = _follow_while_writing(tmp_path, "copytruncate")
    # Every line is in the live file or in a copy the patterns match: none is lost, and a copy
    # seen before its original was truncated is not read a second time.
    assert sorted(seen) == list(range(1, 20001))
