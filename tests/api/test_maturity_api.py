"""Maturity scores over real HTTP: evidence from ingested events, the job, the contract, who
reads and writes what, declarations (profile, answers, proofs, reviews, exceptions), peers and
statistics, and the audit trail."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import BORDEAUX, PITIE, setup_world

PUBLIC = "81.2.69.160"  # an Internet address (not a documentation range)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def conn(orig: str, resp: str, port: int, state: str = "SF") -> dict[str, Any]:
    """A conn record as the agent ships it (collector/netmeta/records.py ConnRecord.ecs)."""
    return {
        "@timestamp": iso(datetime.now(UTC) - timedelta(minutes=30)),
        "event.dataset": "network.conn",
        "source.ip": orig,
        "source.port": 50123,
        "destination.ip": resp,
        "destination.port": port,
        "network.transport": "tcp",
        "zeek.conn.state": state,
    }


def smb(server: str, version: str) -> dict[str, Any]:
    doc = conn("10.1.0.20", server, 445)
    doc.update({"event.dataset": "network.smb", "smb.version": version})
    del doc["zeek.conn.state"]
    return doc


def bad_hygiene_batch() -> dict[str, Any]:
    events = [
        conn(PUBLIC, "10.1.2.3", 3389),  # RDP reached from the Internet
        conn(PUBLIC, "10.1.2.3", 3389, state="REJ"),  # refused: does not count
        smb("10.1.2.4", "1"),
        smb("10.1.2.5", "2.1"),
    ]
    return {
        "batch_id": "maturity-bad-1",
        "events": events,
        "event_ids": ["rdp-1", "rdp-refused", "smb-1", "smb-2"],
    }


def run_job(service: Service, admin: str) -> dict[str, Any]:
    with service.client(admin) as client:
        done = client.post("/jobs/maturity/run")
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "ok", done.json()
    return dict(done.json())


def maturity(service: Service, token: str, finess: str = PITIE, **params: str) -> Any:
    with service.client(token) as client:
        return client.get(f"/establishments/{finess}/maturity", params=params)


def controls_of(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in doc["controls"]}


@pytest.fixture
def world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    stored = post(service, key, bad_hygiene_batch())
    assert stored.status_code == 200, stored.text
    tokens["agent"] = key
    return tokens


def test_collected_evidence_fails_the_controls_and_names_what_was_seen(
    service: Service, world: dict[str, str]
) -> None:
    counts = run_job(service, world["admin"])["counts"]
    assert counts == {"establishments": 2, "snapshots": 2}
    answer = maturity(service, world["it_pitie"])
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    assert doc["finess"] == PITIE
    assert doc["framework"]["id"] == "vigie-care"
    assert doc["as_of"] == datetime.now(UTC).date().isoformat()
    assert 0 <= doc["score"] <= 100
    assert doc["level"] == 1  # EXP-01 and HYG-02 are critical and fail
    assert {d["id"] for d in doc["domains"]} == {
        "GOV", "RES", "SENS", "EXP", "AD", "BAK", "DET", "HYG"
    }  # fmt: skip
    controls = controls_of(doc)
    assert len(controls) == 40
    exposed = controls["EXP-01"]
    assert (exposed["status"], exposed["score"], exposed["critical"]) == ("fail", 0.0, True)
    assert exposed["refs"] == {"care": ["D1"], "anssi": ["23", "22"], "cis": ["4.4", "4.6"]}
    seen = exposed["evidence"][0]
    assert (
        "1 connexion RDP entrantes établies depuis Internet (1 adresse publique)"
        in (seen["summary"])
    )
    assert seen["link"] == f"/establishments/{PITIE}/events?ids={seen['samples'][0]}"
    assert seen["samples"][0].endswith("/rdp-1")  # the established one, not the refused
    assert exposed["explanation"].startswith("Non conforme : ")
    smbv1 = controls["HYG-02"]
    assert (smbv1["status"], smbv1["score"]) == ("partial", 0.5)  # 1 SMB server of 2
    assert "1 serveur(s) SMB sur 2 parlent SMBv1 (ex. 10.1.2.4)" in smbv1["evidence"][0]["summary"]
    # Windows logs never arrived: their controls have no evidence, and score nothing.
    assert controls["AD-03"]["status"] == "no_evidence"
    assert controls["AD-03"]["score"] == 0.0
    fixes = doc["fixes"]
    assert all(f["gain"] > 0 and f["remediation"] for f in fixes)
    # Best first: what unlocks a level, then points per unit of effort, then points.
    ranks = [(f["unlocks_level"] is None, -f["gain"] / f["effort"], -f["gain"]) for f in fixes]
    assert ranks == sorted(ranks)
    # The two critical failures unlock level 2 only together: neither does on its own.
    assert {f["control"]: f["unlocks_level"] for f in fixes}["EXP-01"] is None
    gains = {f["control"]: f["gain"] for f in fixes}
    assert gains["EXP-01"] == pytest.approx(100 * 0.15 * 5 / 21, abs=0.01)
    assert doc["percentile"]["group"] == "none"  # two establishments in all: no peers
    assert doc["percentile"]["value"] is None


def test_who_reads_and_who_writes(service: Service, world: dict[str, str]) -> None:
    run_job(service, world["admin"])
    for reader in ("it_pitie", "analyst", "inspector", "admin"):
        assert maturity(service, world[reader]).status_code == 200, reader
    # Another establishment's scores answer as absent ones; an agent reads none.
    assert maturity(service, world["it_pitie"], BORDEAUX).status_code == 404
    assert maturity(service, world["agent"]).status_code == 403
    profile = {"flags": {"has_hl7": False}, "reason": "pas d'interface HL7"}
    for writer in ("analyst", "inspector", "admin"):
        with service.client(world[writer]) as client:
            refused = client.put(f"/establishments/{PITIE}/maturity/profile", json=profile)
        assert refused.status_code == 403, writer
    with service.client(world["it_pitie"]) as client:
        other = client.put(f"/establishments/{BORDEAUX}/maturity/profile", json=profile)
        assert other.status_code == 404
        assert client.get("/maturity/stats").status_code == 403
        assert client.post(f"/establishments/{PITIE}/maturity/answers/GOV-03/review",
                           json={"review": "proven"}).status_code == 403  # fmt: skip
    with service.client(world["inspector"]) as client:
        trail = client.get("/audit", params={"limit": 1000}).json()
    reads = [(e["actor"], e["action"], e["target_kind"], e["target_id"]) for e in trail]
    assert ("inspector", "read", "maturity", PITIE) in reads
    assert ("it_pitie", "read", "maturity", PITIE) in reads
    assert any(
        a == "it_pitie" and k == "establishment" and t == BORDEAUX for a, _, k, t in reads
    )  # fmt: skip - the refused read of another's scores


def test_an_audited_profile_change_switches_applicability(
    service: Service, world: dict[str, str]
) -> None:
    run_job(service, world["admin"])
    assert controls_of(maturity(service, world["it_pitie"]).json())["EXP-02"]["status"] == "pass"
    profile = {
        "flags": {"has_hl7": False, "has_dicom": False},
        "sites": ["Pitié", "Salpêtrière"],
        "reason": "ni HL7 ni DICOM sur ce site",
    }
    with service.client(world["it_pitie"]) as client:
        put = client.put(f"/establishments/{PITIE}/maturity/profile", json=profile)
        assert put.status_code == 200, put.text
        bad = client.put(f"/establishments/{PITIE}/maturity/profile",
                         json={"flags": {"has_mri": True}, "reason": "essai"})  # fmt: skip
        assert bad.status_code == 422
        assert "unknown profile flag(s) has_mri" in bad.text
    run_job(service, world["admin"])
    doc = maturity(service, world["it_pitie"]).json()
    controls = controls_of(doc)
    assert controls["EXP-02"]["status"] == "na"
    assert "EXP-02" not in [f["control"] for f in doc["fixes"]]
    # Two sites declared, no agent on either: coverage is 0 of 2.
    assert controls["DET-01"]["status"] == "fail"
    assert "site(s) sans agent actif : Pitié, Salpêtrière" in controls["DET-01"]["explanation"]
    with service.client(world["inspector"]) as client:
        trail = client.get("/audit", params={"limit": 1000}).json()
        history = client.get(f"/establishments/{PITIE}/maturity/profile").json()
    declared = [e for e in trail if e["action"] == "declare"]
    assert len(declared) == 1
    assert "has_hl7" in declared[0]["detail"]
    assert "ni HL7 ni DICOM" in declared[0]["detail"]
    assert [p["flags"] for p in history] == [{"has_dicom": False, "has_hl7": False}]


def test_answers_with_proof_reviewed_by_the_cert(service: Service, world: dict[str, str]) -> None:
    base = f"/establishments/{PITIE}/maturity"
    tested = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()
    with service.client(world["it_pitie"]) as client:
        proof = client.post(
            f"{base}/proofs",
            params={"control": "BAK-02", "filename": "pv-restauration.pdf"},
            content=PDF,
            headers={"Content-Type": "application/pdf"},
        )
        assert proof.status_code == 201, proof.text
        assert proof.json()["size"] == len(PDF)
        fake = client.post(
            f"{base}/proofs",
            params={"control": "BAK-02", "filename": "pv.pdf"},
            content=b"\x89PNG\r\n\x1a\n....",
            headers={"Content-Type": "application/pdf"},
        )
        assert fake.status_code == 422
        assert "does not start as a application/pdf file does" in fake.text
        wrong = client.put(f"{base}/answers/BAK-02", json={"choice": "oui"})
        assert wrong.status_code == 422
        assert "answered with date only" in wrong.text
        automatic = client.put(f"{base}/answers/EXP-01", json={"choice": "oui"})
        assert automatic.status_code == 422
        future = client.put(f"{base}/answers/BAK-02", json={"date": "2999-01-01"})
        assert future.status_code == 422
        given = client.put(
            f"{base}/answers/BAK-02", json={"date": tested, "proof_id": proof.json()["id"]}
        )
        assert given.status_code == 200, given.text
        assert client.get(f"{base}/proofs/{proof.json()['id']}").content == PDF
    with service.client(world["analyst"]) as client:
        reviewed = client.post(f"{base}/answers/BAK-02/review", json={"review": "proven"})
        assert reviewed.status_code == 200, reviewed.text
        again = client.post(f"{base}/answers/BAK-02/review", json={"review": "proven"})
        assert again.status_code == 422
    run_job(service, world["admin"])
    bak = controls_of(maturity(service, world["it_pitie"]).json())["BAK-02"]
    assert (bak["status"], bak["basis"]) == ("pass", "proven")
    assert "preuve jointe ; vérifiée par le CERT" in bak["explanation"]
    with service.client(world["it_pitie"]) as client:
        history = client.get(f"{base}/answers/BAK-02").json()
    assert [a["review"] for a in history] == ["proven"]


def test_exceptions_and_their_bounds(service: Service, world: dict[str, str]) -> None:
    base = f"/establishments/{PITIE}/maturity"
    soon = iso(datetime.now(UTC) + timedelta(days=180))
    exception = {
        "control": "EXP-01",
        "kind": "risk_accepted",
        "reason": "télémaintenance du PACS le temps de la migration",
        "approver": "Directrice générale",
        "expires_at": soon,
    }
    with service.client(world["it_pitie"]) as client:
        made = client.post(f"{base}/exceptions", json=exception)
        assert made.status_code == 201, made.text
        too_long = {**exception, "expires_at": iso(datetime.now(UTC) + timedelta(days=800))}
        assert client.post(f"{base}/exceptions", json=too_long).status_code == 422
    run_job(service, world["admin"])
    doc = maturity(service, world["it_pitie"]).json()
    exposed = controls_of(doc)["EXP-01"]
    assert exposed["status"] == "risk_accepted"
    assert "Risque accepté par Directrice générale" in exposed["explanation"]
    assert doc["level"] == 1
    with service.client(world["it_pitie"]) as client:
        revoked = client.post(f"{base}/exceptions/{made.json()['id']}/revoke")
        assert revoked.status_code == 200
    run_job(service, world["admin"])
    assert controls_of(maturity(service, world["it_pitie"]).json())["EXP-01"]["status"] == "fail"


def test_snapshots_history_as_of_recompute_and_stats(
    service: Service, world: dict[str, str]
) -> None:
    yesterday = (date.today() - timedelta(days=1)).isoformat()
    assert maturity(service, world["it_pitie"]).status_code == 404  # no job yet
    run_job(service, world["admin"])
    first = maturity(service, world["it_pitie"]).json()
    run_job(service, world["admin"])
    second = maturity(service, world["it_pitie"]).json()
    assert second["snapshot"] != first["snapshot"]  # a new row, the first one kept
    # Nothing changed but the time it judged by (an input: a digest per run)
    assert (second["score"], second["level"]) == (first["score"], first["level"])
    assert second["inputs_digest"] != first["inputs_digest"]
    assert maturity(service, world["it_pitie"], as_of=yesterday).status_code == 404
    base = f"/establishments/{PITIE}/maturity"
    with service.client(world["inspector"]) as client:
        history = client.get(f"{base}/history").json()
        assert [h["snapshot"] for h in history] == [second["snapshot"]]  # a day's latest
        again = client.get(f"{base}/snapshots/{first['snapshot']}/recompute").json()
        assert again["identical"] is True
        assert again["inputs_digest"] == first["inputs_digest"]
        stats = client.get("/maturity/stats", params={"by": "region"}).json()
    assert stats["national"] == {"count": 2, "suppressed": True}
    assert all(g["suppressed"] and set(g) == {"group", "count", "suppressed"}
               for g in stats["groups"])  # fmt: skip
    # New evidence after the snapshot: recomputing it now finds other inputs.
    later = {**bad_hygiene_batch(), "batch_id": "maturity-bad-2",
             "event_ids": ["rdp-9", "x-1", "smb-9", "smb-10"]}  # fmt: skip
    assert post(service, world["agent"], later).status_code == 200
    with service.client(world["inspector"]) as client:
        changed = client.get(f"{base}/snapshots/{second['snapshot']}/recompute").json()
    assert changed["identical"] is False
    assert "changed since" in changed["reason"]


def test_evidence_is_purged_once_no_check_looks_back_that_far(
    service: Service, world: dict[str, str]
) -> None:
    with service.client(world["admin"]) as client:
        soon = client.post("/jobs/retention_purge/run").json()
        assert soon["counts"]["maturity_evidence_deleted"] == 0
        later = iso(datetime.now(UTC) + timedelta(days=400))
        late = client.post("/jobs/retention_purge/run", params={"now": later}).json()
    # The batch's rows: its agent's source, RDP exposed, SMB v1 and v2.
    assert late["counts"]["maturity_evidence_deleted"] == 4
