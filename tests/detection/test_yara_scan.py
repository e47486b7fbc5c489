"""Scanning with YaraScanner: detections, per-file externals, limits, bad files, all cores."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detection.detection import StringMatch
from detection.yara import YaraRuleSet, YaraScanner, level_from_meta, load_yara_rules
from detection.yara.scan import SMALL_BATCH

RULES = r"""
rule ransom_note : ransomware note {
    meta:
        description = "Ransom note text"
        severity = "critical"
        author = "vigie"
    strings:
        $a = "YOUR FILES ARE ENCRYPTED"
        $b = { DE AD BE EF }
    condition:
        $a or $b
}
rule scored { meta: score = 75 strings: $s = "scored-marker" condition: $s }
rule plain { strings: $p = "plain-marker" condition: $p }
rule named_exe { condition: filename == "evil.exe" and extension == ".exe" }
rule pe_type { condition: filetype == "EXE" and filepath contains "bin" }
"""

# Nested loops over every byte pair of a 200 kB file: far longer than a one-second timeout.
SLOW_RULE = """
rule slow { condition: filesize == 200000 and for any i in (0..filesize) :
    (for any j in (0..filesize) : (uint8(i) == uint8(j) + 200)) }
"""

ENGINES = ["auto", "yara-python"]


def _rules(tmp_path: Path, engine: str, text: str = RULES) -> YaraRuleSet:
    path = tmp_path / f"rules-{engine}.yar"
    path.write_text(text)
    rules = load_yara_rules([path], engine=engine)  # type: ignore[arg-type]
    assert rules.errors == []
    return rules


@pytest.fixture(params=ENGINES)
def rules(request: pytest.FixtureRequest, tmp_path: Path) -> YaraRuleSet:
    return _rules(tmp_path, request.param)


def test_detection_carries_rule_tags_meta_strings(rules: YaraRuleSet) -> None:
    before = datetime.now(UTC)
    data = b"xx YOUR FILES ARE ENCRYPTED yy \xde\xad\xbe\xef YOUR FILES ARE ENCRYPTED"

    (hit,) = YaraScanner(rules).scan_bytes(data, name="/srv/share/README.txt")

    assert hit.engine == "yara"
    assert hit.rule_id == "ransom_note"
    assert hit.rule_title == "Ransom note text"
    assert hit.level == "critical"
    assert hit.tags == ("ransomware", "note")
    assert hit.meta == {
        "description": "Ransom note text",
        "severity": "critical",
        "author": "vigie",
    }
    assert hit.source == hit.file == "/srv/share/README.txt"
    assert before <= hit.timestamp <= datetime.now(UTC)
    assert set(hit.strings) == {
        StringMatch("$a", 3, 24),
        StringMatch("$a", 36, 24),
        StringMatch("$b", 31, 4),
    }
    out = hit.to_dict()
    assert out["strings"][0]["identifier"] in {"$a", "$b"}
    assert out["timestamp"].endswith("Z") or out["timestamp"].endswith("+00:00")


def test_level_from_score_and_default(rules: YaraRuleSet) -> None:
    scanner = YaraScanner(rules)
    (scored,) = scanner.scan_bytes(b"scored-marker", name="a")
    (plain,) = scanner.scan_bytes(b"plain-marker", name="b")
    assert (scored.level, scored.rule_title) == ("high", "scored")
    assert (plain.level, plain.rule_title) == ("medium", "plain")


@pytest.mark.parametrize(
    ("meta", "level"),
    [
        ({"severity": "HIGH"}, "high"),
        ({"severity": "info"}, "informational"),
        ({"level": "low"}, "low"),
        ({"score": 100}, "critical"),
        ({"score": 60}, "medium"),
        ({"score": "40"}, "low"),
        ({"score": 10}, "informational"),
        ({"severity": "whatever", "score": 75}, "high"),
        ({"score": True}, "medium"),
        ({}, "medium"),
    ],
)
def test_level_mapping(meta: dict[str, object], level: str) -> None:
    assert level_from_meta(meta) == level


def test_externals_set_per_file(rules: YaraRuleSet, tmp_path: Path) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "evil.exe").write_bytes(b"MZ\x90\x00 a windows program")
    (folder / "evil.txt").write_bytes(b"MZ\x90\x00 same bytes, other name")
    (folder / "good.exe").write_bytes(b"not a PE at all")

    scanner = YaraScanner(rules, workers=1)
    found = {(Path(d.file or "").name, d.rule_id) for d in scanner.scan_paths([folder])}

    assert found == {
        ("evil.exe", "named_exe"),
        ("evil.exe", "pe_type"),
        ("evil.txt", "pe_type"),
    }
    # A buffer gets the externals of the name it is given.
    assert [d.rule_id for d in scanner.scan_bytes(b"zz", name="/tmp/evil.exe")] == ["named_exe"]


def test_bad_files_counted_with_reasons_rest_scanned(rules: YaraRuleSet, tmp_path: Path) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "big.bin").write_bytes(b"plain-marker" + b"\0" * 5000)
    (folder / "note.txt").write_bytes(b"YOUR FILES ARE ENCRYPTED")
    (folder / "empty").write_bytes(b"")
    (folder / "dangling").symlink_to(folder / "gone")
    os.mkfifo(folder / "pipe")
    missing = tmp_path / "missing.bin"

    scanner = YaraScanner(rules, max_size=4096, workers=1)
    found = list(scanner.scan_paths([folder, missing]))

    assert [(Path(d.file or "").name, d.rule_id) for d in found] == [("note.txt", "ransom_note")]
    stats = scanner.stats
    assert stats.files_scanned == 2  # note.txt and the empty file
    assert stats.bytes_scanned == len(b"YOUR FILES ARE ENCRYPTED")
    assert stats.files_skipped == 4
    reasons = {Path(s.path).name: s.reason for s in stats.skipped}
    assert reasons["big.bin"].startswith("too big: 5012 bytes")
    assert reasons["dangling"].startswith("unreadable:")
    assert reasons["missing.bin"].startswith("unreadable:")
    assert reasons["pipe"] == "not a regular file"
    assert stats.skip_reasons() == {"too big": 1, "unreadable": 2, "not a regular file": 1}
    assert stats.rule_hits == {"ransom_note": 1}


# Run in a child process: as root it loads the rules, then becomes `nobody` (root reads every
# file whatever its mode) and scans its current folder, so nobody needs no way into the folders
# above it. As any other user, the modes alone make the files unreadable.
_SCAN_UNPRIVILEGED = """
import json, os, sys
from pathlib import Path
from detection.yara import YaraScanner, load_yara_rules

