"""YARA over an establishment's folders: new and changed files scanned once, not again after
a restart, a share full of files taken a little at a time, a full pass on schedule and when
new rules arrive."""

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


def test_new_rules_start_a_full_pass_and_withdrawn_ones_do_not(tmp_path: Path) -> None:
    share, state, extra = tmp_path / "partage", tmp_path / "state", tmp_path / "bundle"
    shutil.copytree(SAMPLES, share)
    extra.mkdir()
    (extra / "alert.yar").write_text(
        'rule Alert_Marker { strings: $a = "marqueur-alerte-42" condition: $a }'
    )
    (share / "note.txt").write_text("rien à signaler")
    scanner = _scanner(share, state, cpu_share=1.0)
    _until_idle(scanner)
    files = len(list(share.iterdir()))
    assert scanner.stats()["scanned"] == files

    # A bundle brings a rule: every file is scanned again with it, at once.
    (share / "note.txt").write_text("marqueur-alerte-42")
    with_alert = load_yara_rules([REPO / "rules" / "yara", extra])
    assert scanner.use_rules(with_alert) is True
    found = _until_idle(scanner)
    assert "note.txt" in found
    assert scanner.stats()["scanned"] == 2 * files
    assert scanner.stats()["passes"] == 1

    # A restart with the same rules starts no pass; with the rule withdrawn, none either.
    again = FolderScanner([share], with_alert, state, rewalk_seconds=0, cpu_share=1.0)
    assert _until_idle(again) == []
    assert again.stats()["passes"] == 0
    assert again.use_rules(load_yara_rules([REPO / "rules" / "yara"])) is False
    assert _until_idle(again) == []
    assert again.stats()["scanned"] == 0

    # Rules that arrived while the agent was stopped: the pass starts at the restart.
    restarted = FolderScanner([share], with_alert, state, rewalk_seconds=0, cpu_share=1.0)
    assert restarted.stats()["passes"] == 1
    assert "note.txt" in _until_idle(restarted)
