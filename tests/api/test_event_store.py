"""One contract for every event store: SQLite always, Elasticsearch when
`VIGIE_ELASTICSEARCH_URL` points at a server (each run on indices of its own, deleted after).

Retro-hunts are checked against the in-process engine: over the same events, a rule's query
in the store selects what `SigmaEngine` matches (Vigie's own rules over their positive and
negative cases; SigmaHQ's Windows rules over the EVTX corpus when it is checked out).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.events.store import EventStore, InvalidDocument
from detection.event import Event
from detection.sigma import SigmaEngine, SigmaRuleSet, load_sigma_rules
from detection.sources.jsonlog import event_from_object
from tests import sigmahq
from tests.conftest import REPO

ES_URL = os.environ.get("VIGIE_ELASTICSEARCH_URL")
A, B = "750000001", "690000002"  # two establishments (FINESS)
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
CASES = REPO / "tests" / "rules" / "sigma"
_MINUTE = timedelta(minutes=1)


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "sqlite":
        from api.events.sqlite_store import SQLiteEventStore

        sqlite_store = SQLiteEventStore.in_data_dir(tmp_path)
        yield sqlite_store
        sqlite_store.close()
        return
    if not ES_URL:
        pytest.skip("VIGIE_ELASTICSEARCH_URL is not set: no Elasticsearch server to test against")
    from api.events.elastic_store import ElasticEventStore

    prefix = f"vigie-test-{secrets.token_hex(4)}"
    es_store = ElasticEventStore(ES_URL, prefix=prefix, refresh=True, replicas=0)
    yield es_store
    es_store.client.indices.delete(index=f"{prefix}-*", allow_no_indices=True)
    es_store.client.indices.delete_index_template(name=f"{prefix}-*")
    es_store.close()


def _event(minutes: float, command: str = "cmd.exe /c whoami") -> dict[str, Any]:
    """A Sysmon process creation, `minutes` after T0, as an agent ships it."""
    ts = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    rendering = {
        "Event": {
            "System": {
                "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                "EventID": 1,
                "Channel": "Microsoft-Windows-Sysmon/Operational",
                "Computer": "PC-01",
                "EventRecordID": int(minutes * 10),
                "TimeCreated": {"#attributes": {"SystemTime": ts}},
            },
            "EventData": {"Image": "C:\\Windows\\System32\\cmd.exe", "CommandLine": command},
        }
    }
    return event_from_object(rendering, "test").to_ecs()


def _detection(minutes: float, rule_id: str = "r-1") -> dict[str, Any]:
    ts = (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    return {
        "engine": "sigma",
        "rule_id": rule_id,
        "rule_title": "t",
        "level": "high",
        "source": "s",
        "timestamp": ts,
    }


# --- add, search, count -----------------------------------------------------------------------


def test_events_are_stored_and_found_newest_first(store: EventStore) -> None:
    assert store.add_events(A, "agent-a", [_event(m) for m in (0, 1, 2)]) == 3
    found = store.search_events(establishment=A, limit=10)
    assert [d["@timestamp"] for d in found] == [
        "2026-11-20T10:02:00Z",
        "2026-11-20T10:01:00Z",
        "2026-11-20T10:00:00Z",
    ]
    assert found[0]["winlog"]["event_data"]["CommandLine"] == "cmd.exe /c whoami"
    assert found[0]["organization"]["id"] == A
    assert found[0]["agent"]["id"] == "agent-a"
    assert store.count(establishment=A) == 3
    assert len(store.search_events(establishment=A, limit=2)) == 2


def test_detections_are_stored_apart_from_events(store: EventStore) -> None:
    assert store.add_detections(A, [_detection(0), _detection(5, "r-2")]) == 2
    assert store.count("detections", establishment=A) == 2
    assert store.count("events", establishment=A) == 0
    found = store.search_detections(establishment=A)
    assert [d["rule_id"] for d in found] == ["r-2", "r-1"]


def test_a_document_without_time_is_refused_and_nothing_of_the_batch_is_stored(
    store: EventStore,
) -> None:
    bad = _event(1)
    del bad["@timestamp"]
    with pytest.raises(InvalidDocument) as caught:
        store.add_events(A, "agent-a", [_event(0), bad])
    assert caught.value.index == 1
    assert store.count(establishment=A) == 0


# --- isolation --------------------------------------------------------------------------------


def test_an_establishment_never_sees_another_ones_events(store: EventStore) -> None:
    store.add_events(A, "agent-a", [_event(0), _event(1)])
    forged = _event(2)
    forged["organization"] = {"id": A}  # an agent of B claiming to be A's
    store.add_events(B, "agent-b", [forged])
    store.add_detections(B, [_detection(2)])
    assert store.count(establishment=A) == 2
    assert store.count(establishment=B) == 1
    assert store.count() == 3
    assert {d["organization"]["id"] for d in store.search_events(establishment=A)} == {A}
    assert [d["organization"]["id"] for d in store.search_events(establishment=B)] == [B]
    assert store.search_detections(establishment=A) == []
    assert len(store.search_events(establishment=None)) == 3  # the CERT sees every one


# --- time ranges and retention ------------------------------------------------------------------


def test_time_ranges_include_since_and_exclude_until(store: EventStore) -> None:
    # Two days apart: with Elasticsearch, two daily indices.
    store.add_events(A, "agent-a", [_event(m) for m in (0, 30, 60, 24 * 60)])
    since, until = T0 + timedelta(minutes=30), T0 + timedelta(minutes=60)
    assert store.count(establishment=A, since=since, until=until) == 1
    found = store.search_events(establishment=A, since=since, until=until)
    assert [d["@timestamp"] for d in found] == ["2026-11-20T10:30:00Z"]
    assert store.count(establishment=A, since=T0 + timedelta(hours=1)) == 2
    assert store.count(establishment=A, until=T0) == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        store.count(since=datetime(2026, 11, 20))  # noqa: DTZ001 - the point of the test


def test_purge_removes_what_is_older_than_the_retention(store: EventStore) -> None:
    day = 24 * 60
    store.add_events(A, "agent-a", [_event(m) for m in (-2 * day, -day, 0, 30)])
    store.add_events(B, "agent-b", [_event(10)])
    store.add_detections(A, [_detection(-day), _detection(30)])
    # The boundary falls inside a day: whole older days go, and part of this one.
    assert store.purge(T0 + timedelta(minutes=20)) == 5
    assert store.count() == 1
    assert store.count("detections") == 1
    assert [d["@timestamp"] for d in store.search_events(establishment=None)] == [
        "2026-11-20T10:30:00Z"
    ]
    assert store.purge(T0) == 0


# --- retro-hunts ------------------------------------------------------------------------------


def _case_events() -> list[Event]:
    """Every event of Vigie's rule cases, positive and negative."""
    events: list[Event] = []
    for path in sorted(CASES.glob("*.json")):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        for obj in loaded if isinstance(loaded, list) else [loaded]:
            events.append(event_from_object(obj, path.name))
    return events


