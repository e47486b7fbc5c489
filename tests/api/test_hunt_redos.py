"""ReDoS on the service's side: retro-hunts over the SQLite store and server-side matching of
arriving batches cost milliseconds for any rule expression and any log line (RE2, see
`detection.sigma.regex`), and hunts never hold up ingestion.

Timing bounds are generous and show a security property (a line an attacker writes costs
milliseconds, not hours); the engine's own cases are in tests/detection/test_sigma_redos.py.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from api.events import sqlite_store
from api.events.sqlite_store import SQLiteEventStore
from api.events.store import RetroHunt
from detection.sigma import load_sigma_rules
from tests.api.conftest import Service
from tests.api.test_alerts import _ingest, agent_of, alert_body, world
from tests.api.test_service import PITIE
from tests.detection.redos_cases import BOUND_SECONDS, CASES, LENGTHS, Case, bounded, rule_text
from tests.detection.sigma_helpers import TS

CHILD_DEADLINE = 60  # seconds for a whole case in the child; a backtracking run never ends
# A whole batch over HTTP (gzip, validation, matching, storage, incidents): generous again,
# where the old engine took minutes on the first, 30-character batch.
BATCH_BOUND_SECONDS = 3.0


def _rule_file(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / "rule.yml"
    path.write_text(rule_text(case), encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_catastrophic_patterns_cost_milliseconds_in_a_retro_hunt(
    tmp_path: Path, case: Case
) -> None:
    (rule,) = load_sigma_rules([_rule_file(tmp_path, case)]).rules

    def timings() -> dict[int, float]:
        store = SQLiteEventStore(tmp_path / "events.db")
        docs = [
            {"@timestamp": (TS + timedelta(seconds=n)).isoformat(), "message": case.evil(n)}
            for n in LENGTHS
        ]
        docs.append({"@timestamp": (TS - timedelta(seconds=1)).isoformat(), "message": case.hit})
        store.add_events(PITIE, "agent-1", docs)
        hunt = store.retro_hunt(rule, since=TS - timedelta(seconds=1), until=TS)
        assert hunt.error is None, hunt.error
        assert len(hunt.hits) == 1, "the rule finds the stored event it matches"
        spent = {}
        for n in LENGTHS:
            since = TS + timedelta(seconds=n)
            start = time.perf_counter()
            hunt = store.retro_hunt(rule, since=since, until=since + timedelta(seconds=1))
            spent[n] = time.perf_counter() - start
            assert hunt.error is None, hunt.error
            assert hunt.hits == []
            # Stop at the first overrun: the old REGEXP would take hours on the next length.
            assert spent[n] < BOUND_SECONDS, spent
        store.close()
        return spent

    spent = bounded(timings, CHILD_DEADLINE)
    assert max(spent.values()) < BOUND_SECONDS, spent


def test_a_hunt_reads_while_an_ingest_holds_the_store(tmp_path: Path) -> None:
    """A hunt reads on a connection of its own: while an ingest holds the store's write lock
    in an open transaction (as `add_events` does), the hunt completes, without the ingest's
    rows, which it sees once they are committed. (Before: the hunt waited for the lock.)"""
    (rule,) = load_sigma_rules([_rule_file(tmp_path, CASES[0])]).rules
    store = SQLiteEventStore(tmp_path / "events.db")
    doc = {"@timestamp": TS.isoformat(), "message": CASES[0].hit}
    store.add_events(PITIE, "agent-1", [doc])
    assert len(store.retro_hunt(rule, since=None, until=None).hits) == 1
    held, release = threading.Event(), threading.Event()

    def ingest_in_progress() -> None:
        with store._lock, store._transaction():
            store._conn.execute(
                "INSERT INTO events (_ts, _establishment, _agent, _doc, _view) "
                "VALUES (0, ?, 'agent-2', '{}', '{\"message\": \"baa\"}')",
                (PITIE,),
            )
            held.set()
            release.wait(30)

    writer = threading.Thread(target=ingest_in_progress)
    writer.start()
    try:
        assert held.wait(10)
        outcome: list[Any] = []
        hunter = threading.Thread(
            target=lambda: outcome.append(store.retro_hunt(rule, since=None, until=None)),
            daemon=True,
        )
        hunter.start()
        hunter.join(10)
        assert not hunter.is_alive(), "the hunt waited for the ingest's lock"
        (hunt,) = outcome
        assert hunt.error is None
        assert len(hunt.hits) == 1
    finally:
        release.set()
        writer.join(10)
    assert len(store.retro_hunt(rule, since=None, until=None).hits) == 2
    store.close()


def _probe_rules() -> list[str]:
    return [
        rule_text(case, rule_id=f"7e1c2b90-4a7f-4c1e-9d55-{n:012d}") for n, case in enumerate(CASES)
    ]


def test_catastrophic_patterns_cost_milliseconds_in_ingestion(service: Service) -> None:
    """The issue's attack: the CERT publishes `(a+)+$` (and the other cases) for everyone; an
    agent's batches of lines of 30, 1,000 and 100,000 characters come back at once."""
    tokens = world(service)
    key = agent_of(service, tokens, PITIE)
    with service.client(tokens["analyst"]) as client:
        made = client.post("/alerts", json=alert_body(sigma_rules=_probe_rules()))
    assert made.status_code == 201, made.text
    hits = [{"@timestamp": TS.isoformat(), "message": case.hit} for case in CASES]
    assert _ingest(service, key, "hits-0001", hits)["server_detections"] >= len(CASES)
    spent = {}
    for n in LENGTHS:
        events = [{"@timestamp": TS.isoformat(), "message": case.evil(n)} for case in CASES]
        start = time.perf_counter()
        outcome = _ingest(service, key, f"evil-{n}", events)
        spent[n] = time.perf_counter() - start
        assert outcome["events_accepted"] == len(CASES)
        # (One case's rule may match another's text: `(a+)+$` takes the wildcards' `aaa…`.)
        assert spent[n] < BATCH_BOUND_SECONDS, spent


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("message|re: '(?<!admin)\\$'", "lookahead or lookbehind"),
        ("message|re: '(?P<q>x).*(?P=q)'", "backreference"),
        ("message|re: '(?>a+)b'", "atomic group"),
        ("message|re: 'a++b'", "possessive quantifier"),
    ],
)
def test_an_alert_whose_rule_re2_cannot_run_is_refused(
    service: Service, value: str, named: str
) -> None:
    tokens = world(service)
    text = rule_text(Case("refused", value, str, ""))
    with service.client(tokens["analyst"]) as client:
        answer = client.post("/alerts", json=alert_body(sigma_rules=[text]))
    assert answer.status_code == 422, answer.text
    assert "sigma_rules[0]" in answer.text
    assert named in answer.text
    assert "RE2" in answer.text


