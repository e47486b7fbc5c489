"""Log-source dispatch: an event only meets the rules that can apply to it."""

from __future__ import annotations

from pathlib import Path

from detection.sigma import SigmaEngine, load_sigma_rules
from detection.sources.windows import event_from_rendering
from tests.detection.sigma_helpers import event

RULES = """title: cmd spawned
id: 0c000000-0000-4000-8000-000000000001
status: test
logsource: {product: windows, category: process_creation}
detection:
  sel: {Image|endswith: '\\\\cmd.exe'}
  condition: sel
level: low
---
title: security any cmd
id: 0c000000-0000-4000-8000-000000000002
status: test
logsource: {product: windows, service: security}
detection:
  sel: {EventID: 4625, TargetUserName: admin}
  condition: sel
level: low
---
title: zeek dicom
id: 0c000000-0000-4000-8000-000000000003
status: test
logsource: {product: zeek, service: conn}
detection:
  sel: {id.resp_p: 104}
  condition: sel
level: low
---
title: linux keyword
id: 0c000000-0000-4000-8000-000000000004
status: test
logsource: {product: linux}
detection:
  kw: ['cmd.exe']
  condition: kw
level: low
---
title: system log cleared
id: 0c000000-0000-4000-8000-000000000005
status: test
logsource: {product: windows, service: system}
detection:
  sel: {EventID: 104}
  condition: sel
level: low
"""


def win(channel: str, event_id: int, data: dict, user_data: dict | None = None) -> dict:
    doc: dict = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "x"}},
                "EventID": event_id,
                "Channel": channel,
                "Computer": "h",
                "TimeCreated": {"#attributes": {"SystemTime": "2026-11-20T10:00:00Z"}},
            },
            "EventData": data,
        }
    }
    if user_data:
        doc["Event"]["UserData"] = user_data
    return doc


def fired(tmp_path: Path, doc: dict) -> list[str]:
    path = tmp_path / "rules.yml"
    path.write_text(RULES, encoding="utf-8")
    engine = SigmaEngine(load_sigma_rules([path]))
    ev = event_from_rendering(doc) if "Event" in doc else event(doc)
    return [d.rule_title for d in engine.match(ev)]


def test_windows_events_go_by_channel_and_event_id(tmp_path: Path) -> None:
    sysmon = "Microsoft-Windows-Sysmon/Operational"
    assert fired(tmp_path, win(sysmon, 1, {"Image": "C:\\x\\cmd.exe"})) == ["cmd spawned"]
    # Same field, another Sysmon event: not a process creation.
    assert fired(tmp_path, win(sysmon, 11, {"Image": "C:\\x\\cmd.exe"})) == []
    assert fired(tmp_path, win("Security", 4625, {"TargetUserName": "admin"})) == [
        "security any cmd"
    ]
    assert fired(tmp_path, win("Security", 4624, {"TargetUserName": "admin"})) == []


def test_security_4688_is_a_process_creation(tmp_path: Path) -> None:
    doc = win("Security", 4688, {"NewProcessName": "C:\\Windows\\System32\\cmd.exe"})
    assert fired(tmp_path, doc) == ["cmd spawned"]
    ev = event_from_rendering(doc)
    assert ev.sigma_view()["NewProcessName"] == ev.sigma_view()["Image"]


def test_user_data_channel_does_not_reroute(tmp_path: Path) -> None:
    doc = win("System", 104, {}, {"LogFileCleared": {"Channel": "Security"}})
    assert fired(tmp_path, doc) == ["system log cleared"]


def test_zeek_records_meet_zeek_rules_only(tmp_path: Path) -> None:
    conn = {"_path": "conn", "id.orig_h": "203.0.113.9", "id.resp_p": 104, "note": "cmd.exe"}
    assert fired(tmp_path, conn) == ["zeek dicom"]
    dns = {**conn, "_path": "dns"}
    assert fired(tmp_path, dns) == []
    # Zeek's endpoint names without a log name: the rules of any Zeek log.
    unnamed = {"id.orig_h": "203.0.113.9", "id.resp_p": 104, "note": "cmd.exe"}
    assert fired(tmp_path, unnamed) == ["zeek dicom"]
    # Not a Zeek record: every rule but Windows' and Zeek's.
    plain = {"message": "cmd.exe", "id.resp_p": 104}
    assert sorted(fired(tmp_path, plain)) == ["linux keyword"]
