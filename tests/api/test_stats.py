"""The dashboard's counts and lists over real HTTP (SQLite and PostgreSQL): every number below
is counted by hand from the rows seeded here; an establishment's calls never count another's.

The world: Pitié (Île-de-France, CHU), Bordeaux (Nouvelle-Aquitaine, CHU) and Corte (Corse,
CH, nothing of its own). Incidents, agents and batches are written straight to the database,
with the times the tests need; alerts and acknowledgements go through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy
from sqlalchemy.orm import Session

from api.agents.models import Agent
from api.db import make_engine, session_factory, transaction
from api.incidents.models import Campaign, Incident
from api.ingest.models import IngestedBatch
from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, CORTE, PASSWORD, PITIE, setup_world

NOW = datetime.now(UTC)


@contextmanager
def database(service: Service) -> Iterator[Session]:
    engine = make_engine(service.settings.database_url)
    try:
        with transaction(session_factory(engine)) as session:
            yield session
    finally:
        engine.dispose()


def incident(finess: str, severity: str, status: str = "new", **extra: Any) -> Incident:
    created = extra.pop("created_at", NOW - timedelta(hours=1))
    return Incident(
        id=extra.pop("id", str(uuid.uuid4())),
        establishment_finess=finess,
        origin="declared",
        title=extra.pop("title", f"{severity} {status} at {finess}"),
        category="intrusion",
        severity=severity,
        status=status,
        aware_at=extra.pop("aware_at", created),
        created_by="test",
        created_at=created,
        updated_at=extra.pop("updated_at", created),
        notifiable=extra.pop("notifiable", False),
        **extra,
    )


def agent(finess: str, heard: datetime | None, revoked: bool = False) -> Agent:
    return Agent(
        id=str(uuid.uuid4()),
        establishment_finess=finess,
        hostname=f"srv-{uuid.uuid4().hex[:6]}",
        version="0.1.0",
        key_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        enrolled_at=NOW - timedelta(days=3),
        last_heartbeat=heard,
        revoked=revoked,
    )


def alert(title: str, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": title,
        "severity": "high",
        "tlp": "amber",
        "indicators": [{"type": "domain", "value": f"{uuid.uuid4().hex[:8]}.example"}],
        "target": target,
        "retro_hunt_days": 0,
    }


@dataclass
class World:
    tokens: dict[str, str]
    incidents: dict[str, str]  # letter -> id
    alerts: dict[str, str]  # name -> id


def build(service: Service) -> World:
    """Incidents (letters as in the comments), agents, campaigns, alerts, acknowledgements."""
    tokens = setup_world(service)
    admin = tokens["admin"]
    with service.client(admin) as client:
        corte = {"finess": CORTE, "name": "CH de Corte", "kind": "CH"}
        assert client.post("/establishments", json=corte).status_code == 201
        bordeaux_it = {"username": "it_bordeaux", "password": PASSWORD}
        made = client.post(
            "/users", json={**bordeaux_it, "role": "establishment", "establishment": BORDEAUX}
        )
        assert made.status_code == 201, made.text
    tokens["it_bordeaux"] = service.login("it_bordeaux", PASSWORD)
    rows = {
        # Pitié. a: open, critical, notifiable, aware 30 h ago: its early warning is overdue.
        "a": incident(
            PITIE, "critical", notifiable=True, aware_at=NOW - timedelta(hours=30),
            created_at=NOW - timedelta(hours=29),
        ),
        # b: open, high, not notifiable.
        "b": incident(PITIE, "high", "acknowledged", created_at=NOW - timedelta(hours=5)),
        # c: resolved, notifiable, aware 40 days ago: early warning in time, notification
        # late, final report never sent (overdue, resolved as it is).
        "c": incident(
            PITIE, "medium", "resolved", notifiable=True,
            aware_at=NOW - timedelta(days=40), created_at=NOW - timedelta(days=40),
            early_warning_at=NOW - timedelta(days=40) + timedelta(hours=2),
            notification_at=NOW - timedelta(days=40) + timedelta(hours=100),
        ),
        # Bordeaux. d: open, low.
        "d": incident(BORDEAUX, "low", "contained", created_at=NOW - timedelta(days=2)),
        # e: open, critical, notifiable, aware 100 h ago: early warning and notification
        # overdue.
        "e": incident(
            BORDEAUX, "critical", notifiable=True, aware_at=NOW - timedelta(hours=100),
            created_at=NOW - timedelta(hours=99),
        ),
        # f: closed, high.
        "f": incident(BORDEAUX, "high", "closed", created_at=NOW - timedelta(days=10)),
    }  # fmt: skip
    with database(service) as session:
        session.add_all(rows.values())
        session.add_all(
            [
                agent(PITIE, NOW - timedelta(minutes=5)),  # active
                agent(PITIE, NOW - timedelta(hours=2)),  # silent (threshold: 60 minutes)
                agent(PITIE, None),  # never
                agent(PITIE, NOW - timedelta(minutes=1), revoked=True),
                agent(BORDEAUX, NOW - timedelta(minutes=10)),
                agent(BORDEAUX, NOW - timedelta(minutes=20)),
            ]
        )
        for status in ("open", "closed"):
            session.add(
                Campaign(
                    id=str(uuid.uuid4()), rule_id="r", title=f"campaign {status}", status=status,
                    first_seen=NOW, last_seen=NOW,
                )
            )  # fmt: skip
    alerts: dict[str, str] = {}
    with service.client(tokens["analyst"]) as client:
        for name, target in (
            ("old", {"all": True}),  # published 40 days ago (below), acknowledged by no one
            ("everyone", {"all": True}),  # acknowledged by Pitié
            ("aquitaine", {"regions": ["Nouvelle-Aquitaine"]}),  # acknowledged by Bordeaux
            ("ehpad", {"kinds": ["EHPAD"]}),  # meant for none of the three
            ("withdrawn", {"all": True}),
        ):
            made = client.post("/alerts", json=alert(name, target))
            assert made.status_code == 201, made.text
            alerts[name] = made.json()["id"]
        withdrawn = client.post(f"/alerts/{alerts['withdrawn']}/withdraw")
        assert withdrawn.status_code == 200
    for who, name in (("it_pitie", "everyone"), ("it_bordeaux", "aquitaine")):
        with service.client(tokens[who]) as client:
            done = client.post(f"/alerts/{alerts[name]}/acknowledge", json={})
            assert done.status_code == 200, done.text
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE alerts SET created_at = :at WHERE id = :id"),
            {"at": NOW - timedelta(days=40), "id": alerts["old"]},
        )
    engine.dispose()
    return World(tokens, {k: v.id for k, v in rows.items()}, alerts)


def get(service: Service, token: str, path: str, **params: Any) -> Any:
    with service.client(token) as client:
        answer = client.get(path, params=params)
    assert answer.status_code == 200, f"{path} {params}: {answer.status_code} {answer.text}"
    return answer.json()


def status_of(service: Service, token: str, path: str, **params: Any) -> httpx.Response:
    with service.client(token) as client:
        return client.get(path, params=params)


@pytest.fixture
def world(service: Service) -> World:
    return build(service)


# --- the overview -----------------------------------------------------------------------------


def test_overview_counts_as_seeded(service: Service, world: World) -> None:
    for role in ("analyst", "inspector", "admin"):
        national = get(service, world.tokens[role], "/stats/overview")
        assert national["scope"] is None
        assert national["incidents"] == {
            "open": 4,  # a, b, d, e
            "open_by_severity": {"low": 1, "medium": 0, "high": 1, "critical": 2},
            "notifiable_open": 2,  # a, e
            "overdue_deadlines": 4,  # a: early warning; c: final report; e: the first two
            "overdue_incidents": 3,  # a, c, e
        }
        assert national["campaigns_open"] == 1
        assert national["alerts"] == {
            "last_30_days": 3,  # everyone, aquitaine, ehpad (not old, not withdrawn)
            "targets": 4,  # everyone: 3 establishments; aquitaine: Bordeaux; ehpad: none
            "acknowledged": 2,
            "acknowledgement_rate": 0.5,
            "pending": None,
        }
        assert national["agents"] == {
            "active": 3,
            "silent": 1,
            "never": 1,
            "revoked": 1,
            "silent_after_minutes": 60,
        }
        assert national["establishments"] == 3


def test_an_establishments_overview_counts_its_own(service: Service, world: World) -> None:
    pitie = get(service, world.tokens["it_pitie"], "/stats/overview")
    assert pitie["scope"] == PITIE
    assert pitie["incidents"] == {
        "open": 2,  # a, b
        "open_by_severity": {"low": 0, "medium": 0, "high": 1, "critical": 1},
        "notifiable_open": 1,
        "overdue_deadlines": 2,  # a: early warning; c: final report
        "overdue_incidents": 2,
    }
    assert pitie["campaigns_open"] is None  # campaigns are the national view
    assert pitie["alerts"] == {
        "last_30_days": 1,  # everyone (aquitaine and ehpad are not meant for Pitié)
        "targets": None,
        "acknowledged": None,
        "acknowledgement_rate": None,
        "pending": 1,  # old: published, for everyone, never acknowledged
    }
    assert pitie["agents"] == {
        "active": 1,
        "silent": 1,
        "never": 1,
        "revoked": 1,
        "silent_after_minutes": 60,
    }
    assert pitie["establishments"] == 1
    bordeaux = get(service, world.tokens["it_bordeaux"], "/stats/overview")
    assert bordeaux["incidents"]["open"] == 2  # d, e
    assert bordeaux["incidents"]["overdue_deadlines"] == 2
    assert bordeaux["alerts"]["last_30_days"] == 2  # everyone, aquitaine
    assert bordeaux["alerts"]["pending"] == 2  # old, everyone
    assert bordeaux["agents"]["active"] == 2
    assert bordeaux["agents"]["silent"] == 0


# --- incidents grouped ------------------------------------------------------------------------


def groups(answer: dict[str, Any]) -> dict[str, tuple[int, int | None]]:
    return {g["key"]: (g["incidents"], g["establishments"]) for g in answer["groups"]}


def test_counts_by_region_and_kind_list_every_group(service: Service, world: World) -> None:
    analyst = world.tokens["analyst"]
    by_region = get(service, analyst, "/stats/incidents", by="region")
    found = groups(by_region)
    assert len(found) == 18  # the 18 regions, in their order, with or without incidents
    assert list(found)[:2] == ["Auvergne-Rhône-Alpes", "Bourgogne-Franche-Comté"]
    assert found["Île-de-France"] == (3, 1)  # a, b, c; Pitié
    assert found["Nouvelle-Aquitaine"] == (3, 1)  # d, e, f; Bordeaux
    assert found["Corse"] == (0, 1)  # no incident among one establishment
    assert found["Bretagne"] == (0, 0)  # no establishment: no data
    assert by_region["total"] == 6
    open_ = groups(get(service, analyst, "/stats/incidents", by="region", status="open"))
    assert (open_["Île-de-France"], open_["Nouvelle-Aquitaine"]) == ((2, 1), (2, 1))
    by_kind = groups(get(service, analyst, "/stats/incidents", by="kind"))
    assert list(by_kind) == ["CHU", "CH", "clinic", "EHPAD", "psychiatry", "SSR", "other"]
    assert by_kind["CHU"] == (6, 2)
    assert by_kind["CH"] == (0, 1)
    assert by_kind["EHPAD"] == (0, 0)
    # Kinds within one region; severities within one kind.
    critical = get(service, analyst, "/stats/incidents", by="kind", severity="critical",
                   region="Nouvelle-Aquitaine")  # fmt: skip
    assert groups(critical)["CHU"] == (1, 1)  # e
    assert groups(critical)["CH"] == (0, 0)  # Corte is in Corse


def test_counts_by_severity_and_status(service: Service, world: World) -> None:
    analyst = world.tokens["analyst"]
    severity = get(service, analyst, "/stats/incidents", by="severity")
    assert groups(severity) == {
        "low": (1, None),
        "medium": (1, None),
        "high": (2, None),
        "critical": (2, None),
    }
    status = groups(get(service, analyst, "/stats/incidents", by="status"))
    assert status == {
        "new": (2, None),  # a, e
        "acknowledged": (1, None),
        "contained": (1, None),
        "resolved": (1, None),
        "closed": (1, None),
    }
    only_open = get(service, analyst, "/stats/incidents", by="status", status="open")
    assert groups(only_open) == {
        "new": (2, None),
        "acknowledged": (1, None),
        "contained": (1, None),
    }
    # The period is on created_at: a (29 h ago), b (5 h), e (99 h) within the last 5 days.
    since = (NOW - timedelta(days=5)).isoformat()
    recent = get(service, analyst, "/stats/incidents", by="severity", since=since)
    assert recent["total"] == 4  # a, b, d (2 days), e
    until = (NOW - timedelta(days=3)).isoformat()
    window = get(service, analyst, "/stats/incidents", by="severity", since=since, until=until)
    assert groups(window)["critical"] == (1, None)  # e only
    assert window["total"] == 1


def test_an_establishment_counts_its_own_and_may_not_compare(
    service: Service, world: World
) -> None:
    pitie = world.tokens["it_pitie"]
    severity = get(service, pitie, "/stats/incidents", by="severity")
    assert groups(severity) == {
        "low": (0, None),
        "medium": (1, None),
        "high": (1, None),
        "critical": (1, None),
    }
    # Asking for Bordeaux's counts gets none of them.
    theirs = get(service, pitie, "/stats/incidents", by="status", establishment=BORDEAUX)
    assert theirs["total"] == 0
    for by in ("region", "kind"):
        refused = status_of(service, pitie, "/stats/incidents", by=by)
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden"


# --- incidents per day and week ---------------------------------------------------------------

# Paris left summer time on 25 October 2026 (3:00 CEST became 2:00 CET): that day lasted
# 25 hours, from 24 October 22:00 UTC to 25 October 23:00 UTC.
AROUND_THE_CHANGE = {
    "before": datetime(2026, 10, 24, 21, 30, tzinfo=UTC),  # 24 Oct, 23:30 in Paris
    "first": datetime(2026, 10, 24, 22, 30, tzinfo=UTC),  # 25 Oct, 00:30 CEST
    "last": datetime(2026, 10, 25, 22, 30, tzinfo=UTC),  # 25 Oct, 23:30 CET
    "next": datetime(2026, 10, 25, 23, 0, tzinfo=UTC),  # 26 Oct, 00:00 CET
}


def _seed_around_the_change(service: Service) -> None:
    with database(service) as session:
        for name, at in AROUND_THE_CHANGE.items():
            severity = "high" if name == "last" else "low"
            session.add(incident(PITIE, severity, created_at=at, title=name))
        session.add(incident(BORDEAUX, "critical", created_at=AROUND_THE_CHANGE["first"]))
        batches = [
            (PITIE, AROUND_THE_CHANGE["last"], 3, 2, "done"),
            (PITIE, AROUND_THE_CHANGE["first"], 1, 0, "done"),
            (PITIE, AROUND_THE_CHANGE["last"], 50, 0, "processing"),  # not counted yet
            (BORDEAUX, AROUND_THE_CHANGE["last"], 7, 0, "done"),
        ]
        for finess, at, sent, found, state in batches:
            session.add(
                IngestedBatch(
                    batch_id=uuid.uuid4().hex, agent="agent:x", establishment=finess,
                    received_at=at, events_accepted=0, detections_accepted=sent, rejected=0,
                    server_detections=found, state=state,
                )
            )  # fmt: skip


def test_days_follow_paris_across_the_change_of_time(service: Service) -> None:
    tokens = setup_world(service)
    _seed_around_the_change(service)
    series = get(service, tokens["analyst"], "/stats/incidents/series",
                 interval="day", days=10, end="2026-11-01")  # fmt: skip
    assert series["timezone"] == "Europe/Paris"
    assert series["end"] == "2026-11-01"
    days = {b["start"]: b for b in series["buckets"]}
    assert list(days) == [f"2026-10-{d}" for d in range(23, 32)] + ["2026-11-01"]
    long_day = days["2026-10-25"]
    assert long_day["since"].startswith("2026-10-24T22:00:00")
    assert long_day["until"].startswith("2026-10-25T23:00:00")  # 25 hours
    assert days["2026-10-26"]["since"].startswith("2026-10-25T23:00:00")
    assert days["2026-10-24"]["incidents"] == {"low": 1, "medium": 0, "high": 0, "critical": 0}
    assert long_day["incidents"] == {"low": 1, "medium": 0, "high": 1, "critical": 1}
    assert long_day["total"] == 3
    assert days["2026-10-26"]["total"] == 1
    assert long_day["detections"] == 3 + 2 + 1 + 7
    others = [b for b in series["buckets"] if b["start"] not in ("2026-10-24", "2026-10-25",
                                                                   "2026-10-26")]  # fmt: skip
    assert all(b["total"] == 0 and b["detections"] == 0 for b in others)  # zero-filled
    # An establishment's series counts its own incidents and batches only.
    pitie = get(service, tokens["it_pitie"], "/stats/incidents/series",
                interval="day", days=10, end="2026-11-01")  # fmt: skip
    mine = {b["start"]: b for b in pitie["buckets"]}
    assert mine["2026-10-25"]["incidents"] == {"low": 1, "medium": 0, "high": 1, "critical": 0}
    assert mine["2026-10-25"]["detections"] == 6
    assert sum(b["total"] for b in pitie["buckets"]) == 4


def test_weeks_are_iso_weeks_of_paris(service: Service) -> None:
    tokens = setup_world(service)
    _seed_around_the_change(service)
    series = get(service, tokens["analyst"], "/stats/incidents/series",
                 interval="week", days=14, end="2026-11-01")  # fmt: skip
    weeks = series["buckets"]
    assert [w["start"] for w in weeks] == ["2026-10-19", "2026-10-26"]  # Mondays
    assert weeks[0]["since"].startswith("2026-10-18T22:00:00")  # Monday 00:00 CEST
    assert weeks[0]["until"].startswith("2026-10-25T23:00:00")  # Monday 00:00 CET: 169 h
    assert weeks[0]["total"] == 4  # before, first, last; Bordeaux's
    assert weeks[1]["total"] == 1  # next
    # Spring: 29 March 2026 lasted 23 hours.
    spring = get(service, tokens["analyst"], "/stats/incidents/series",
                 interval="day", days=1, end="2026-03-29")  # fmt: skip
    (day,) = spring["buckets"]
    assert day["since"].startswith("2026-03-28T23:00:00")
    assert day["until"].startswith("2026-03-29T22:00:00")


# --- NIS2 deadlines ---------------------------------------------------------------------------


def test_deadlines_open_first_soonest_due(service: Service, world: World) -> None:
    ids = world.incidents
    analyst = world.tokens["analyst"]
    page = get(service, analyst, "/deadlines", open="true", sort="due")
    order = [(i["incident_id"], i["deadline"]) for i in page["items"]]
    assert order == [
        (ids["c"], "final_report"),  # due 10 days ago or so
        (ids["e"], "early_warning"),  # 76 h ago
        (ids["e"], "notification"),  # 28 h ago
        (ids["a"], "early_warning"),  # 6 h ago
        (ids["a"], "notification"),  # in 42 h
        (ids["e"], "final_report"),  # in about 26 days
        (ids["a"], "final_report"),  # in about 29 days
    ]
    assert page["total"] == 7
    first = page["items"][0]
    assert first["establishment"] == PITIE
    assert first["establishment_name"] == "Pitié-Salpêtrière"
    assert first["region"] == "Île-de-France"
    assert first["kind"] == "CHU"
    assert first["status"] == "resolved"
    assert first["done_at"] is None
    assert (first["state"], first["overdue"]) == ("late", True)
    assert [i["state"] for i in page["items"]][3:] == ["late", "pending", "pending", "pending"]
    # The due dates are nis2.py's: aware + 24 h, + 72 h, + one calendar month.
    with service.client(analyst) as client:
        detail = client.get(f"/incidents/{ids['a']}").json()
    due = {d["kind"]: d["due"] for d in detail["deadlines"]}
    for item in page["items"]:
        if item["incident_id"] == ids["a"]:
            assert item["due"] == due[item["deadline"]]
    # Sent ones come after the open ones: c's early warning in time, its notification late.
    everything = get(service, analyst, "/deadlines")
    assert everything["total"] == 9
    sent = [(i["incident_id"], i["deadline"], i["state"]) for i in everything["items"][7:]]
    assert sent == [(ids["c"], "early_warning", "met"), (ids["c"], "notification", "late")]
    assert not everything["items"][8]["overdue"]
    # Paging, filters.
    second = get(service, analyst, "/deadlines", open="true", offset=1, limit=2)
    assert [(i["incident_id"], i["deadline"]) for i in second["items"]] == order[1:3]
    assert second["total"] == 7
    aquitaine = get(service, analyst, "/deadlines", open="true", region="Nouvelle-Aquitaine")
    assert {i["incident_id"] for i in aquitaine["items"]} == {ids["e"]}
    finals = get(service, analyst, "/deadlines", deadline="final_report")
    assert finals["total"] == 3
    pending = get(service, analyst, "/deadlines", state="pending")
    assert pending["total"] == 3
    met = get(service, analyst, "/deadlines", state="met")
    assert [(i["incident_id"], i["deadline"]) for i in met["items"]] == [
        (ids["c"], "early_warning")
    ]
    assert get(service, analyst, "/deadlines", kind="CH")["total"] == 0


def test_an_establishments_deadlines_are_its_own(service: Service, world: World) -> None:
    ids = world.incidents
    pitie = world.tokens["it_pitie"]
    page = get(service, pitie, "/deadlines", open="true")
    assert {i["incident_id"] for i in page["items"]} == {ids["a"], ids["c"]}
    assert page["total"] == 4
    assert get(service, pitie, "/deadlines", establishment=BORDEAUX)["total"] == 0
    assert get(service, pitie, "/deadlines", region="Nouvelle-Aquitaine")["total"] == 0


# --- new filters on the lists -----------------------------------------------------------------


def test_incident_list_filters_and_sorts(service: Service, world: World) -> None:
    ids = {v: k for k, v in world.incidents.items()}
    analyst = world.tokens["analyst"]

    def letters(**params: Any) -> list[str]:
        return [ids[i["id"]] for i in get(service, analyst, "/incidents", **params)["items"]]

    assert sorted(letters(region="Nouvelle-Aquitaine")) == ["d", "e", "f"]
    assert letters(kind="CH") == []
    assert sorted(letters(kind="CHU", status="open")) == ["a", "b", "d", "e"]
    assert sorted(letters(since=(NOW - timedelta(days=3)).isoformat())) == ["a", "b", "d"]
    assert letters(until=(NOW - timedelta(days=5)).isoformat()) == ["f", "c"]  # latest first
    assert letters(sort="created") == ["b", "a", "d", "e", "f", "c"]
    # Critical first, ties by the latest updated.
    assert letters(sort="severity") == ["a", "e", "b", "f", "c", "d"]
    # Next report due: c's final (10 days late), e's early warning, a's; then none.
    due = letters(sort="due")
    assert due[:3] == ["c", "e", "a"]
    assert sorted(due[3:]) == ["b", "d", "f"]
    assert sorted(letters(overdue="true")) == ["a", "c", "e"]
    assert sorted(letters(overdue="false")) == ["b", "d", "f"]
    page = get(service, analyst, "/incidents", sort="created", offset=1, limit=2)
    assert [ids[i["id"]] for i in page["items"]] == ["a", "d"]
    assert page["total"] == 6
    # An establishment's list stays its own whatever the filters.
    pitie = get(service, world.tokens["it_pitie"], "/incidents", region="Nouvelle-Aquitaine")
    assert pitie["total"] == 0


def test_agent_and_establishment_filters(service: Service, world: World) -> None:
    analyst = world.tokens["analyst"]
    expected = {"active": 3, "silent": 1, "never": 1, "revoked": 1}
    for state, count in expected.items():
        assert get(service, analyst, "/agents", status=state)["total"] == count
    assert get(service, analyst, "/agents", region="Île-de-France")["total"] == 4
    assert get(service, analyst, "/agents", region="Corse")["total"] == 0
    silent = get(service, analyst, "/agents", status="silent")["items"]
    assert [a["establishment"] for a in silent] == [PITIE]
    pitie = world.tokens["it_pitie"]
    assert get(service, pitie, "/agents", status="active")["total"] == 1
    assert get(service, pitie, "/agents", region="Nouvelle-Aquitaine")["total"] == 0
    corse = get(service, analyst, "/establishments", region="Corse")
    assert [e["finess"] for e in corse["items"]] == [CORTE]
    chu = get(service, analyst, "/establishments", kind="CHU")
    assert {e["finess"] for e in chu["items"]} == {PITIE, BORDEAUX}
    assert get(service, analyst, "/establishments", kind="CH", region="Bretagne")["total"] == 0
    assert get(service, pitie, "/establishments", kind="CH")["total"] == 0


def test_alerts_pending_for_an_establishment(service: Service, world: World) -> None:
    alerts = world.alerts

    def pending(token: str, finess: str) -> list[str]:
        page = get(service, token, "/alerts", pending_for=finess)
        assert page["total"] == len(page["items"])
        return [a["id"] for a in page["items"]]

    analyst = world.tokens["analyst"]
    assert pending(analyst, PITIE) == [alerts["old"]]
    assert pending(analyst, BORDEAUX) == [alerts["everyone"], alerts["old"]]  # newest first
    assert pending(analyst, CORTE) == [alerts["everyone"], alerts["old"]]
    assert pending(world.tokens["inspector"], PITIE) == [alerts["old"]]
    assert pending(world.tokens["it_pitie"], PITIE) == [alerts["old"]]
    # Another establishment's answers like an absent one (and is audited as refused).
    refused = status_of(service, world.tokens["it_pitie"], "/alerts", pending_for=BORDEAUX)
    assert refused.status_code == 404
    unknown = status_of(service, analyst, "/alerts", pending_for="010008407")
    assert unknown.status_code == 404


# --- bad parameters, audit --------------------------------------------------------------------

BAD = [
    ("/stats/incidents", {}),  # `by` is required
    ("/stats/incidents", {"by": "town"}),
    ("/stats/incidents", {"by": "severity", "status": "pending"}),
    ("/stats/incidents", {"by": "severity", "since": "2026-01-01T00:00:00"}),  # no zone
    (
        "/stats/incidents",
        {"by": "severity", "since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    ),  # fmt: skip
    ("/stats/incidents", {"by": "severity", "since": "0001-01-01T00:00:00+01:00"}),
    ("/stats/incidents/series", {"interval": "month"}),
    ("/stats/incidents/series", {"days": 0}),
    ("/stats/incidents/series", {"days": 367}),
    ("/stats/incidents/series", {"end": "0001-01-01"}),
    ("/stats/incidents/series", {"end": "9999-12-31"}),
    ("/stats/incidents/series", {"end": "yesterday"}),
    ("/deadlines", {"sort": "severity"}),
    ("/deadlines", {"state": "lost"}),
    ("/deadlines", {"deadline": "weekly"}),
    ("/deadlines", {"open": "maybe"}),
    ("/incidents", {"sort": "title"}),
    ("/incidents", {"kind": "hotel"}),
    ("/incidents", {"since": "2026-13-01T00:00:00Z"}),
    ("/agents", {"status": "asleep"}),
    ("/establishments", {"kind": "hotel"}),
    ("/establishments", {"region": "x" * 61}),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_bad_parameters_are_refused_with_a_reason(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["analyst"]) as client:
        for path, params in BAD:
            answer = client.get(path, params=params)
            assert answer.status_code == 422, f"{path} {params}: {answer.status_code}"
            assert answer.json()["code"] == "invalid"
            assert answer.json()["detail"], f"{path} {params}: no reason given"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reads_are_audited(service: Service, world: World) -> None:
    analyst, pitie = world.tokens["analyst"], world.tokens["it_pitie"]
    get(service, analyst, "/stats/overview")
    get(service, analyst, "/stats/incidents", by="region", status="open")
    get(service, pitie, "/stats/incidents/series", days=7, end="2026-11-01")
    mine = get(service, pitie, "/deadlines", open="true")
    get(service, analyst, "/alerts", pending_for=PITIE)
    with service.client(world.tokens["inspector"]) as client:
        log = client.get("/audit", params={"limit": 1000}).json()
    reads = {
        (e["actor"], e["target_kind"], e["target_id"], e["detail"])
        for e in log
        if e["action"] == "read"
    }
    assert ("analyst", "stats", "overview", None) in reads
    assert ("analyst", "stats", "incidents/region", "status=open") in reads
    assert ("it_pitie", "stats", "incidents/series", "interval=day days=7 end=2026-11-01") in reads
    shown = ",".join(dict.fromkeys(i["incident_id"] for i in mine["items"]))
    assert ("it_pitie", "incident", "deadlines/*", shown) in reads
    assert ("analyst", "alert", f"*/pending:{PITIE}", world.alerts["old"]) in reads
    denied = status_of(service, pitie, "/alerts", pending_for=BORDEAUX)
    assert denied.status_code == 404
    with service.client(world.tokens["inspector"]) as client:
        log = client.get("/audit", params={"limit": 1000}).json()
    assert any(
        e["action"] == "denied" and e["actor"] == "it_pitie" and e["target_id"] == BORDEAUX
        for e in log
    )
