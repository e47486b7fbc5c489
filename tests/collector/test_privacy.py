"""No patient data leaves the establishment: invented patients, carried by HL7 messages, DICOM
attributes and a configured field, appear in no event, no spool file, no request body, and
nowhere in what the national service stores."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import httpx
import pytest

from api.events.sqlite_store import SQLiteEventStore
from cli.main import main
from collector.config import AgentConfig
from collector.privacy import PrivacyFilter
from collector.runner import AgentRunner, build_sources
from tests.api.conftest import Service
from tests.collector.test_agent_delivery import enroll, start, wait_for

# Invented patients: none of these strings may leave the agent.
SECRETS = ("DUPONTEL", "JEANNETTE", "8801017512345", "MARTINAZ", "1956-03-14", "SECRET-NIP-77")
HL7 = (
    "MSH|^~\\&|LAB|CHU-DEMO|DPI|CHU-DEMO|20261120100000||ORU^R01|MSG001|P|2.5\r"
    "PID|1||8801017512345^^^CHU-DEMO^PI||DUPONTEL^JEANNETTE||19800101|F\r"
    "PV1|1|I|CARDIO^101^1\r"
    "OBR|1||LAB123|GLU^Glucose"
)


def test_hl7_dicom_and_configured_fields_are_pseudonymised() -> None:
    keep = PrivacyFilter(b"a" * 32, ["user.full_name"])
    doc = {
        "message": "received " + HL7,
        "dicom": {"PatientName": "MARTINAZ^PAUL", "PatientBirthDate": "1956-03-14"},
        "user": {"full_name": "SECRET-NIP-77"},
        "hl7": {"message_type": "ORU^R01"},
    }
    cleaned = keep.clean(doc)
    text = json.dumps(cleaned)
    assert not [s for s in SECRETS if s in text]
    assert "MSH|^~\\\\&|LAB|CHU-DEMO" in text  # who sent what to whom stays
    assert cleaned["hl7"] == {"message_type": "ORU^R01"}
    assert cleaned["message"].count("pseudo:") == 2  # PID and PV1
    # The same patient gives the same token with the same key, another with another key.
    assert keep.clean(doc) == cleaned
    assert PrivacyFilter(b"b" * 32).clean(doc)["dicom"] != cleaned["dicom"]


@pytest.mark.parametrize(
    "doc",
    [
        {"message": "received " + HL7},
        {"event": {"items": [{"dicom": {"Patient Name": "DUPONTEL^JEANNETTE"}}]}},
        {"study": {"ethnic_group": "MARTINAZ", "other": 1}},
        {"x": {"patient_id": 8801017512345}},
    ],
)
def test_without_configured_fields_each_kind_alone_is_still_found(doc: dict[str, object]) -> None:
    """The walk is skipped for documents whose JSON cannot hold patient data: it must not be
    skipped for any of these."""
    cleaned = PrivacyFilter(b"a" * 32).clean(doc)
    assert "pseudo:" in json.dumps(cleaned)
    assert not [s for s in SECRETS if s in json.dumps(cleaned)]
    plain = {"message": "sshd[42]: Failed password for admin", "source": {"ip": "10.0.0.9"}}
    kept = PrivacyFilter(b"a" * 32).clean(plain)
    assert kept == plain
    assert kept is not plain


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_patient_data_in_spool_requests_or_service(service: Service, tmp_path: Path) -> None:
    credential_path, _ = enroll(service, tmp_path)
    log = tmp_path / "lab.log"
    lines = [f"<134>Nov 20 10:00:00 srv-labo hl7gw[7]: event number {n} {HL7}" for n in range(1, 4)]
    dicom = {
        "@timestamp": "2026-11-20T10:00:00Z",
        "message": "event number 4",
        "dicom": {"PatientName": "MARTINAZ^PAUL", "PatientID": "8801017512345"},
        "user": {"full_name": "SECRET-NIP-77", "birth": "1956-03-14"},
    }
    log.write_text("\n".join(lines) + "\n" + json.dumps(dicom) + "\n")
    config_text = (
        f'state_dir = "{tmp_path / "state"}"\ncredentials = "{credential_path}"\n'
        '[privacy]\nsensitive_fields = ["user.full_name", "user.birth"]\n'
        "[delivery]\nheartbeat_seconds = 1\npoll_seconds = 0.05\n"
        f'[[sources]]\nkind = "tail"\npaths = ["{log}"]\n'
    )
    (tmp_path / "agent.toml").write_text(config_text)
    config = AgentConfig.load(tmp_path / "agent.toml")
    runner = AgentRunner(config, build_sources(config), json.loads(credential_path.read_text()))
    bodies: list[bytes] = []
    heartbeats: list[int] = []  # how many bodies were recorded when each heartbeat went

    def record(request: httpx.Request) -> None:
        body = request.read()
        gzipped = request.headers.get("content-encoding") == "gzip"
        bodies.append(gzip.decompress(body) if gzipped else body)
        if request.url.path.endswith("/agents/heartbeat"):
            heartbeats.append(len(bodies))

    runner.client.event_hooks["request"].append(record)
    stop, thread = start(runner)
    try:
        wait_for(lambda: _stored(service) >= 4)
        # And a heartbeat after that: its sources' statistics and errors are checked too.
        stored_at = len(bodies)
        wait_for(lambda: bool(heartbeats) and heartbeats[-1] > stored_at)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert any(b"/ingest" in b or b"events" in b for b in bodies)
    places = {f"request body {n}": body for n, body in enumerate(bodies)}
    for folder in (tmp_path / "state", service.settings.data_dir):
        for path in folder.rglob("*"):
            if path.is_file() and "cache" not in path.parts:
                places[str(path)] = path.read_bytes()
    leaks = [
        (where, secret)
        for where, content in places.items()
        for secret in SECRETS
        if secret.encode() in content
    ]
    assert not leaks, leaks
    assert runner.privacy.pseudonymised >= 7  # 3 x (PID, PV1), 2 DICOM keys, 2 fields


def _stored(service: Service) -> int:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        return store.count("events")
    finally:
        store.close()


def test_scanned_file_paths_keep_the_configured_folder_only(tmp_path: Path) -> None:
    keep = PrivacyFilter(b"c" * 32)
    share = tmp_path / "partage"
    found = keep.path(str(share / "Patients" / "DUPONTEL Jeannette" / "CR_DUPONTEL.docx"), [share])
    assert found.startswith(str(share) + "/")
    assert found.endswith(".docx")
    assert "DUPONTEL" not in found
    assert "Jeannette" not in found
    assert "Patients" not in found  # any name below the folder may be a patient's
    assert keep.path(str(share / "a.txt"), [share]) == keep.path(str(share / "a.txt"), [share])
    outside = keep.path("/home/DUPONTEL/notes.txt", [share])
    assert "DUPONTEL" not in outside


def test_yara_detections_of_an_agent_carry_no_patient_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    share = tmp_path / "partage"
    folder = share / "DUPONTEL JEANNETTE"
    folder.mkdir(parents=True)
    samples = Path(__file__).resolve().parents[2] / "samples" / "files"
    (folder / "CR_DUPONTEL.txt").write_bytes(
        (samples / "ransomnote_generic.positive.txt").read_bytes()
    )
    (tmp_path / "agent.toml").write_text(
        f'state_dir = "{tmp_path / "state"}"\ncredentials = "{tmp_path / "none.json"}"\n'
        f'[files]\nfolders = ["{share}"]\ncpu_share = 1.0\n'
    )
    config = AgentConfig.load(tmp_path / "agent.toml")
    runner = AgentRunner(config, [], {"server": "http://127.0.0.1:9", "agent_key": "vga_x"})
    try:
        for _ in range(20):
            runner.collect()
            if runner.spool.stats().get("received"):
                break
        batch = runner.spool.next_batch(100)
    finally:
        runner.spool.close()
        runner.client.close()
    assert batch is not None
    assert batch.detections
    text = json.dumps(batch.detections)
    assert "DUPONTEL" not in text
    assert "JEANNETTE" not in text
    assert str(share) in text
    # On the agent's machine, the IT team finds the file behind the tokens, and the token of a
    # name it knows; nothing of it was stored beyond the key.
    hidden = next(str(v) for d in batch.detections for v in _values(d) if "pseudo:" in str(v))
    assert main(["agent", "reveal", "--config", str(tmp_path / "agent.toml"), hidden]) == 0
    out = capsys.readouterr().out
    assert str(folder / "CR_DUPONTEL.txt") in out
    assert str(folder) + "\n" in out
    assert main(["agent", "token", "--config", str(tmp_path / "agent.toml"), "CR_DUPONTEL"]) == 0
    assert capsys.readouterr().out.strip() in text
    unknown = "pseudo:" + "0" * 20
    assert main(["agent", "reveal", "--config", str(tmp_path / "agent.toml"), unknown]) == 1
    assert "not found" in capsys.readouterr().out


def _values(node: object) -> list[object]:
    if isinstance(node, dict):
        return [v for item in node.values() for v in _values(item)]
    if isinstance(node, list):
        return [v for item in node for v in _values(item)]
    return [node]
