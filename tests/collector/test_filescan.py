"""YARA over an establishment's folders: new and changed files scanned once, not again after
a restart, a share full of files taken a little at a time, a full pass on schedule."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from collector.filescan import FolderScanner
from detection.yara import load_yara_rules

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "files"


def _scanner(share: Path, state: Path, **options: float) -> FolderScanner:
    rules = load_yara_rules([REPO / "rules" / "yara"])
    return FolderScanner([share], rules, state, rewalk_seconds=0, **options)  # type: ignore[arg-type]


def _until_idle(scanner: FolderScanner, polls: int = 200) -> list[str]:
    found: list[str] = []
    for _ in range(polls):
        found += [Path(d["file"]).name for d in scanner.poll()]
        if not scanner.stats()["queued"]:
            break
        time.sleep(0.01)
    return found


def test_new_and_changed_files_are_scanned_once(tmp_path: Path) -> None:
    share, state = tmp_path / "partage", tmp_path / "state"
    shutil.copytree(SAMPLES, share)
    scanner = _scanner(share, state, cpu_share=1.0)
    first = _until_idle(scanner)
    # The samples are the rules' own cases: every positive hits, no negative does.
    assert set(first) == {p.name for p in SAMPLES.glob("*.positive.txt")}
    assert scanner.stats()["scanned"] == len(list(SAMPLES.iterdir()))
    assert _until_idle(scanner) == []  # nothing new: nothing scanned
    scanned = scanner.stats()["scanned"]

    # A restart remembers what was scanned.
    again = _scanner(share, state, cpu_share=1.0)
    assert _until_idle(again) == []
    assert again.stats()["scanned"] == 0

    # A harmless file turned into a ransom note is seen and scanned.
    negative = next(share.glob("ransomnote_generic.negative.txt"))
    negative.write_bytes((SAMPLES / "ransomnote_generic.positive.txt").read_bytes())
    found = _until_idle(again)
    assert found
    assert again.stats()["scanned"] == 1
    assert scanner.stats()["scanned"] == scanned


def test_a_small_cpu_share_takes_a_full_share_a_little_at_a_time(tmp_path: Path) -> None:
    share, state = tmp_path / "partage", tmp_path / "state"
    share.mkdir()
    for n in range(300):
        (share / f"doc-{n:03}.txt").write_text("compte rendu de réunion " * 200)
    scanner = _scanner(share, state, cpu_share=0.01)
    scanner.poll()
    assert scanner.stats()["queued"] > 0  # not all at once
    polls = 0
    while scanner.stats()["queued"] and polls < 5000:
        scanner.poll()
        polls += 1
        time.sleep(0.005)
    assert scanner.stats()["scanned"] == 300
    assert polls > 1


def test_a_full_pass_scans_everything_again(tmp_path: Path) -> None:
    share, state = tmp_path / "partage", tmp_path / "state"
    shutil.copytree(SAMPLES, share)
    scanner = _scanner(share, state, cpu_share=1.0, full_pass_hours=0)
    _until_idle(scanner)
    before = scanner.stats()["scanned"]
    _until_idle(scanner)
    assert scanner.stats()["scanned"] - before >= len(list(SAMPLES.iterdir()))
