"""Published rule texts under attack (issue 13, findings 3 and 4): YAML bombs and oversized
rules refused fast at publication, each alert's rules compiled once per process, and a rule
id that belongs to one alert for good, so that a TLP:RED rule never reaches an establishment
its alert does not target."""

from __future__ import annotations

import threading
import time
import tracemalloc
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy

from api.alerts.live import LiveRules
from api.alerts.rules import RuleTextError, check_yara, compile_sigma
from api.events.sqlite_store import SQLiteEventStore
from tests.api.conftest import Service
from tests.api.test_alerts import (
    SIGMA_ID,
    SIGMA_RULE,
    agent_of,
    alert_body,
    fresh_rule,
    publish,
    world,
)
from tests.api.test_ingest import post
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE

HEAD = """title: Bomb
id: 6a0c2f9e-0b7e-4d0c-9a55-1f2e3d4c5b6a
status: experimental
logsource: {product: linux, category: process_creation}
"""
# The kind: nested aliases, nine times per level: 9^6 keywords once expanded (the
# code before the fix took 44 s and 590 MB on this machine to compile it).
LEVELS = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"l{n}: &l{n} [{','.join([f'*l{n - 1}'] * 9)}]\n" for n in range(1, 6)
)
LAUGHS = HEAD + LEVELS + "detection:\n  keywords: *l5\n  condition: keywords\n"
# The same through a merge key: the detection takes its keywords from an anchored mapping.
MERGE = (
    HEAD
    + LEVELS
    + "base: &base {keywords: *l5}\n"
    + "detection:\n  <<: *base\n  condition: keywords\n"
)
# A 50 KB string named 729 times.
BIG_STRING = (
    HEAD
    + f"big: &big '{'A' * 50_000}'\n"
    + "b0: &b0 [*big, *big, *big, *big, *big, *big, *big, *big, *big]\n"
    + "b1: &b1 [*b0, *b0, *b0, *b0, *b0, *b0, *b0, *b0, *b0]\n"
    + "b2: &b2 [*b1, *b1, *b1, *b1, *b1, *b1, *b1, *b1, *b1]\n"
    + "detection:\n  keywords: *b2\n  condition: keywords\n"
)
ANCHOR_ONLY = SIGMA_RULE.replace("detection:\n", "detection: &d\n")
DEEP_LISTS = HEAD + "detection:\n  sel: {x: " + "[" * 500 + "]" * 500 + "}\n"
DEEP_MAPS = HEAD + "detection:\n" + "".join(f"{'  ' * n}k{n}:\n" for n in range(1, 150)) + "    v\n"
FLOW = HEAD + "detection:\n  sel: {x: [" + ",".join(["a"] * 20_000) + "]}\n  condition: sel\n"
MANY_LISTS = (
    HEAD
    + "detection:\n"
    + "".join(f"  s{n}: {{x: [{','.join(['a'] * 1_000)}]}}\n" for n in range(6))
    + "  condition: 1 of s*\n"
)
TWO_DOCUMENTS = SIGMA_RULE + "---\n" + fresh_rule()
WIDE_TEXT = SIGMA_RULE.replace("evil-payload.sh", "é" * 40_000)  # 40,000 characters, 80 KB