def test_ingestion_completes_while_a_long_hunt_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other way round: a hunt that takes seconds (60 expressions over 2,000 stored lines of
    6,000 characters) is running; an ingest meanwhile returns at once, before the hunt ends.
    (Before: the ingest waited for the whole hunt, which held the store's lock.)"""
    patterns = "\n".join(f"      - 'w{i}[a-z]+\\d+#'" for i in range(60))
    path = tmp_path / "slow.yml"
    path.write_text(
        rule_text(Case("slow hunt", "message|re:\n" + patterns, str, "")), encoding="utf-8"
    )
    (rule,) = load_sigma_rules([path]).rules
    store = SQLiteEventStore(tmp_path / "events.db")
    docs = [{"@timestamp": TS.isoformat(), "message": "w1abc " * 1000} for _ in range(500)]
    for _ in range(4):
        store.add_events(PITIE, "agent-1", docs)
    store.retro_hunt(rule, since=TS, until=TS)  # the view column exists from here on
    # The real REGEXP, which says when the hunt's statement reads its first row.
    reading, real = threading.Event(), sqlite_store.regexp

    def regexp(pattern: str, value: Any) -> Any:
        reading.set()
        return real(pattern, value)

    monkeypatch.setattr(sqlite_store, "regexp", regexp)
    hunts: list[RetroHunt] = []
    hunter = threading.Thread(
        target=lambda: hunts.append(store.retro_hunt(rule, since=None, until=None)), daemon=True
    )
    hunter.start()
    assert reading.wait(60), "the hunt never reached its statement"
    assert hunter.is_alive(), "the hunt was too quick to show anything"
    start = time.perf_counter()
    assert store.add_events(PITIE, "agent-2", docs[:1]) == 1
    took = time.perf_counter() - start
    assert hunter.is_alive(), f"the ingest ({took:.2f} s) waited for the hunt to end"
    hunter.join(60)
    store.close()
    # The hunt itself went on to the end without an error (its lines match none of the
    # expressions: the point is the time it takes).
    assert not hunter.is_alive()
    assert len(hunts) == 1, hunts
    assert hunts[0].error is None, hunts[0].error
