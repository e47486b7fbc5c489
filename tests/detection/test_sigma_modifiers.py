"""Value modifiers and condition forms, each against events that must and must not match."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest

from tests.detection.sigma_helpers import engine_for, matches

CASES = [
    # (detection block, matching event, non-matching event)
    (
        "sel: {Image: 'C:\\Windows\\cmd.exe'}",
        {"Image": "c:\\windows\\CMD.EXE"},
        {"Image": "C:\\Windows\\cmd.exe.bak"},
    ),
    (
        "sel: {Image|endswith: '\\cmd.exe'}",
        {"Image": "C:\\X\\CMD.exe"},
        {"Image": "C:\\X\\cmd.exe2"},
    ),
    (
        "sel: {Image|startswith: 'C:\\Temp\\'}",
        {"Image": "c:\\temp\\a.exe"},
        {"Image": "D:\\c:\\temp\\a.exe"},
    ),
    (
        "sel: {CommandLine|contains: 'vssadmin'}",
        {"CommandLine": "x VSSADMIN delete"},
        {"CommandLine": "vss admin"},
    ),
    (
        "sel: {CommandLine|contains|all: ['delete', 'shadows']}",
        {"CommandLine": "delete shadows /all"},
        {"CommandLine": "delete /all"},
    ),
    ("sel: {CommandLine: 'a*b?d'}", {"CommandLine": "AxxxBcD"}, {"CommandLine": "abd"}),
    ("sel: {CommandLine: 'lit\\*eral'}", {"CommandLine": "lit*eral"}, {"CommandLine": "litXeral"}),
    ("sel: {CommandLine|cased: 'AbC'}", {"CommandLine": "AbC"}, {"CommandLine": "abc"}),
    (
        "sel: {CommandLine|contains|cased: 'Mimi'}",
        {"CommandLine": "x Mimikatz"},
        {"CommandLine": "mimikatz"},
    ),
    ("sel: {CommandLine|re: 'ab+c'}", {"CommandLine": "xxabbbc"}, {"CommandLine": "ABBC"}),
    ("sel: {CommandLine|re|i: 'ab+c'}", {"CommandLine": "ABBC"}, {"CommandLine": "ac"}),
    ("sel: {CommandLine|re|m: '^b$'}", {"CommandLine": "a\nb\nc"}, {"CommandLine": "a b c"}),
    ("sel: {CommandLine|re|s: 'a.b'}", {"CommandLine": "a\nb"}, {"CommandLine": "a\n\nb"}),
    ("sel: {IpAddress|cidr: '10.0.0.0/8'}", {"IpAddress": "10.1.2.3"}, {"IpAddress": "11.1.2.3"}),
    ("sel: {IpAddress|cidr: 'fe80::/10'}", {"IpAddress": "fe80::1"}, {"IpAddress": "not an ip"}),
    (
        "sel: {CommandLine|base64: 'evil'}",
        {"CommandLine": base64.b64encode(b"evil").decode()},
        {"CommandLine": "evil"},
    ),
    (
        "sel: {CommandLine|base64offset|contains: 'http://'}",
        {"CommandLine": "-e " + base64.b64encode(b"xxhttp://a").decode()},
        {"CommandLine": "http://"},
    ),
    (
        "sel: {CommandLine|wide|base64offset|contains: 'ping'}",
        {"CommandLine": base64.b64encode("a ping".encode("utf-16-le")).decode()},
        {"CommandLine": base64.b64encode(b"a ping").decode()},
    ),
    (
        "sel: {CommandLine|windash|contains: ' -enc '}",
        {"CommandLine": "powershell /enc AAA"},
        {"CommandLine": "powershell enc AAA"},
    ),
    (
        "sel: {CommandLine|windash|contains: ' -enc '}",
        {"CommandLine": "powershell \u2013enc AAA"},
        {"CommandLine": "powershell _enc AAA"},
    ),
    ("sel: {ParentUser|exists: true}", {"ParentUser": "x"}, {"User": "x"}),
    ("sel: {ParentUser|exists: false}", {"User": "x"}, {"ParentUser": ""}),
    ("sel: {ParentUser: null}", {"User": "x"}, {"ParentUser": "y"}),
    ("sel: {Count|gt: 5}", {"Count": "6"}, {"Count": 5}),
    ("sel: {Count|gte: 5}", {"Count": 5}, {"Count": "4"}),
    ("sel: {Count|lt: 5}", {"Count": 4.5}, {"Count": "nope"}),
    ("sel: {Count|lte: 5}", {"Count": 5}, {"Count": 6}),
    ("sel: {EventID: 4625}", {"EventID": "4625"}, {"EventID": 46250}),
    ("sel: {LogonType: '3'}", {"LogonType": 3}, {"LogonType": 10}),
    ("sel: {Enabled: true}", {"Enabled": "True"}, {"Enabled": False}),
    (
        "sel: {TargetUser|fieldref: SubjectUser}",
        {"TargetUser": "Bob", "SubjectUser": "bob"},
        {"TargetUser": "bob", "SubjectUser": "alice"},
    ),
    (
        "sel: {Image|fieldref|endswith: OriginalFileName}",
        {"Image": "C:\\a\\x.exe", "OriginalFileName": "X.EXE"},
        {"Image": "C:\\a\\y.exe", "OriginalFileName": "x.exe"},
    ),
    ("sel: {Group|expand: '%Admins%'}", {"Group": "anything"}, {"Other": "anything"}),
    ("sel: {Tags: 'b'}", {"Tags": ["a", "B"]}, {"Tags": ["a", "c"]}),
    ("sel: {process.name: 'sshd'}", {"process": {"name": "sshd"}}, {"process": {"name": "ssh"}}),
    (
        "sel: {ThreatName|endswith: 'EICAR'}",
        {"Threat Name": "Virus:EICAR"},
        {"Threat Name": "Virus"},
    ),
    (
        "sel: ['Failed password', 'Invalid user']",
        {"message": "sshd: Failed password for root"},
        {"message": "Accepted password"},
    ),
    (
        "sel: {Image|endswith: ['\\a.exe', '\\b.exe', '\\c*d.exe']}",
        {"Image": "X\\CxxD.EXE"},
        {"Image": "X\\c.exe"},
    ),
    (
        "sel: {Image: ['a.exe', 'b*', '*c', '*mid*', 'x?y']}",
        {"Image": "zzMIDzz"},
        {"Image": "za.exe"},
    ),
    ("sel: {Image: ['a.exe', 'b*', '*c', '*mid*', 'x?y']}", {"Image": "XqY"}, {"Image": "xqqy"}),
    (
        "sel: {Image|contains: ['one', 'two.three', 'f(o)ur']}",
        {"Image": "aF(O)URb"},
        {"Image": "twoxthree"},
    ),
    ("sel: {Count|neq: 5}", {"Count": "6"}, {"Count": 5}),
    ("sel: {User|neq: 'admin'}", {"User": "bob"}, {"User": "ADMIN"}),
    (
        "sel: {TargetUser|fieldref|neq: SubjectUser}",
        {"TargetUser": "a", "SubjectUser": "b"},
        {"TargetUser": "a", "SubjectUser": "A"},
    ),
    (
        "sel: {LogonTime|hour: 3}",
        {"LogonTime": "2026-11-20T03:59:00Z"},
        {"LogonTime": "2026-11-20T04:00:00Z"},
    ),
    (
        "sel: {LogonTime|minute: 7}",
        {"LogonTime": "2026-11-20 10:07:30"},
        {"LogonTime": "2026-11-20 10:08:00"},
    ),
    (
        "sel: {LogonTime|day: 20}",
        {"LogonTime": "2026-11-20T10:00:00Z"},
        {"LogonTime": "2026-11-21T10:00:00Z"},
    ),
    (
        "sel: {LogonTime|week: 47}",
        {"LogonTime": "2026-11-20T10:00:00Z"},
        {"LogonTime": "2026-12-20T10:00:00Z"},
    ),
    ("sel: {LogonTime|month: 11}", {"LogonTime": 1795176000}, {"LogonTime": "not a date"}),
    (
        "sel: {LogonTime|year: 2026}",
        {"LogonTime": "2026-01-01T00:00:00Z"},
        {"LogonTime": "2025-12-31T23:00:00Z"},
    ),
    # pySigma's `utf16` puts a byte-order mark in front (written as UTF-8: EF BB BF), then LE.
    (
        "sel: {CommandLine|utf16|base64offset|contains: 'ping'}",
        {
            "CommandLine": "x"
            + base64.b64encode(b"\xef\xbb\xbf" + "ping".encode("utf-16le")).decode()
        },
        {"CommandLine": base64.b64encode(b"ping").decode()},
    ),
    (
        "sel: {CommandLine|utf16be|base64: 'ping'}",
        {"CommandLine": base64.b64encode("ping".encode("utf-16-be")).decode()},
        {"CommandLine": base64.b64encode("ping".encode("utf-16-le")).decode()},
    ),
    (
        "sel: {CommandLine|re|ignorecase|multiline|dotall: '^b.c$'}",
        {"CommandLine": "a\nB\nC"},
        {"CommandLine": "a b c"},
    ),
    ("sel: {a: 1}\nfilter: {b: 2}", {"a": 1, "b": 3}, {"a": 1, "b": 2}),
]


def test_every_pysigma_modifier_is_exercised() -> None:
    from sigma.modifiers import modifier_mapping

    used = {m for detection, _, _ in CASES for m in re.findall(r"\|(\w+)", detection)}
    assert set(modifier_mapping) - used == set()


@pytest.mark.parametrize(("detection", "hit", "miss"), CASES)
def test_modifier(tmp_path: Path, detection: str, hit: dict, miss: dict) -> None:
    condition = "sel and not filter" if "filter:" in detection else "sel"
    block = "detection:\n  " + detection.replace("\n", "\n  ") + f"\n  condition: {condition}\n"
    engine = engine_for(tmp_path, block)
    assert matches(engine, hit)
    assert not matches(engine, miss)


CONDITIONS = """detection:
  sel_a: {A: 1}
  sel_b: {B: 1}
  other: {C: 1}
  condition: {condition}