def _engine_hits(ruleset: SigmaRuleSet, events: list[Event]) -> dict[str, set[tuple[str, str]]]:
    """Per rule id, the (establishment, record key) of every event the engine matches."""
    engine = SigmaEngine(ruleset)
    hits: dict[str, set[tuple[str, str]]] = {}
    for event in events:
        for rule in engine.matching_rules(event)[1]:
            hits.setdefault(rule.id, set()).add(_key(event.to_ecs()))
    return hits


def _key(doc: dict[str, Any]) -> tuple[str, str]:
    """What tells stored events apart in these tests: establishment, source and record."""
    winlog = doc.get("winlog") or {}
    record = f"{doc['log']['file']['path']}#{winlog.get('record_id')}#{doc['@timestamp']}"
    return (doc.get("organization", {}).get("id", ""), record)


def _store_all(store: EventStore, events: list[Event], establishment: str) -> list[Event]:
    stamped = [Event(e.timestamp, e.fields, e.source, establishment, "agent") for e in events]
    for start in range(0, len(stamped), 2000):
        store.add_events(
            establishment, "agent", [e.to_ecs() for e in stamped[start : start + 2000]]
        )
    return stamped


def _compare(
    store: EventStore,
    ruleset: SigmaRuleSet,
    events: list[Event],
    matches: Mapping[str, Iterable[int]] | None = None,
) -> dict[str, Any]:
    """Hunt every rule in A's events; the engine's matches on A's events are the expectation
    (`matches`: rule id -> indexes in `events`, when already known)."""
    if matches is None:
        expected = _engine_hits(ruleset, events)
    else:
        expected = {
            rule_id: {_key(events[index].to_ecs()) for index in indexes}
            for rule_id, indexes in matches.items()
        }
    mismatches: list[str] = []
    refused: dict[str, str] = {}
    hunted = 0
    matched = 0
    for rule in ruleset.rules:
        hunt = store.retro_hunt(rule, since=None, until=None, establishment=A, limit=100_000)
        if not hunt.ok:
            refused[rule.id] = hunt.error or ""
            continue
        hunted += 1
        assert all(h["establishment"] == A for h in hunt.hits)
        assert all(h["rule_id"] == rule.id and h["engine"] == "sigma" for h in hunt.hits)
        got = {_key(h["event"]) for h in hunt.hits}
        want = {k for k in expected.get(rule.id, set()) if k[0] == A}
        matched += len(want)
        if got != want:
            mismatches.append(
                f"{rule.id} ({rule.title}, {rule.path}): engine only {len(want - got)}, "
                f"store only {len(got - want)}; query: {hunt.query}"
            )
    return {"hunted": hunted, "matched": matched, "refused": refused, "mismatches": mismatches}