BOMBS = {
    "nested aliases": (LAUGHS, "YAML anchor &l0"),
    "merge keys": (MERGE, "YAML anchor &l0"),
    "anchor on a big string": (BIG_STRING, "YAML anchor &big"),
    "an anchor alone": (ANCHOR_ONLY, "YAML anchor &d"),
    "deep lists": (DEEP_LISTS, "nested deeper than 12 levels"),
    "deep mappings": (DEEP_MAPS, "nested deeper than 12 levels"),
    "huge flow sequence": (FLOW, "more than 2000 entries"),
    "many values": (MANY_LISTS, "more than 5000 values"),
    "two documents": (TWO_DOCUMENTS, "one YAML document"),
    "over 64 KiB of UTF-8": (WIDE_TEXT, "bytes: a rule text holds at most 65536"),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_cost_nothing_to_refuse(name: str) -> None:
    """Each is refused from the parser's events, before any object is composed: in
    milliseconds and a few hundred kilobytes (the issue's bomb took 8 s and 600 MB)."""
    text, reason = BOMBS[name]
    assert len(text.encode()) <= 100_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(RuleTextError, match=reason):
            compile_sigma(text)
        spent = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert spent < 1.0, f"{name}: {spent:.2f} s"
    assert peak < 2_000_000, f"{name}: {peak} bytes at the peak"


def test_a_lone_surrogate_is_a_refusal_not_a_crash() -> None:
    """JSON can carry one; UTF-8 has no bytes for it (the API's schema refuses it first;
    the rule checks do not rely on that)."""
    with pytest.raises(RuleTextError, match="not Unicode"):
        compile_sigma(SIGMA_RULE.replace("evil", "\ud800"))
    with pytest.raises(RuleTextError, match="not Unicode"):
        check_yara('rule s { strings: $a = "\udfff" condition: $a }')


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_refused_at_publication_and_edit(service: Service, name: str) -> None:
    text, reason = BOMBS[name]
    tokens = world(service)
    alert = publish(service, tokens["analyst"])
    with service.client(tokens["analyst"]) as client:
        started = time.perf_counter()
        made = client.post("/alerts", json=alert_body(sigma_rules=[fresh_rule(), text]))
        edited = client.patch(f"/alerts/{alert['id']}", json={"sigma_rules": [text]})
        spent = time.perf_counter() - started
        listed = client.get("/alerts").json()
        kept = client.get(f"/alerts/{alert['id']}").json()
    for answer in (made, edited):
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        if isinstance(detail, str):  # refused by the rule check, with the rule's index
            assert "sigma_rules[" in detail
            assert reason in detail
        else:  # refused by the schema's size bound (characters) first
            assert "sigma_rules" in str(detail[0]["loc"]), detail
    assert spent < 5.0, f"{name}: {spent:.2f} s for two requests"
    assert listed["total"] == 1  # nothing published, the earlier alert untouched
    assert kept["sigma_rules"] == [SIGMA_RULE]


def test_rules_sizes_and_counts_are_bounded(service: Service) -> None:
    tokens = world(service)
    big_yara = 'rule big { strings: $a = "' + "x" * 70_000 + '" condition: $a }'
    wide_yara = 'rule wide { strings: $a = "' + "é" * 40_000 + '" condition: $a }'
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sigma_rules": [fresh_rule() for _ in range(101)]}, "at most 100"),
        ({"yara_rules": ["rule r { condition: true }"] * 101}, "at most 100"),
        ({"yara_rules": [big_yara]}, "at most 65536"),
        ({"yara_rules": [wide_yara]}, "yara_rules[0]: 80"),
        ({"sigma_rules": [SIGMA_RULE + "#" * 70_000]}, "at most 65536"),
        # 20 rules of 60 KB: each within its bound, 1.2 MB in all.
        ({"sigma_rules": [fresh_rule() + "#" * 60_000 for _ in range(20)]}, "per alert"),
        ({"products": ["PACS"] * 101}, "at most 100"),
        ({"products": ["P" * 201]}, "at most 200"),
        ({"cves": ["CVE-2026-" + "1" * 1_000_000]}, "at most 40"),
        ({"cves": ["CVE-2026-1234"] * 201}, "at most 200"),
        ({"description": "d" * 20_001}, "at most 20000"),
        ({"title": "t" * 301}, "at most 300"),
        (
            {"indicators": [{"type": "ip", "value": "192.0.2.1"}] * 10_001},
            "at most 10000",
        ),
        ({"indicators": [{"type": "domain", "value": "a" * 3_000}]}, "at most 2048"),
    ]
    with service.client(tokens["analyst"]) as client:
        for change, reason in cases:
            started = time.perf_counter()
            answer = client.post("/alerts", json=alert_body(**change))
            spent = time.perf_counter() - started
            assert answer.status_code == 422, (change.keys(), answer.text[:300])
            assert reason in answer.text, (change.keys(), answer.text[:300])
            assert spent < 5.0, (change.keys(), spent)
        assert client.get("/alerts").json()["total"] == 0
        # At the bounds, it is published; an edit of one list cannot take it over.
        answer = client.post(
            "/alerts",
            json=alert_body(
                products=["P" * 200] * 100,
                indicators=[
                    {"type": "ip", "value": f"10.0.{n // 256}.{n % 256}"} for n in range(10_000)
                ],
                sigma_rules=[fresh_rule() + "#" * 60_000 for _ in range(10)],
            ),
        )
        assert answer.status_code == 201, answer.text[:300]
        more = ["rule r { condition: true } //" + "#" * 60_000 for _ in range(10)]
        edited = client.patch(f"/alerts/{answer.json()['id']}", json={"yara_rules": more})
        assert edited.status_code == 422, edited.text[:300]
        assert "per alert" in edited.json()["detail"]