rules_file, engine, uid, gid = sys.argv[1:]
rules = load_yara_rules([Path(rules_file)], engine=engine)
assert not rules.errors, rules.errors
scanner = YaraScanner(rules, workers=1)
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
found = [(Path(d.file).name, d.rule_id) for d in scanner.scan_paths([Path(".")])]
stats = scanner.stats
skipped = {Path(s.path).name: s.reason for s in stats.skipped}
print(json.dumps({"uid": os.geteuid(), "found": found, "scanned": stats.files_scanned,
                  "skipped": skipped}))
"""


@pytest.mark.parametrize("engine", ENGINES)
def test_unreadable_file_and_folder_counted(tmp_path: Path, engine: str) -> None:
    rules_file = tmp_path / "rules.yar"
    rules_file.write_text(RULES)
    folder = tmp_path / "scan"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # whatever the umask: nobody lists it and reads what is left open
    (folder / "open.txt").write_bytes(b"plain-marker")
    (folder / "open.txt").chmod(0o644)
    (folder / "locked.bin").write_bytes(b"plain-marker")
    (folder / "locked.bin").chmod(0)
    (folder / "closed").mkdir()
    (folder / "closed" / "inside.txt").write_bytes(b"plain-marker")
    (folder / "closed").chmod(0)
    try:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    except KeyError:
        uid = gid = 65534  # root may take a uid that has no name
    try:
        child = subprocess.run(
            [sys.executable, "-c", _SCAN_UNPRIVILEGED, str(rules_file), engine, str(uid), str(gid)],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        (folder / "closed").chmod(0o755)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result["uid"] != 0
    assert result["found"] == [["open.txt", "plain"]]
    assert result["scanned"] == 1
    assert set(result["skipped"]) == {"locked.bin", "closed"}
    for reason in result["skipped"].values():
        assert reason.startswith("unreadable: Permission denied")


def test_buffer_too_big_is_skipped(rules: YaraRuleSet) -> None:
    scanner = YaraScanner(rules, max_size=10)
    assert scanner.scan_bytes(b"plain-marker", name="buf") == []
    assert scanner.stats.files_skipped == 1
    assert scanner.stats.skipped[0].reason.startswith("too big")


def _write_tree(folder: Path, count: int) -> set[tuple[str, str]]:
    """`count` files in nested folders, every third one a hit; the expected (file, rule)s."""
    expected = set()
    for i in range(count):
        sub = folder / f"d{i % 4}"
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"f{i:03}.dat"
        if i % 3 == 0:
            path.write_bytes(os.urandom(64) + b"plain-marker" + os.urandom(64))
            expected.add((str(path), "plain"))
        else:
            path.write_bytes(os.urandom(2000))
    return expected


@pytest.mark.parametrize("engine", ENGINES)
def test_parallel_scan_finds_what_one_worker_finds(tmp_path: Path, engine: str) -> None:
    rules = _rules(tmp_path, engine)
    expected = _write_tree(tmp_path / "tree", 6 * SMALL_BATCH)

    one = YaraScanner(rules, workers=1)
    two = YaraScanner(rules, workers=2)
    found_one = [(d.file, d.rule_id) for d in one.scan_paths([tmp_path / "tree"])]
    found_two = {(d.file, d.rule_id) for d in two.scan_paths([tmp_path / "tree"])}

    assert found_one == sorted(expected)  # one worker: walk order, which is sorted
    assert found_two == expected
    assert two.stats.files_scanned == one.stats.files_scanned == 6 * SMALL_BATCH
    assert two.stats.bytes_scanned == one.stats.bytes_scanned
    assert two.stats.rule_hits == one.stats.rule_hits == {"plain": len(expected)}


@pytest.mark.parametrize("engine", ENGINES)
def test_timeout_skips_the_slow_file_only(tmp_path: Path, engine: str) -> None:
    rules = _rules(tmp_path, engine, RULES + SLOW_RULE)
    slow = tmp_path / "slow.bin"
    slow.write_bytes(b"\x01" * 200_000)
    fast = tmp_path / "fast.txt"
    fast.write_bytes(b"plain-marker")

    scanner = YaraScanner(rules, timeout=1, workers=1)
    found = [(Path(d.file or "").name, d.rule_id) for d in scanner.scan_paths([slow, fast])]

    assert found == [("fast.txt", "plain")]
    assert [(Path(s.path).name, s.reason.split(":")[0]) for s in scanner.stats.skipped] == [
        ("slow.bin", "timeout")
    ]


def test_workers_time_out_after_this_process_scanned_with_yara_x(tmp_path: Path) -> None:
    """yara-x's timeout thread does not survive a fork: workers must start clean then."""
    rules = _rules(tmp_path, "auto", RULES + SLOW_RULE)
    assert rules.engine == "yara-x"
    scanner = YaraScanner(rules, timeout=1, workers=2)
    assert scanner.scan_bytes(b"plain-marker", name="warm-up")  # starts yara-x's timer here
    expected = _write_tree(tmp_path / "tree", 2 * SMALL_BATCH)
    (tmp_path / "tree" / "slow.bin").write_bytes(b"\x01" * 200_000)

    found = {(d.file, d.rule_id) for d in scanner.scan_paths([tmp_path / "tree"])}

    assert found == expected
    assert [Path(s.path).name for s in scanner.stats.skipped] == ["slow.bin"]


def test_other_threads_running_do_not_break_the_pool(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "auto")
    expected = _write_tree(tmp_path / "tree", 2 * SMALL_BATCH)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        found = {(d.file, d.rule_id) for d in YaraScanner(rules).scan_paths([tmp_path / "tree"])}
    finally:
        stop.set()
        other.join()
    assert found == expected


def test_bad_settings_rejected(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "auto")
    with pytest.raises(ValueError, match="timeout"):
        YaraScanner(rules, timeout=0)
    with pytest.raises(ValueError, match="max_size"):
        YaraScanner(rules, max_size=-1)


def test_meta_with_raw_bytes_stays_json_ready(tmp_path: Path) -> None:
    rules = _rules(tmp_path, "auto", r'rule m { meta: note = "caf\xe9" condition: true }')
    (hit,) = YaraScanner(rules).scan_bytes(b"", name="empty")
    assert isinstance(hit.meta["note"], str)
    assert hit.meta["note"].startswith("caf")
    assert json.dumps(hit.to_dict())