def test_retro_hunt_of_vigies_rules_finds_what_the_engine_finds(store: EventStore) -> None:
    ruleset = load_sigma_rules([REPO / "rules" / "sigma"])
    assert not ruleset.errors
    events = _case_events()
    mine = _store_all(store, events, A)
    _store_all(store, events, B)  # the same events elsewhere: never in A's hunt
    result = _compare(store, ruleset, mine)
    assert not result["mismatches"], "\n".join(result["mismatches"])
    assert not result["refused"], result["refused"]
    assert result["hunted"] == len(ruleset.rules)
    assert result["matched"] >= len(ruleset.rules)  # every rule has a positive case


WHOAMI_RULE = """title: whoami
id: 00000000-0000-4000-8000-000000000002
status: test
logsource: {product: windows, category: process_creation}
detection:
  selection: {Image|endswith: '\\cmd.exe', CommandLine|contains: 'WHOAMI /ALL'}
  condition: selection
"""


def test_retro_hunt_is_scoped_by_time_and_establishment(store: EventStore, tmp_path: Path) -> None:
    (tmp_path / "whoami.yml").write_text(WHOAMI_RULE, encoding="utf-8")
    (rule,) = load_sigma_rules([tmp_path]).rules
    store.add_events(A, "agent-a", [_event(m, "whoami /all") for m in (0, 90)] + [_event(91)])
    store.add_events(B, "agent-b", [_event(90, "whoami /all")])
    everything = store.retro_hunt(rule, since=None, until=None, establishment=A)
    assert [h["event"]["@timestamp"] for h in everything.hits] == [
        "2026-11-20T10:00:00Z",
        "2026-11-20T11:30:00Z",
    ]
    hunt = store.retro_hunt(
        rule, since=T0 + timedelta(minutes=60), until=T0 + timedelta(hours=2), establishment=A
    )
    assert hunt.ok, hunt.error
    assert [(h["event"]["@timestamp"], h["establishment"]) for h in hunt.hits] == [
        ("2026-11-20T11:30:00Z", A)
    ]
    assert len(store.retro_hunt(rule, since=None, until=None).hits) == 3  # the CERT's hunt
    limited = store.retro_hunt(rule, since=None, until=None, limit=1)
    assert limited.truncated
    assert len(limited.hits) == 1