def test_each_rule_is_compiled_once_per_process(lives: list[LiveRules], service: Service) -> None:
    """A bundle change recompiles only the rules that changed, not every alert's."""
    tokens = world(service)
    (live,) = lives
    for n in range(5):
        publish(service, tokens["analyst"], title=f"Alert {n}", sigma_rules=[fresh_rule()])
    key = agent_of(service, tokens, PITIE)
    _ingest(service, key, "warm", [_event("nothing")])
    assert live.cache.compiled == 5  # at publication; the live rules found them compiled
    extra = publish(service, tokens["analyst"], title="Sixth", sigma_rules=[fresh_rule()])
    _ingest(service, key, "sixth", [_event("nothing")])
    assert live.cache.compiled == 6
    with service.client(tokens["analyst"]) as client:
        assert client.post(f"/alerts/{extra['id']}/withdraw").status_code == 200
    _ingest(service, key, "withdrawn", [_event("nothing")])
    assert live.cache.compiled == 6
    assert len(live.cache._rules) == 5  # the withdrawn rule is no longer held


# Rule ids: one alert each (finding 4) -----------------------------------------------------------

RED_RULE = """title: RED - exploitation of the regional PACS by group X
id: 9b3d5a10-6c1e-4f2a-8d7b-2e4f6a8c0d13
status: experimental
logsource: {product: linux, category: process_creation}
level: critical
detection:
  selection: {process.command_line|contains: 'red-secret-marker'}
  condition: selection
"""
RED_ID = "9b3d5a10-6c1e-4f2a-8d7b-2e4f6a8c0d13"
RED_TITLE = "RED - exploitation of the regional PACS by group X"


def _other_logic(title: str, marker: str) -> str:
    """The RED rule's id with another title and logic."""
    return RED_RULE.replace(RED_TITLE, title).replace("red-secret-marker", marker)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"tlp": "red", "target": {"regions": ["Île-de-France"]}}, {"tlp": "clear"}),
        (
            {"tlp": "amber", "target": {"regions": ["Île-de-France"]}},
            {"tlp": "amber", "target": {"regions": ["Nouvelle-Aquitaine"]}},
        ),
        ({"tlp": "clear"}, {"tlp": "red", "target": {"kinds": ["EHPAD"]}}),
    ],
)
def test_a_rule_id_belongs_to_one_alert(
    service: Service, first: dict[str, Any], second: dict[str, Any]
) -> None:
    tokens = world(service)
    red = publish(service, tokens["analyst"], title="First", sigma_rules=[RED_RULE], **first)
    reused = _other_logic("Clear title", "clear-marker")
    with service.client(tokens["analyst"]) as client:
        # In a new alert, alone or among other rules.
        for rules in ([reused], [fresh_rule(), reused], [RED_RULE]):
            made = client.post("/alerts", json=alert_body(sigma_rules=rules, **second))
            assert made.status_code == 409, made.text
            assert made.json()["code"] == "rule_id_taken"
            assert RED_ID in made.json()["detail"]
        # In an edit of another alert.
        other = client.post(
            "/alerts", json=alert_body(sigma_rules=[fresh_rule()], title="Other", **second)
        ).json()
        edited = client.patch(f"/alerts/{other['id']}", json={"sigma_rules": [reused]})
        assert edited.status_code == 409, edited.text
        assert edited.json()["code"] == "rule_id_taken"
        # The alert itself may change its own rule's logic, drop it and take it back.
        for rules in ([reused], [fresh_rule()], [RED_RULE]):
            again = client.patch(f"/alerts/{red['id']}", json={"sigma_rules": rules})
            assert again.status_code == 200, again.text
        # A withdrawn alert keeps its ids: stored detections and incidents name them.
        assert client.post(f"/alerts/{red['id']}/withdraw").status_code == 200
        late = client.post("/alerts", json=alert_body(sigma_rules=[reused], **second))
        assert late.status_code == 409, late.text
        assert client.get("/alerts").json()["total"] == 2