"""


@pytest.mark.parametrize(
    ("condition", "fields", "expected"),
    [
        ("1 of sel_*", {"B": 1}, True),
        ("1 of sel_*", {"C": 1}, False),
        ("all of sel_*", {"A": 1, "B": 1}, True),
        ("all of sel_*", {"A": 1}, False),
        ("1 of them", {"C": 1}, True),
        ("all of them", {"A": 1, "B": 1}, False),
        ("all of them", {"A": 1, "B": 1, "C": 1}, True),
        ("sel_a and not (sel_b or other)", {"A": 1, "C": 1}, False),
        ("sel_a and not (sel_b or other)", {"A": 1}, True),
        ("not sel_a", {"B": 1}, True),
        ("(sel_a or sel_b) and other", {"B": 1, "C": 1}, True),
    ],
)
def test_condition(tmp_path: Path, condition: str, fields: dict, expected: bool) -> None:
    engine = engine_for(tmp_path, CONDITIONS.replace("{condition}", condition))
    assert matches(engine, fields) is expected


def test_multiple_conditions_are_alternatives(tmp_path: Path) -> None:
    engine = engine_for(
        tmp_path, "detection:\n  a: {A: 1}\n  b: {B: 1}\n  condition:\n    - a\n    - b\n"
    )
    assert matches(engine, {"B": 1})
    assert not matches(engine, {"C": 1})
