"""Event Viewer CSV exports (English and French): Windows events as the EVTX reader makes them,
and SigmaHQ's Windows rules that need only EventID, provider and channel firing on them."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from detection.sources.eventviewer import provider_name, read_event_viewer
from detection.sources.read import read_events
from detection.sources.sniff import sniff
from detection.sources.stats import ReadStats
from tests.conftest import corpus_path

# As Event Viewer writes them: the message is a sixth, unnamed column, quoted, over lines.
SECURITY = """Keywords,Date and Time,Source,Event ID,Task Category
Audit Success,3/19/2019 11:35:07 PM,Eventlog,1102,Log clear,"The audit log was cleared.
Subject:
	Security ID:	S-1-5-21-1-2-3-500
	Account Name:	admin-dsi"
Audit Success,11/20/2026 10:02:11 AM,Microsoft Windows security auditing.,4720,\
User Account Management,"A user account was created.
Subject:
	Account Name:	admin-dsi
New Account:
	Account Name:	support2"
Audit Failure,11/20/2026 10:03:00 AM,Microsoft-Windows-Security-Auditing,4625,Logon,\
"An account failed to log on."
Audit Success,11/20/2026 10:04:00 AM,Microsoft-Windows-Security-Auditing,four,Logon,\
"not a number"
Audit Success,11/20/2026 10:05:00 AM
"""
SYSTEME = """Niveau,Date et heure,Source,ID de l'événement,Catégorie de la tâche
Erreur,20/11/2026 10:15:02,Service Control Manager,7023,Aucun,\
"Le service Spouleur d'impression s'est arrêté avec l'erreur suivante :
Accès refusé."
Information,20/11/2026 10:16:00,Kernel-General,16,Aucun,"La ruche a été accédée."
"""


@pytest.fixture
def exports(tmp_path: Path) -> tuple[Path, Path]:
    security = tmp_path / "Security.csv"
    security.write_text(SECURITY, encoding="utf-8-sig", newline="\r\n")
    # A French export in the ANSI code page, under a name that names no channel.
    systeme = tmp_path / "export-serveur-pacs.csv"
    systeme.write_bytes(SYSTEME.replace("\n", "\r\n").encode("cp1252"))
    return security, systeme


def test_recognised_by_their_header(exports: tuple[Path, Path]) -> None:
    assert [sniff(path) for path in exports] == ["eventviewer", "eventviewer"]


def test_security_export_as_windows_events(exports: tuple[Path, Path]) -> None:
    stats = ReadStats()
    events = list(read_events(exports[0], stats))
    assert [e.sigma_view()["EventID"] for e in events] == [1102, 4720, 4625]
    cleared, created, failed = events
    assert cleared.timestamp == datetime(2019, 3, 19, 23, 35, 7, tzinfo=UTC)
    assert cleared.sigma_view() == {
        "EventID": 1102,
        "Provider_Name": "Microsoft-Windows-Eventlog",
        "Channel": "Security",
        "Task": "Log clear",
    }
    assert cleared.fields["message"].startswith("The audit log was cleared.\n")
    assert "support2" in created.fields["message"]
    assert created.sigma_view()["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert created.sigma_view()["Level"] == 0
    assert created.sigma_view()["Keywords"] == "0x8020000000000000"
    assert failed.sigma_view()["Keywords"] == "0x8010000000000000"
    assert failed.fields["event"] == {
        "kind": "event",
        "module": "windows",
        "code": "4625",
        "provider": "Microsoft-Windows-Security-Auditing",
    }
    assert stats.records_read == 3
    assert [(e.record, e.reason) for e in stats.errors] == [
        (12, "event ID is not a number: 'four'"),
        (13, "2 columns where an Event Viewer export has 6"),
    ]


def test_french_ansi_export_channel_from_the_provider(exports: tuple[Path, Path]) -> None:
    events = list(read_event_viewer(exports[1], ReadStats()))
    stopped, hive = (e.sigma_view() for e in events)
    assert stopped == {
        "EventID": 7023,
        "Provider_Name": "Service Control Manager",
        "Channel": "System",
        "Level": 2,
    }
    assert events[0].timestamp == datetime(2026, 11, 20, 10, 15, 2, tzinfo=UTC)
    assert "Accès refusé." in events[0].fields["message"]
    assert hive["Provider_Name"] == "Microsoft-Windows-Kernel-General"
    assert "Channel" not in hive  # not said by the export, not guessed


def test_provider_names_from_what_event_viewer_shows() -> None:
    assert provider_name("PowerShell (Microsoft-Windows-PowerShell)") == (
        "Microsoft-Windows-PowerShell"
    )
    assert provider_name("Sysmon") == "Microsoft-Windows-Sysmon"
    assert provider_name("Service Control Manager") == "Service Control Manager"
    assert provider_name("Microsoft-Windows-Kernel-Power") == "Microsoft-Windows-Kernel-Power"


@pytest.mark.corpus
def test_same_system_fields_as_the_evtx_of_the_same_event(exports: tuple[Path, Path]) -> None:
    """SigmaHQ's EVTX sample of a cleared Security log and its row as Event Viewer exports it."""
    evtx = corpus_path(
        "evtx", "attack-samples", "Defense Evasion", "DE_1102_security_log_cleared.evtx"
    )
    [from_evtx] = [e for e in read_events(evtx, ReadStats()) if e.sigma_view()["EventID"] == 1102]
    from_csv = next(iter(read_events(exports[0], ReadStats())))
    keys = ("EventID", "Provider_Name", "Channel")
    assert {k: from_csv.sigma_view()[k] for k in keys} == {
        k: from_evtx.sigma_view()[k] for k in keys
    }
    assert from_csv.timestamp == from_evtx.timestamp.replace(microsecond=0)


@pytest.mark.corpus
def test_vigie_scan_fires_sigmahq_windows_rules_on_exports(exports: tuple[Path, Path]) -> None:
    builtin = corpus_path("sigma", "rules", "windows", "builtin")
    rules = [
        builtin / "security" / "win_security_audit_log_cleared.yml",
        builtin / "security" / "win_security_user_creation.yml",
        builtin
        / "system"
        / "service_control_manager"
        / "win_system_service_terminated_error_generic.yml",
    ]
    command = [sys.executable, "-m", "cli.main", "scan", "--format", "jsonl"]
    for rule in rules:
        command += ["--sigma", str(rule)]
    result = subprocess.run(
        [*command, *map(str, exports)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    found = sorted(
        (d["rule_title"], d["event"]["winlog"]["event_id"])
        for d in map(json.loads, result.stdout.splitlines())
    )
    assert found == [
        ("Local User Creation", 4720),
        ("Security Eventlog Cleared", 1102),
        ("Windows Service Terminated With Error", 7023),
    ]