def test_vigie_own_rule_ids_are_refused(service: Service) -> None:
    tokens = world(service)
    mimikatz = SIGMA_RULE.replace(SIGMA_ID, "abf9fb10-96fd-4f5f-bfb7-2cfacf49fa93")
    with service.client(tokens["analyst"]) as client:
        answer = client.post("/alerts", json=alert_body(sigma_rules=[mimikatz]))
    assert answer.status_code == 409, answer.text
    assert "Vigie's own rules" in answer.json()["detail"]


def test_two_publications_racing_for_one_id_get_one_alert(service: Service) -> None:
    tokens = world(service)
    answers: list[int] = []

    def publish_one(n: int) -> None:
        with service.client(tokens["analyst"]) as client:
            body = alert_body(title=f"Racing {n}", sigma_rules=[RED_RULE], tlp="clear")
            answers.append(client.post("/alerts", json=body).status_code)

    threads = [threading.Thread(target=publish_one, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 409, 409, 409], answers


@pytest.mark.parametrize(
    ("red_target", "later_target"),
    [
        ({"regions": ["Île-de-France"]}, {"all": True}),
        ({"regions": ["Île-de-France"]}, {"regions": ["Nouvelle-Aquitaine"]}),
        ({"kinds": ["CHU"], "regions": ["Île-de-France"]}, {"kinds": ["CHU"]}),
    ],
)
def test_a_red_rule_id_reused_before_the_fix_never_reaches_the_untargeted(
    lives: list[LiveRules],
    service: Service,
    red_target: dict[str, Any],
    later_target: dict[str, Any],
) -> None:
    """A database from before the fix may hold one rule id in two alerts (the checks at
    publication now refuse it; here the later alert is written directly in the database, as
    the old code let it). The live rules tell them apart by alert: Bordeaux, which only the
    later alert targets, gets that alert's detections and incidents, never the RED one's
    logic, title or scope; Pitié, which the RED alert targets, still gets it."""
    tokens = world(service)
    publish(
        service,
        tokens["analyst"],
        title="Red",
        tlp="red",
        sigma_rules=[RED_RULE],
        target=red_target,
    )
    later = publish(
        service,
        tokens["analyst"],
        title="Clear alert",
        tlp="clear",
        sigma_rules=[fresh_rule()],
        indicators=[],
        target=later_target,
    )
    reused = _other_logic("Clear rule", "clear-marker")
    version = _write_as_before_the_fix(service, later["id"], [reused])
    (live,) = lives
    live.published(version)  # looked at again on the next batch

    events = [_event("sh red-secret-marker"), _event("sh clear-marker")]
    bordeaux = _ingest(service, agent_of(service, tokens, BORDEAUX), "b", events)
    pitie = _ingest(service, agent_of(service, tokens, PITIE), "p", events)
    assert bordeaux["server_detections"] == 1  # the later alert's logic only
    found = _detections(service, BORDEAUX)
    assert [(d["rule_id"], d["rule_title"]) for d in found] == [(RED_ID, "Clear rule")]
    assert found[0]["meta"]["alert_id"] == later["id"]
    assert "clear-marker" in found[0]["event"]["process"]["command_line"]
    mine = _detections(service, PITIE)
    assert {d["rule_title"] for d in mine} >= {RED_TITLE}
    assert pitie["server_detections"] >= 1

    with service.client(tokens["admin"]) as client:
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
    it_bordeaux = service.login("it_bordeaux", PASSWORD)
    with service.client(it_bordeaux) as client:
        seen = [
            client.get("/incidents", params={"limit": 500}).text,
            client.get("/alerts").text,
        ]
    with service.client(agent_of(service, tokens, BORDEAUX)) as client:
        seen.append(client.get("/alerts/bundle").text)
    for text in seen:
        assert RED_TITLE not in text
        assert "red-secret-marker" not in text
    assert "Clear rule" in seen[0]


# Helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def lives(monkeypatch: pytest.MonkeyPatch) -> list[LiveRules]:
    """The live rules of the service the test starts (ask for it before `service`)."""
    made: list[LiveRules] = []
    original = LiveRules.__init__

    def remember(self: LiveRules, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(LiveRules, "__init__", remember)
    return made


def _event(command_line: str) -> dict[str, Any]:
    return {
        "@timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "process": {"command_line": command_line},
        "host": {"name": f"host-{uuid.uuid4().hex[:6]}"},
    }


def _ingest(service: Service, key: str, name: str, events: list[dict[str, Any]]) -> Any:
    answer = post(
        service, key, {"batch_id": f"batch-{name}-{uuid.uuid4().hex[:8]}", "events": events}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _detections(service: Service, finess: str) -> list[dict[str, Any]]:
    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        return list(store.search_detections(establishment=finess, limit=100))
    finally:
        store.close()


def _write_as_before_the_fix(service: Service, alert_id: str, rules: list[str]) -> int:
    """Give an alert rule texts without the checks, at a new national version, as an old
    service would have; returns that version."""
    from api.alerts.models import Alert, BundleState

    engine = sqlalchemy.create_engine(service.settings.database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sqlalchemy.update(Alert).where(Alert.id == alert_id).values(sigma_rules=rules)
            )
            connection.execute(
                sqlalchemy.update(BundleState).values(version=BundleState.version + 1)
            )
            version = connection.scalar(sqlalchemy.select(BundleState.version))
    finally:
        engine.dispose()
    return int(version or 0)


def test_the_upgrade_gives_each_existing_rule_id_to_the_oldest_alert(database_url: str) -> None:
    """Alerts published before the fix may share an id (the older keeps it) or hold a bomb
    (skipped by the upgrade, not expanded)."""
    from datetime import timedelta

    from api.alerts.models import Alert
    from api.db import make_engine, upgrade

    engine = make_engine(database_url)
    now = datetime.now(UTC)
    try:
        upgrade(engine, "0009")
        rows = [
            ("newer", now, [_other_logic("Clear rule", "clear-marker")]),
            ("older", now - timedelta(days=1), [RED_RULE.replace(RED_ID, RED_ID.upper())]),
            ("bomb", now - timedelta(days=2), [LAUGHS, SIGMA_RULE]),
        ]
        with engine.begin() as connection:
            for alert_id, created, rules in rows:
                connection.execute(
                    sqlalchemy.insert(Alert).values(
                        id=alert_id,
                        title=alert_id,
                        description="",
                        severity="high",
                        tlp="red",
                        status="published",
                        products=[],
                        cves=[],
                        indicators=[],
                        sigma_rules=rules,
                        yara_rules=[],
                        target_all=True,
                        target_regions=[],
                        target_kinds=[],
                        created_by="analyst",
                        created_at=created,
                        updated_at=created,
                        bundle_version=1,
                        retro_hunt_days=0,
                    )
                )
        started = time.perf_counter()
        upgrade(engine)
        spent = time.perf_counter() - started
        with engine.connect() as connection:
            found = connection.execute(
                sqlalchemy.text("SELECT rule_id, alert_id FROM alert_rule_ids")
            )
            held = {str(rule_id): str(alert_id) for rule_id, alert_id in found}
    finally:
        engine.dispose()
    assert held == {RED_ID: "older", SIGMA_ID: "bomb"}
    assert spent < 20  # the bomb is not expanded (that alone took 44 s)
