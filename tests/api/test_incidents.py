"""Incidents over real HTTP: declared through the form, opened from detections, moved through
the workflow, NIS2 deadlines, and campaigns across establishments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from api.agents.models import as_utc
from api.db import make_engine, session_factory, transaction
from api.incidents import service as incidents
from tests.api.conftest import Service
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import BORDEAUX, PITIE, setup_world


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def form(**extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "title": "Rançongiciel sur le serveur du laboratoire",
        "category": "ransomware",
        "care_impact": "degraded",
        "personal_data": True,
        "started_at": iso(now - timedelta(hours=40)),
        "aware_at": iso(now - timedelta(hours=30)),
        "affected_systems": ["srv-labo-01", "srv-labo-02", "srv-labo-01"],
        "description": "Fichiers chiffrés, note de rançon sur les partages.",
        "severity": "critical",
        **extra,
    }


def detection(rule: str, host: str, level: str = "high", **extra: Any) -> dict[str, Any]:
    return {
        "engine": "sigma",
        "rule_id": rule,
        "rule_title": f"title of {rule}",
        "level": level,
        "timestamp": iso(datetime.now(UTC) - timedelta(minutes=5)),
        "source": "agent",
        "event": {"@timestamp": iso(datetime.now(UTC)), "host": {"name": host}},
        **extra,
    }


def test_declared_incident_has_the_report_fields_and_nis2_deadlines(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        made = client.post("/incidents", json=form())
        assert made.status_code == 201, made.text
        incident = made.json()
        assert incident["establishment"] == PITIE  # its own, without saying so
        assert incident["origin"] == "declared"
        assert incident["status"] == "new"
        assert incident["affected_systems"] == ["srv-labo-01", "srv-labo-02"]
        assert incident["care_impact"] == "degraded"
        assert incident["personal_data"] is True
        deadlines = {d["kind"]: d for d in incident["deadlines"]}
        assert set(deadlines) == {"early_warning", "notification", "final_report"}
        aware = datetime.fromisoformat(incident["aware_at"])
        assert datetime.fromisoformat(deadlines["early_warning"]["due"]) == aware + timedelta(
            hours=24
        )
        assert datetime.fromisoformat(deadlines["notification"]["due"]) == aware + timedelta(
            hours=72
        )
        # 30 hours since awareness: the early warning is overdue, the rest not yet.
        assert incident["overdue"] == ["early_warning"]
        assert client.get("/incidents", params={"overdue": True}).json()["total"] == 1

        sent = client.post(f"/incidents/{incident['id']}/reports", json={"kind": "early_warning"})
        assert sent.status_code == 200, sent.text
        early = next(d for d in sent.json()["deadlines"] if d["kind"] == "early_warning")
        assert early["met"] is False
        assert early["overdue"] is False
        assert sent.json()["overdue"] == []
        assert "late" in sent.json()["timeline"][-1]["text"]
        twice = client.post(f"/incidents/{incident['id']}/reports", json={"kind": "early_warning"})
        assert twice.status_code == 422

        # Another establishment's incident is not there for it.
        assert client.post("/incidents", json=form(establishment=BORDEAUX)).status_code == 404


def test_times_with_an_offset_keep_their_instant(service: Service) -> None:
    """10:00+02:00 is 08:00 UTC on both databases (SQLite kept the digits and dropped the
    offset: the NIS2 clock started two hours late)."""
    tokens = setup_world(service)
    aware = datetime(2026, 6, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    body = form(aware_at=aware.isoformat(), started_at=(aware - timedelta(hours=1)).isoformat())
    with service.client(tokens["it_pitie"]) as client:
        made = client.post("/incidents", json=body)
        assert made.status_code == 201, made.text
        incident = made.json()
        sent_at = datetime(2026, 6, 2, 9, 30, tzinfo=timezone(timedelta(hours=2)))  # 07:30Z
        sent = client.post(
            f"/incidents/{incident['id']}/reports",
            json={"kind": "early_warning", "sent_at": sent_at.isoformat()},
        )
        assert sent.status_code == 200, sent.text
        read = client.get(f"/incidents/{incident['id']}").json()
        deadlines = client.get("/deadlines", params={"deadline": "early_warning"}).json()
    # SQLite hands the times back without a zone (in UTC): read as as_utc does.
    assert as_utc(datetime.fromisoformat(read["aware_at"])) == aware
    assert as_utc(datetime.fromisoformat(read["started_at"])) == aware - timedelta(hours=1)
    early = next(d for d in read["deadlines"] if d["kind"] == "early_warning")
    assert datetime.fromisoformat(early["due"]) == datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    assert datetime.fromisoformat(early["done_at"]) == sent_at
    assert early["met"] is True  # 07:30Z, before 08:00Z: in time
    (row,) = deadlines["items"]
    assert datetime.fromisoformat(row["due"]) == datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
    assert row["state"] == "met"


def test_the_form_refuses_what_cannot_be(service: Service) -> None:
    tokens = setup_world(service)
    now = datetime.now(UTC)
    with service.client(tokens["it_pitie"]) as client:
        future = client.post("/incidents", json=form(aware_at=iso(now + timedelta(days=1))))
        assert future.status_code == 422
        assert "future" in future.json()["detail"]
        backwards = client.post(
            "/incidents",
            json=form(started_at=iso(now), aware_at=iso(now - timedelta(hours=1))),
        )
        assert backwards.status_code == 422
        assert "started_at" in backwards.json()["detail"]
        unknown = client.post("/incidents", json=form(category="alien invasion"))
        assert unknown.status_code == 422
    with service.client(tokens["analyst"]) as client:
        nowhere = client.post("/incidents", json=form())
        assert nowhere.status_code == 422
        assert "establishment" in nowhere.json()["detail"]


def test_workflow_moves_forward_with_a_timeline(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        incident_id = client.post("/incidents", json=form()).json()["id"]
        url = f"/incidents/{incident_id}"
        for status in ("acknowledged", "contained"):
            moved = client.post(f"{url}/status", json={"status": status, "comment": status})
            assert moved.status_code == 200, moved.text
        back = client.post(f"{url}/status", json={"status": "new"})
        assert back.status_code == 422
        assert "cannot go from contained to new" in back.text
        assert (
            client.post(f"{url}/comments", json={"text": "sauvegardes saines"}).status_code == 201
        )
        client.post(f"{url}/status", json={"status": "resolved"})
        reopened = client.post(f"{url}/status", json={"status": "acknowledged"})
        assert reopened.status_code == 200
        client.post(f"{url}/status", json={"status": "closed", "comment": "RETEX fait"})
        final = client.post(f"{url}/status", json={"status": "resolved"})
        assert final.status_code == 422
        assert "closed" in final.text
        timeline = client.get(url).json()["timeline"]
    moves = [(e["from_status"], e["to_status"]) for e in timeline if e["kind"] == "status"]
    assert moves == [
        ("new", "acknowledged"),
        ("acknowledged", "contained"),
        ("contained", "resolved"),
        ("resolved", "acknowledged"),
        ("acknowledged", "closed"),
    ]
    assert [e["kind"] for e in timeline][0] == "created"
    assert any(e["kind"] == "comment" and e["actor"] == "it_pitie" for e in timeline)
    # The CERT reads it, the auditor reads it and cannot change it.
    with service.client(tokens["inspector"]) as client:
        assert client.get(url).status_code == 200
        assert client.post(f"{url}/comments", json={"text": "x"}).status_code == 403
        assert client.patch(url, json={"title": "changed"}).status_code == 403


def test_detections_open_grouped_incidents_with_severity_from_level(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    batch = {
        "batch_id": "incidents-0001",
        "detections": [
            detection("rule-a", "pc-urgences-01", "medium"),
            detection("rule-a", "pc-urgences-01", "high"),
            detection("rule-a", "pc-radio-02", "low"),
            detection("rule-b", "pc-urgences-01", "informational"),
            detection("rule-r", "srv-fic", "critical", tags=["attack.impact", "attack.t1486"]),
        ],
    }
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["incidents"] == 3
    post(
        service,
        key,
        {"batch_id": "incidents-0002", "detections": [detection("rule-a", "pc-urgences-01")]},
    )
    with service.client(tokens["it_pitie"]) as client:
        items = client.get("/incidents").json()["items"]
    by_key = {(i["rule_id"], i["host"]): i for i in items}
    assert set(by_key) == {
        ("rule-a", "pc-urgences-01"),
        ("rule-a", "pc-radio-02"),
        ("rule-r", "srv-fic"),
    }
    grouped = by_key[("rule-a", "pc-urgences-01")]
    assert grouped["detection_count"] == 3  # two in the first batch, one in the second
    assert grouped["severity"] == "high"  # the worst level seen
    assert grouped["origin"] == "detection"
    assert grouped["status"] == "new"
    assert by_key[("rule-a", "pc-radio-02")]["severity"] == "low"
    ransom = by_key[("rule-r", "srv-fic")]
    assert ransom["category"] == "ransomware"
    assert ransom["notifiable"] is True
    assert len(ransom["deadlines"]) == 3
    assert by_key[("rule-a", "pc-radio-02")]["deadlines"] == []  # not significant: no NIS2 clock
    with service.client(tokens["analyst"]) as client:
        detail = client.get(f"/incidents/{grouped['id']}").json()
    assert detail["sample"]["rule_id"] == "rule-a"
    assert [e["kind"] for e in detail["timeline"]] == ["created", "detection"]


def test_a_resolved_incident_is_not_extended(service: Service) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    post(service, key, {"batch_id": "resolved-0001", "detections": [detection("rule-z", "h1")]})
    with service.client(tokens["it_pitie"]) as client:
        first = client.get("/incidents").json()["items"][0]
        client.post(f"/incidents/{first['id']}/status", json={"status": "resolved"})
    post(service, key, {"batch_id": "resolved-0002", "detections": [detection("rule-z", "h1")]})
    with service.client(tokens["it_pitie"]) as client:
        items = client.get("/incidents").json()["items"]
    assert len(items) == 2
    assert {i["status"] for i in items} == {"new", "resolved"}


# Vigie's own rules (rules/sigma): the service knows every agent runs them.
MIMIKATZ = "abf9fb10-96fd-4f5f-bfb7-2cfacf49fa93"
DEFENDER_OFF = "cac4a02a-951a-49af-9f9a-65e832baba05"


def test_same_rule_in_two_establishments_opens_a_campaign_for_the_cert_only(
    service: Service,
) -> None:
    tokens = setup_world(service)
    pitie, bordeaux = agent_key(service, tokens, PITIE), agent_key(service, tokens, BORDEAUX)
    post(service, pitie, {"batch_id": "camp-0001", "detections": [detection(MIMIKATZ, "a")]})
    with service.client(tokens["analyst"]) as client:
        assert client.get("/campaigns").json() == []
    post(service, bordeaux, {"batch_id": "camp-0002", "detections": [detection(MIMIKATZ, "b")]})
    post(service, bordeaux, {"batch_id": "camp-0003", "detections": [detection(DEFENDER_OFF, "b")]})
    with service.client(tokens["analyst"]) as client:
        campaigns = client.get("/campaigns").json()
        assert len(campaigns) == 1
        campaign = campaigns[0]
        assert campaign["rule_id"] == MIMIKATZ
        assert campaign["establishments"] == sorted([PITIE, BORDEAUX])
        assert len(campaign["incidents"]) == 2
        linked = client.get("/incidents", params={"campaign": campaign["id"]}).json()
        assert linked["total"] == 2
        closed = client.patch(f"/campaigns/{campaign['id']}", json={"status": "closed"})
        assert closed.json()["status"] == "closed"
    with service.client(tokens["it_pitie"]) as client:
        assert client.get("/campaigns").status_code == 403
        assert client.get(f"/campaigns/{campaign['id']}").status_code == 403
        mine = client.get("/incidents").json()["items"]
        assert [i["campaign_id"] for i in mine] == [None]  # who else was hit is not theirs
    with service.client(tokens["inspector"]) as client:
        assert client.get("/campaigns").status_code == 403


def test_rule_ids_the_service_does_not_know_make_no_campaign(service: Service) -> None:
    """A stolen agent key posts detections of rules its agent never ran: they open that
    establishment's incidents, but link no one else's into a national campaign. Only Vigie's
    own rules, and the rules and indicators of alerts meant for the establishment, count."""
    from tests.api.test_alerts import alert_body, fresh_rule

    tokens = setup_world(service)
    pitie, bordeaux = agent_key(service, tokens, PITIE), agent_key(service, tokens, BORDEAUX)
    with service.client(tokens["analyst"]) as client:
        made = client.post(
            "/alerts",
            json=alert_body(
                sigma_rules=[fresh_rule()], target={"regions": ["Île-de-France"]}, tlp="clear"
            ),
        )
        assert made.status_code == 201, made.text
    pitie_only = made.json()  # Pitié is in Île-de-France, Bordeaux is not
    pitie_rule = pitie_only["sigma_rules"][0].split("id: ")[1].split("\n")[0]
    made_up = [
        "00000000-0000-4000-8000-00000000beef",  # a UUID no rule has
        "rule-c",
        f"indicator:{'0' * 8}-0000-4000-8000-000000000000",  # no such alert
        pitie_rule,  # an alert's rule, not meant for Bordeaux
        f"indicator:{pitie_only['id']}",  # its indicators, not meant for Bordeaux either
    ]
    for n, rule_id in enumerate(made_up):
        for key, host in ((pitie, "p"), (bordeaux, "b")):
            batch = {"batch_id": f"made-up-{n}-{host}", "detections": [detection(rule_id, host)]}
            assert post(service, key, batch).status_code == 200
    with service.client(tokens["analyst"]) as client:
        assert client.get("/campaigns").json() == []
        opened = client.get("/incidents", params={"limit": 100}).json()["items"]
    # Every detection still opened its establishment's incident.
    assert {(i["establishment"], i["rule_id"]) for i in opened} == {
        (e, r) for e in (PITIE, BORDEAUX) for r in made_up
    }

    # Known rules make a campaign as before: Vigie's own, an alert meant for both.
    with service.client(tokens["analyst"]) as client:
        made = client.post("/alerts", json=alert_body(sigma_rules=[fresh_rule()], tlp="clear"))
        assert made.status_code == 201, made.text
    everyone = made.json()
    everyone_rule = everyone["sigma_rules"][0].split("id: ")[1].split("\n")[0]
    known = [MIMIKATZ, everyone_rule, f"indicator:{everyone['id']}"]
    for n, rule_id in enumerate(known):
        for key, host in ((pitie, "p"), (bordeaux, "b")):
            batch = {"batch_id": f"known-{n}-{host}", "detections": [detection(rule_id, host)]}
            assert post(service, key, batch).status_code == 200
    with service.client(tokens["analyst"]) as client:
        campaigns = client.get("/campaigns").json()
    assert sorted(c["rule_id"] for c in campaigns) == sorted(known)
    assert all(c["establishments"] == sorted([PITIE, BORDEAUX]) for c in campaigns)


def test_passed_deadlines_are_flagged_once(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        incident_id = client.post("/incidents", json=form()).json()["id"]
    engine = make_engine(service.settings.database_url)
    sessions = session_factory(engine)
    try:
        later = datetime.now(UTC) + timedelta(days=3)
        with transaction(sessions) as session:
            assert incidents.flag_overdue(session=session, now=later) == 2
        with transaction(sessions) as session:
            assert incidents.flag_overdue(session=session, now=later) == 0  # once only
        with transaction(sessions) as session:
            assert incidents.flag_overdue(session=session, now=later + timedelta(days=40)) == 1
    finally:
        engine.dispose()
    with service.client(tokens["analyst"]) as client:
        timeline = client.get(f"/incidents/{incident_id}").json()["timeline"]
    flagged = [e["text"] for e in timeline if e["kind"] == "deadline"]
    assert len(flagged) == 3
    assert "early warning" in flagged[0]
    assert "final report" in flagged[2]
