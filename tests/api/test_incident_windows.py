"""The README's windows, at their edges, over real HTTP: "same rule and host within 24 h is one
incident", "the same rule or indicator in several establishments within 7 days opens a
campaign" (from detections an agent sends, and from a published alert's indicator the service
matches on arrival), and the NIS2 final report "one month from awareness".

Detections and events carry their own times (an agent back after an outage sends old ones):
the windows are counted between those times, not between arrivals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.incidents import nis2
from tests.api.conftest import Service
from tests.api.test_alerts import C2_IP, alert_body, fresh_rule
from tests.api.test_incidents import DEFENDER_OFF, MIMIKATZ, detection, form, iso
from tests.api.test_ingest import agent_key, post
from tests.api.test_service import BORDEAUX, PITIE, setup_world

T = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


def _at(rule: str, host: str, moment: datetime) -> dict[str, Any]:
    return detection(rule, host, timestamp=iso(moment))


def _send(service: Service, key: str, batch_id: str, *detections: dict[str, Any]) -> None:
    answer = post(service, key, {"batch_id": batch_id, "detections": list(detections)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["rejected"] == []


def _incidents(service: Service, token: str, rule: str) -> list[dict[str, Any]]:
    with service.client(token) as client:
        items = client.get("/incidents", params={"limit": 500}).json()["items"]
    found = [i for i in items if i["rule_id"] == rule]
    return sorted(found, key=lambda i: str(i["first_seen"]))


def _campaigns(service: Service, token: str) -> dict[str, dict[str, Any]]:
    with service.client(token) as client:
        answer = client.get("/campaigns")
    assert answer.status_code == 200, answer.text
    return {c["rule_id"]: c for c in answer.json()}


def _seen(incident: dict[str, Any]) -> tuple[datetime, datetime, int]:
    first = datetime.fromisoformat(incident["first_seen"]).astimezone(UTC)
    last = datetime.fromisoformat(incident["last_seen"]).astimezone(UTC)
    return first, last, incident["detection_count"]


def test_one_incident_per_rule_and_host_within_24_hours_of_its_detections(
    service: Service,
) -> None:
    tokens = setup_world(service)
    key = agent_key(service, tokens)
    # Across batches: each detection within 24 h of the incident's last one extends it (24 h
    # to the second included); 24 h and 1 s after, another incident opens.
    _send(service, key, "window-w-1", _at("rule-w", "h", T))
    _send(service, key, "window-w-2", _at("rule-w", "h", T + DAY - SECOND))
    _send(service, key, "window-w-3", _at("rule-w", "h", T + 2 * DAY - SECOND))  # 24 h exactly
    _send(service, key, "window-w-4", _at("rule-w", "h", T + 3 * DAY))  # 24 h and 1 s
    # One batch from an agent back after an outage, its detections 24 h, then 24 h and 1 s
    # apart: two incidents, as if they had come one by one.
    _send(
        service,
        key,
        "window-x-1",
        _at("rule-x", "h", T),
        _at("rule-x", "h", T + DAY),
        _at("rule-x", "h", T + 2 * DAY + SECOND),
    )
    # A detection older than the incident by more than 24 h arrives late: not that incident.
    _send(service, key, "window-y-1", _at("rule-y", "h", T + 2 * DAY))
    _send(service, key, "window-y-2", _at("rule-y", "h", T + DAY - SECOND))
    _send(service, key, "window-y-3", _at("rule-y", "h", T + DAY))  # 24 h before: joins
    it_pitie = tokens["it_pitie"]
    assert [_seen(i) for i in _incidents(service, it_pitie, "rule-w")] == [
        (T, T + 2 * DAY - SECOND, 3),
        (T + 3 * DAY, T + 3 * DAY, 1),
    ]
    assert [_seen(i) for i in _incidents(service, it_pitie, "rule-x")] == [
        (T, T + DAY, 2),
        (T + 2 * DAY + SECOND, T + 2 * DAY + SECOND, 1),
    ]
    assert [_seen(i) for i in _incidents(service, it_pitie, "rule-y")] == [
        (T + DAY - SECOND, T + DAY - SECOND, 1),
        (T + DAY, T + 2 * DAY, 2),
    ]


def test_a_campaign_needs_the_rule_in_two_establishments_within_7_days(
    service: Service,
) -> None:
    tokens = setup_world(service)
    pitie, bordeaux = agent_key(service, tokens, PITIE), agent_key(service, tokens, BORDEAUX)
    week = timedelta(days=7)
    # 7 days and 1 s apart, whichever arrives first: no campaign.
    _send(service, pitie, "window-d-1", _at(DEFENDER_OFF, "p", T))
    _send(service, bordeaux, "window-d-2", _at(DEFENDER_OFF, "b", T + week + SECOND))
    _send(service, bordeaux, "window-d-3", _at(DEFENDER_OFF, "b2", T - week - SECOND))
    assert _campaigns(service, tokens["analyst"]) == {}
    # 7 days apart exactly: a campaign. The batch that brings it also carries a later
    # detection of another rule: each rule's window is counted from its own detections.
    _send(service, pitie, "window-m-1", _at(MIMIKATZ, "p", T))
    _send(
        service,
        bordeaux,
        "window-m-2",
        _at(MIMIKATZ, "b", T + week),
        _at("rule-later", "b", T + 30 * DAY),
    )
    campaigns = _campaigns(service, tokens["analyst"])
    assert set(campaigns) == {MIMIKATZ}
    assert campaigns[MIMIKATZ]["establishments"] == sorted([PITIE, BORDEAUX])
    assert len(campaigns[MIMIKATZ]["incidents"]) == 2


def test_a_published_indicator_seen_in_two_establishments_opens_a_campaign(
    service: Service,
) -> None:
    """No agent names the alert: the service matches the alert's indicator in the events it
    receives, opens each establishment's incident and links them in one campaign."""
    tokens = setup_world(service)
    pitie, bordeaux = agent_key(service, tokens, PITIE), agent_key(service, tokens, BORDEAUX)
    with service.client(tokens["analyst"]) as client:
        made = client.post("/alerts", json=alert_body(sigma_rules=[fresh_rule()], tlp="clear"))
    assert made.status_code == 201, made.text
    rule = f"indicator:{made.json()['id']}"

    def connection(host: str, moment: datetime) -> dict[str, Any]:
        return {
            "@timestamp": iso(moment),
            "host": {"name": host},
            "source": {"ip": "10.1.2.3"},
            "destination": {"ip": C2_IP, "port": 443},
        }

    answers = []
    for key, host, moment in ((pitie, "pc-p", T), (bordeaux, "pc-b", T + 3 * DAY)):
        batch = {"batch_id": f"indicator-{host}", "events": [connection(host, moment)]}
        answers.append(post(service, key, batch))
    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["server_detections"] for a in answers] == [1, 1]
    opened = _incidents(service, tokens["analyst"], rule)
    assert sorted((i["establishment"], i["host"]) for i in opened) == sorted(
        [(PITIE, "pc-p"), (BORDEAUX, "pc-b")]
    )
    campaigns = _campaigns(service, tokens["analyst"])
    assert set(campaigns) == {rule}
    assert campaigns[rule]["establishments"] == sorted([PITIE, BORDEAUX])
    assert {i["id"] for i in opened} == set(campaigns[rule]["incidents"])


