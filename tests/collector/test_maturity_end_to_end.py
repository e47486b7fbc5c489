"""Maturity from real captures, end to end over HTTP: `vigie agent run` reads a clinic's capture
dropped in its folder, delivers the network metadata to the real service, an admin runs the
`maturity` job, and the establishment reads its scores.

- The Pitié's capture has bad hygiene (cli/hygiene_traffic.py): SMBv1, TLS 1.0 on an internal
  server reached from inside and on one reached from the Internet (a second internal server in
  TLS 1.2), remote desktop reached from two Internet addresses (three established sessions),
  HL7 in clear to an Internet address. EXP-01, EXP-02, HYG-02 and EXP-03 fail, HYG-03 is
  partial at exactly one weak server out of two, each with a summary naming what was seen and a
  link to the events behind it, which the establishment follows over HTTP; the level is 1.
  The invented patient's name in the HL7 message reaches neither the service nor the agent's
  spool.
- Bordeaux's capture holds the same services done right (SMB2/3, TLS 1.2 and 1.3, RDP from
  inside only, refused or unanswered from the Internet, HL7 between internal hosts): the same
  five controls pass.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.events.sqlite_store import SQLiteEventStore
from cli import hygiene_traffic as h
from collector.netmeta import extract
from tests.api.conftest import Service
from tests.api.test_agents import new_token
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world
from tests.collector.test_agent_delivery import wait_for

VIGIE = Path(sys.executable).parent / "vigie"
CONTROLS = ("EXP-01", "EXP-02", "HYG-02", "EXP-03", "HYG-03")
# The invented patient (PID-5) of the HL7 admission, and its identifier (PID-3).
PATIENT_DATA = (b"TESTPATIENT", b"CAMILLE", b"TP-0001")


@dataclass
class Site:
    finess: str
    folder: Path
    capture: Path
    records: int  # what `vigie netmeta` gives for the capture: the events to expect
    agent: subprocess.Popen[bytes] | None = None


def _site(
    service: Service, admin: str, finess: str, folder: Path, write: Callable[[Path, float], int]
) -> Site:
    """An enrolled agent (`vigie agent enroll`) whose configuration reads captures dropped in
    its folder, and the capture it will find there (ten minutes old)."""
    folder.mkdir()
    token = new_token(service, admin, finess)["token"]
    credential = folder / "agent.json"
    done = subprocess.run(
        [VIGIE, "agent", "enroll", "--server", service.url, "--token", token]
        + ["--hostname", f"sonde-{finess}", "--config", str(credential)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    captures = folder / "captures"
    captures.mkdir()
    (folder / "agent.toml").write_text(
        f'state_dir = "{folder / "state"}"\ncredentials = "{credential}"\n'
        "[delivery]\nheartbeat_seconds = 1\npoll_seconds = 0.05\nmax_backoff_seconds = 1\n"
        f'[[sources]]\nkind = "pcap"\nfolder = "{captures}"\n'
    )
    capture = captures / "span-0001.pcap"
    write(capture, time.time() - 600)
    return Site(finess, folder, capture, len(list(extract([capture]))))


def _stored(service: Service, finess: str) -> list[dict[str, Any]]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        return store.search_events(establishment=finess, limit=100_000)
    finally:
        store.close()


def _maturity(service: Service, token: str, finess: str) -> dict[str, Any]:
    with service.client(token) as client:
        answer = client.get(f"/establishments/{finess}/maturity")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _linked(service: Service, token: str, link: str) -> list[dict[str, Any]]:
    """The documents behind an evidence link, read over HTTP as the establishment."""
    with service.client(token) as client:
        answer = client.get(link)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["missing"] == []
    return [e["document"] for e in body["events"]]


def _evidence(control: dict[str, Any]) -> dict[str, Any]:
    (found,) = [e for e in control["evidence"] if e["kind"] == "automatic"]
    return dict(found)


@pytest.mark.slow  # a capture is read once it has not changed for 5 s
def test_bad_hygiene_fails_the_network_controls_and_good_hygiene_passes_them(
    service: Service, tmp_path: Path
) -> None:
    tokens = setup_world(service)
    admin = tokens["admin"]
    with service.client(admin) as client:
        made = client.post(
            "/users",
            json={
                "username": "it_bordeaux",
                "password": PASSWORD,
                "role": "establishment",
                "establishment": BORDEAUX,
            },
        )
        assert made.status_code == 201, made.text
    tokens["it_bordeaux"] = service.login("it_bordeaux", PASSWORD)
    bad = _site(service, admin, PITIE, tmp_path / "pitie", h.write_bad_hygiene)
    good = _site(service, admin, BORDEAUX, tmp_path / "bordeaux", h.write_good_hygiene)
    assert all(p in bad.capture.read_bytes() for p in PATIENT_DATA)  # in the capture itself

    for site in (bad, good):
        site.agent = subprocess.Popen(
            [VIGIE, "agent", "run", "--config", str(site.folder / "agent.toml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    try:
        wait_for(
            lambda: all(len(_stored(service, s.finess)) >= s.records for s in (bad, good)),
            timeout=120,
        )
    finally:
        for site in (bad, good):
            assert site.agent is not None
            site.agent.send_signal(signal.SIGTERM)
        for site in (bad, good):
            assert site.agent is not None
            site.agent.wait(timeout=60)
    assert [len(_stored(service, s.finess)) for s in (bad, good)] == [bad.records, good.records]

    # No patient data left the capture: not in the agents' state (spool, checkpoints), not in
    # the service's files (its database too, on SQLite) or its event store; the HL7 exchange
    # itself did arrive, as message headers.
    stored = _stored(service, PITIE)
    hl7 = [d for d in stored if d.get("_path") == "hl7"]
    assert sorted((d["message_type"], d["trigger_event"]) for d in hl7) == [
        ("ACK", "A01"),
        ("ADT", "A01"),
    ]
    text = json.dumps(stored).encode()
    left = [f for f in tmp_path.rglob("*") if f.is_file() and f.suffix != ".pcap"]
    assert any(f.name.endswith(".db") for f in left)
    for name in PATIENT_DATA:
        assert name not in text
        assert not [f for f in left if name in f.read_bytes()], name

    with service.client(admin) as client:
        run = client.post("/jobs/maturity/run")
    assert run.status_code == 200, run.text

    # The Pitié: what it reads as itself.
    pitie = _maturity(service, tokens["it_pitie"], PITIE)
    controls = {c["id"]: c for c in pitie["controls"]}
    assert pitie["level"] == 1  # critical controls fail
    assert {c: (controls[c]["status"], controls[c]["score"]) for c in CONTROLS} == {
        "EXP-01": ("fail", 0.0),
        "EXP-02": ("fail", 0.0),
        "HYG-02": ("fail", 0.0),
        "EXP-03": ("fail", 0.0),
        "HYG-03": ("partial", 0.5),  # one weak internal server out of two
    }
    evidence = {c: _evidence(controls[c]) for c in CONTROLS}
    for c in CONTROLS:
        assert evidence[c]["link"].startswith(f"/establishments/{PITIE}/events?ids="), c
        assert evidence[c]["link"].split("=", 1)[1].split(",") == evidence[c]["samples"], c

    rdp = evidence["EXP-01"]
    assert "3 connexions RDP entrantes établies depuis Internet" in rdp["summary"]
    assert "(2 adresses publiques)" in rdp["summary"]
    assert rdp["counts"] == {"rdp": 3}
    sessions = _linked(service, tokens["it_pitie"], rdp["link"])
    assert sorted(
        (d["_path"], d["id.orig_h"], d["id.resp_h"], d["id.resp_p"]) for d in sessions
    ) == [
        ("conn", h.RDP_CLIENTS[0], h.BAD["rdp"], 3389),
        ("conn", h.RDP_CLIENTS[0], h.BAD["rdp"], 3389),
        ("conn", h.RDP_CLIENTS[1], h.BAD["rdp"], 3389),
    ]
    assert {(d["conn_state"], d["service"]) for d in sessions} == {("SF", "rdp")}

    health = evidence["EXP-02"]
    assert "2 messages HL7 en clair avec un pair Internet (1 adresse publique)" in health["summary"]
    assert health["counts"] == {"hl7": 2}
    messages = _linked(service, tokens["it_pitie"], health["link"])
    assert sorted((d["message_type"], d["id.resp_h"], d["id.resp_p"]) for d in messages) == [
        ("ACK", h.HL7_PLATFORM, 2575),
        ("ADT", h.HL7_PLATFORM, 2575),
    ]
    assert all(p not in json.dumps(messages).encode() for p in PATIENT_DATA)

    smb = evidence["HYG-02"]
    assert f"1 serveur(s) SMB sur 1 parlent SMBv1 (ex. {h.BAD['files']})" in smb["summary"]
    assert smb["counts"] == {"servers": 1, "smbv1": 1}
    (negotiate,) = _linked(service, tokens["it_pitie"], smb["link"])
    assert (negotiate["_path"], negotiate["version"], negotiate["id.resp_h"]) == (
        "smb",
        "1",
        h.BAD["files"],
    )

    exposed = evidence["EXP-03"]
    assert (
        f"1 serveur(s) TLS exposés sur 1 acceptent une version inférieure à TLS 1.2 "
        f"(ex. {h.BAD['webmail']}:443)" in exposed["summary"]
    )
    assert exposed["counts"] == {"servers": 1, "weak": 1}
    (hello,) = _linked(service, tokens["it_pitie"], exposed["link"])
    assert (hello["_path"], hello["version"], hello["id.orig_h"], hello["id.resp_h"]) == (
        "ssl",
        "TLSv10",
        h.TLS_CLIENT,
        h.BAD["webmail"],
    )

    internal = evidence["HYG-03"]
    assert (
        f"1 serveur(s) TLS internes sur 2 acceptent une version inférieure à TLS 1.2 "
        f"(ex. {h.BAD['intranet']}:443)" in internal["summary"]
    )
    assert internal["counts"] == {"servers": 2, "weak": 1}
    (hello,) = _linked(service, tokens["it_pitie"], internal["link"])
    assert (hello["version"], hello["id.orig_h"], hello["id.resp_h"]) == (
        "TLSv10",
        h.BAD["client"],
        h.BAD["intranet"],
    )
    fixes = {f["control"]: f for f in pitie["fixes"]}
    assert set(CONTROLS) <= set(fixes)
    assert fixes["EXP-01"]["evidence_link"] == rdp["link"]

    # Bordeaux: the same services done right.
    bordeaux = _maturity(service, tokens["it_bordeaux"], BORDEAUX)
    controls = {c["id"]: c for c in bordeaux["controls"]}
    assert {c: (controls[c]["status"], controls[c]["score"]) for c in CONTROLS} == {
        c: ("pass", 1.0) for c in CONTROLS
    }
    summaries = {c: _evidence(controls[c])["summary"] for c in CONTROLS}
    assert summaries["EXP-01"] == (
        "Aucun flux RDP, SMB, WinRM, VNC, Telnet entrantes établies depuis Internet sur 30 jours."
    )
    assert (
        summaries["EXP-02"] == "Aucun flux HL7, DICOM en clair avec un pair Internet sur 30 jours."
    )
    assert summaries["HYG-02"] == "2 serveurs SMB, aucun en SMBv1."
    assert summaries["EXP-03"] == "1 serveur TLS exposés, tous en TLS 1.2 ou plus."
    assert summaries["HYG-03"] == "1 serveur TLS internes, tous en TLS 1.2 ou plus."
    assert not set(CONTROLS) & {f["control"] for f in bordeaux["fixes"]}