def test_a_rule_the_store_cannot_query_is_reported_not_raised(
    store: EventStore, tmp_path: Path
) -> None:
    (tmp_path / "kw.yml").write_text(
        "title: keywords only\nid: 00000000-0000-4000-8000-000000000001\nstatus: test\n"
        "logsource: {product: windows, service: security}\n"
        "detection:\n  keywords: ['mimikatz']\n  condition: keywords\n",
        encoding="utf-8",
    )
    (rule,) = load_sigma_rules([tmp_path]).rules
    hunt = store.retro_hunt(rule, since=None, until=None, establishment=A)
    if hunt.ok:  # Lucene expresses keywords; SQLite does not
        assert hunt.hits == []
    else:
        assert "keywords" in (hunt.error or "")


@sigmahq.sqlite_side
def test_retro_hunt_of_sigmahq_rules_over_the_evtx_corpus(store: EventStore) -> None:
    ruleset = sigmahq.windows_rules()
    events = list(sigmahq.evtx_events())
    assert len(events) > 3000
    mine = _store_all(store, events, A)
    # What the engine matches does not depend on the establishment stamped on the events.
    result = _compare(store, ruleset, mine, sigmahq.engine_matches())
    print(  # the figures, shown with `pytest -s`
        f"\n{result['hunted']} rules hunted over {len(events)} events, "
        f"{result['matched']} engine matches, {len(result['refused'])} refused, "
        f"{len(result['mismatches'])} mismatches"
    )
    for line in result["mismatches"]:
        print(f"  {line}")
    assert result["matched"] > 500
    assert result["hunted"] >= 0.95 * len(ruleset.rules)
    assert not result["mismatches"], "\n".join(result["mismatches"])


def test_sqlite_keeps_the_views_ingestion_computed_as_it_would_compute_them(
    tmp_path: Path,
) -> None:
    """Ingestion hands the store the Sigma views it already has: what is kept must be what
    the store computes itself, for Windows and for flattened documents alike."""
    import sqlite3

    from api.events.sqlite_store import SQLiteEventStore
    from api.events.store import stamped_event

    docs = [_event(1), {"@timestamp": "2026-11-20T10:00:00Z", "destination": {"ip": "10.0.0.1"}}]
    store = SQLiteEventStore(tmp_path / "a.db")
    given = SQLiteEventStore(tmp_path / "b.db")
    try:
        store.add_events("750100125", "agent-1", docs)
        stamped = [stamped_event(d, "750100125", "agent-1") for d in docs]
        views = [
            Event(datetime.now(UTC), {k: v for k, v in d.items() if k != "@timestamp"}).sigma_view()
            for d in stamped
        ]
        given.add_events("750100125", "agent-1", docs, views)
        with pytest.raises(ValueError, match="views"):
            given.add_events("750100125", "agent-1", docs, views[:1])
    finally:
        store.close()
        given.close()

    def kept(path: Path) -> list[str]:
        with sqlite3.connect(path) as connection:
            return [r[0] for r in connection.execute("SELECT _view FROM events ORDER BY _id")]

    assert kept(tmp_path / "a.db") == kept(tmp_path / "b.db")
    assert "organization.id" in kept(tmp_path / "a.db")[1]


# --- stable ids: a document stored twice is kept once -----------------------------------------