# The final report's date, as nis2.py defines "one month": the same day of the next calendar
# month, at the same time (UTC), or that month's last day when it is shorter (relativedelta).
FINAL_REPORT_DUE = [
    (datetime(2026, 1, 15, 9, 30, tzinfo=UTC), datetime(2026, 2, 15, 9, 30, tzinfo=UTC)),
    (datetime(2026, 1, 31, 9, 30, tzinfo=UTC), datetime(2026, 2, 28, 9, 30, tzinfo=UTC)),
    (datetime(2024, 1, 31, 9, 30, tzinfo=UTC), datetime(2024, 2, 29, 9, 30, tzinfo=UTC)),
    (datetime(2026, 3, 31, 23, 59, tzinfo=UTC), datetime(2026, 4, 30, 23, 59, tzinfo=UTC)),
    (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), datetime(2027, 1, 31, 12, 0, tzinfo=UTC)),
    (datetime(2026, 2, 28, 12, 0, tzinfo=UTC), datetime(2026, 3, 28, 12, 0, tzinfo=UTC)),
    # Awareness given in Paris time is counted in UTC: 1 February 00:30 in Paris is
    # 31 January 23:30 UTC, due 28 February 23:30 UTC (1 March 00:30 in Paris).
    (
        datetime.fromisoformat("2026-02-01T00:30:00+01:00"),
        datetime(2026, 2, 28, 23, 30, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(("aware", "due"), FINAL_REPORT_DUE)
def test_final_report_is_due_one_calendar_month_after_awareness(
    aware: datetime, due: datetime
) -> None:
    assert nis2.due_dates(aware)["final_report"] == due


def test_the_service_gives_the_final_report_date_of_a_declared_incident(
    service: Service,
) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        for aware, due in FINAL_REPORT_DUE[1:3]:
            body = form(started_at=iso(aware - DAY), aware_at=iso(aware))
            made = client.post("/incidents", json=body)
            assert made.status_code == 201, made.text
            deadlines = {d["kind"]: d["due"] for d in made.json()["deadlines"]}
            assert datetime.fromisoformat(deadlines["final_report"]) == due