def test_an_id_already_stored_is_not_stored_again(store: EventStore) -> None:
    """The same batch again (a retry, a takeover after a crash), the same events in another
    batch (re-formed after an agent restart), or only some of them: each id is kept once, and
    the answer counts what was stored, so the caller counts the duplicates."""
    events = [_event(m, f"cmd {m}") for m in range(5)]
    ids = [f"agent:1/spool-{m}" for m in range(5)]
    assert store.add_events(A, "agent-1", events, ids=ids) == 5
    assert store.add_events(A, "agent-1", events, ids=ids) == 0  # the same batch again
    assert store.add_events(A, "agent-1", events[3:], ids=ids[3:]) == 0  # part of it
    mixed = [*events[:2], _event(9, "new one")]
    assert store.add_events(A, "agent-1", mixed, ids=[*ids[:2], "agent:1/spool-9"]) == 1
    assert store.count("events", establishment=A) == 6
    # Ids are the caller's to scope: another agent's id never collides with this one's.
    assert store.add_events(A, "agent-2", events[:1], ids=["agent:2/spool-0"]) == 1
    # Without ids, nothing is deduplicated (a caller that cannot say what is the same).
    assert store.add_events(A, "agent-1", events[:2]) == 2

    detections = [_detection(m, f"r-{m}") for m in range(3)]
    dids = [f"agent:1/d-{m}" for m in range(3)]
    assert store.add_detections(A, detections, ids=dids) == 3
    assert store.add_detections(A, detections, ids=dids) == 0
    assert store.add_detections(A, detections[:1], ids=["agent:1/d-new"]) == 1
    assert store.count("detections", establishment=A) == 4


def test_ids_must_match_the_documents(store: EventStore) -> None:
    with pytest.raises(ValueError, match="2 ids for 1 documents"):
        store.add_events(A, "agent-1", [_event(1)], ids=["a", "b"])
    with pytest.raises(ValueError, match="0 ids for 1 documents"):
        store.add_detections(A, [_detection(1)], ids=[])
    assert store.count("events") == 0


def test_documents_are_read_back_by_id_within_their_establishment(store: EventStore) -> None:
    """What maturity evidence links to: the documents of the ids asked for, in that order,
    each once, as stored; an id the store lacks or that is another establishment's is left
    out; events and detections are apart."""
    events = [_event(m, f"cmd {m}") for m in range(4)]
    ids = [f"agent:1/e-{m}" for m in range(4)]
    store.add_events(A, "agent-1", events, ids=ids)
    store.add_events(B, "agent-2", [_event(9, "B's")], ids=["agent:2/e-0"])
    store.add_detections(A, [_detection(1)], ids=["agent:1/d-0"])
    store.add_detections(B, [_detection(2, "r-b")], ids=["agent:2/d-0"])

    asked = [ids[3], "agent:2/e-0", ids[0], "agent:1/nowhere", ids[3], "agent:1/d-0"]
    found = store.events_by_ids(A, asked)
    assert [f["id"] for f in found] == [ids[3], ids[0]]
    assert found[1]["document"] == store.search_events(establishment=A, until=T0 + _MINUTE)[0]
    assert found[0]["document"]["winlog"]["event_data"]["CommandLine"] == "cmd 3"
    assert {f["document"]["organization"]["id"] for f in found} == {A}
    # The same id through B's door: B's event, never A's.
    (theirs,) = store.events_by_ids(B, ["agent:2/e-0", *ids])
    assert theirs["document"]["winlog"]["event_data"]["CommandLine"] == "B's"
    assert store.events_by_ids(A, []) == []

    (detection,) = store.detections_by_ids(A, ["agent:1/d-0", "agent:2/d-0", ids[0]])
    assert detection == {"id": "agent:1/d-0", "document": {**_detection(1), "establishment": A}}
    assert [d["document"]["rule_id"] for d in store.detections_by_ids(B, ["agent:2/d-0"])] == [
        "r-b"
    ]
    with pytest.raises(TypeError, match="not one string"):
        store.events_by_ids(A, ids[0])


def test_an_events_file_from_before_ids_gets_them_and_keeps_its_rows(tmp_path: Path) -> None:
    """A file made by the previous version (no `_uid`): opened, it gains the column and its
    unique index; old rows stay, new ones are deduplicated."""
    import sqlite3

    from api.events.sqlite_store import FILE_NAME, SQLiteEventStore

    old = sqlite3.connect(tmp_path / FILE_NAME)
    old.executescript(
        "CREATE TABLE events (_id INTEGER PRIMARY KEY, _ts INTEGER NOT NULL, _establishment "
        "TEXT NOT NULL, _agent TEXT NOT NULL, _doc TEXT NOT NULL, _view TEXT NOT NULL);"
        "INSERT INTO events VALUES (1, 0, 'x', 'a', '{}', '{}');"
        "CREATE TABLE detections (_id INTEGER PRIMARY KEY, _ts INTEGER NOT NULL, "
        "_establishment TEXT NOT NULL, rule_id TEXT NOT NULL, level TEXT NOT NULL, "
        "_doc TEXT NOT NULL);"
    )
    old.close()
    store = SQLiteEventStore.in_data_dir(tmp_path)
    try:
        assert store.count("events") == 1
        assert store.add_events(A, "agent-1", [_event(1)], ids=["u-1"]) == 1
        assert store.add_events(A, "agent-1", [_event(1)], ids=["u-1"]) == 0
        assert store.add_detections(A, [_detection(1)], ids=["d-1"]) == 1
        assert store.add_detections(A, [_detection(1)], ids=["d-1"]) == 0
    finally:
        store.close()
    reopened = SQLiteEventStore.in_data_dir(tmp_path)  # opened again: nothing to add
    assert reopened.count("events") == 2
    reopened.close()


def test_elasticsearch_bulk_body_creates_documents_under_their_ids() -> None:
    """Without a server: the bulk request body the client sends (the official helpers turn
    each action into the two NDJSON lines) says `create`, with the stable id as `_id`, so
    that Elasticsearch refuses a document it has (409) instead of indexing it twice."""
    from elasticsearch import helpers

    from api.events.elastic_store import ElasticEventStore, bulk_action

    store = ElasticEventStore("http://127.0.0.1:9", prefix="vigie")  # never contacted
    doc = _event(1)
    first = bulk_action(store.index_for("events", T0), doc, "agent:1/spool-1")
    again = bulk_action(store.index_for("events", T0), dict(doc), "agent:1/spool-1")
    other = bulk_action(store.index_for("events", T0), doc, "agent:2/spool-1")
    header, source = helpers.expand_action(first)
    assert list(header) == ["create"]
    assert header["create"]["_index"] == "vigie-events-2026.11.20"
    assert header["create"]["_id"] == helpers.expand_action(again)[0]["create"]["_id"]
    assert header["create"]["_id"] != helpers.expand_action(other)[0]["create"]["_id"]
    assert len(header["create"]["_id"]) <= 512
    assert source == doc
    # No id (a caller without one): Elasticsearch makes one; still `create`.
    assert list(helpers.expand_action(bulk_action("i", doc, None))[0]) == ["create"]
    store.close()


def test_elasticsearch_conflicts_are_duplicates_and_other_refusals_errors() -> None:
    """`streaming_bulk`'s per-item answers, in the shape Elasticsearch gives them: a 409
    (version conflict: the `_id` exists) is a duplicate, counted out, not an error."""
    from api.events.elastic_store import bulk_outcome
    from api.events.store import StoreWriteError

    created = (True, {"create": {"_index": "i", "_id": "1", "status": 201}})
    conflict = (
        False,
        {
            "create": {
                "_index": "i",
                "_id": "2",
                "status": 409,
                "error": {"type": "version_conflict_engine_exception"},
            }
        },
    )
    refused = (False, {"create": {"_index": "i", "status": 400, "error": {"type": "bad"}}})
    assert bulk_outcome([created, conflict, created]) == 2
    assert bulk_outcome([conflict, conflict]) == 0
    with pytest.raises(StoreWriteError) as caught:
        bulk_outcome([created, conflict, refused])
    assert caught.value.stored == 1
    assert len(caught.value.errors) == 1
