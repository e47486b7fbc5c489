"""The event store on Elasticsearch, with the official client (8.13 and later, 9.x).

Indices: one per UTC day of the *event's* time, `vigie-events-YYYY.MM.DD` and
`vigie-detections-YYYY.MM.DD`, not a data stream. Agents spool through outages and ship days
late; a data stream rolls over by ingest time, so its backing indices would mix days and
retention would need `delete_by_query` over every one of them. With daily indices by event
time, `purge` drops whole indices and only the boundary day is deleted by query; searches go
to `vigie-events-*` and Elasticsearch skips the shards whose `@timestamp` range cannot match.

Mappings (composable index templates, put before the first write, `ensure_templates`):
`@timestamp` date_nanos; `organization.id`, `agent.id`, `winlog.channel`, `winlog.event_id`,
`winlog.provider_name`, `winlog.computer_name` keyword; every other string, number or boolean
leaf (`winlog.event_data.*` first) a keyword with a lowercase normalizer, plus a `text`
sub-field for strings and a `num` (double) one for numbers, which the numeric comparisons of
rules query. The normalizer makes the Lucene queries of
`detection.sigma.convert.to_elasticsearch` ("vigie" layout) case-insensitive as Sigma is:
`query_string` normalizes term and wildcard input on keyword fields (not regular expressions).
Mapping every leaf as keyword, numbers included, means a field that is a number in one event
and text in another never gets a document refused; `index.mapping.ignore_malformed` covers the
few typed fields.

Writes use `helpers.streaming_bulk` with `create` actions whose `_id` comes from the event's
stable id (`bulk_action`): a document stored before (a retried batch) is refused with 409,
counted as a duplicate, not an error (`bulk_outcome`). Items refused with 429 or 5xx are
retried with back-off (`max_retries`), and the client itself retries requests on
429/502/503/504 and timeouts.
Documents still refused after that are reported (`StoreWriteError`), the rest is kept.

Reads by id (`events_by_ids`) search the kind's indices with an `ids` query on the hashed
stable ids, filtered by the establishment: the day, hence the index, of an id is not known, so
`mget` (which needs it) does not fit. Like every search, they see what was written up to a
refresh ago (a second by default).

Retro-hunts run the rule's Lucene query as a `query_string` inside a bool query whose filters
are the establishment (`organization.id`) and the time range, so a rule never reaches outside.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch, TransportError, helpers

from api.events.store import (
    DEFAULT_HUNT_LIMIT,
    InvalidDocument,
    Kind,
    RetroHunt,
    StoreWriteError,
    check_ids,
    check_range,
    document_time,
    hit,
    stamped_event,
    wanted_ids,
)
from detection.sigma import CompiledRule
from detection.sigma.convert import NUMERIC_SUBFIELD, to_elasticsearch

RETRY_STATUSES = (429, 502, 503, 504)
# `retry_on_status` of the bulk helpers arrived in a later 8.x than the oldest client allowed.
_BULK_RETRY: dict[str, Any] = (
    {"retry_on_status": RETRY_STATUSES}
    if "retry_on_status" in inspect.signature(helpers.streaming_bulk).parameters
    else {}
)

IDS_PER_SEARCH = 1000
_MAX_RESULT_WINDOW = 10_000  # Elasticsearch's default `index.max_result_window`

_KEYWORD = {"type": "keyword", "ignore_above": 8191, "normalizer": "vigie_lowercase"}
_EXACT = {"type": "keyword", "ignore_above": 1024}


def _leaf_templates() -> list[dict[str, Any]]:
    """Every leaf a lowercase keyword; strings get a `text` sub-field as well, numbers a
    numeric `num` one: on a keyword, `>1000` compares text ("999" > "1000"), so the numeric
    comparisons of rules go to `<field>.num` (`detection.sigma.convert`)."""
    text = {**_KEYWORD, "fields": {"text": {"type": "text"}}}
    number = {
        **_KEYWORD,
        "fields": {NUMERIC_SUBFIELD: {"type": "double", "ignore_malformed": True}},
    }
    return [
        {"strings_as_keyword_and_text": {"match_mapping_type": "string", "mapping": text}},
        *(
            {f"{kind}_as_keyword_and_number": {"match_mapping_type": kind, "mapping": number}}
            for kind in ("long", "double")
        ),
        {"boolean_as_keyword": {"match_mapping_type": "boolean", "mapping": _KEYWORD}},
    ]


def _settings(shards: int, replicas: int) -> dict[str, Any]:
    return {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "mapping": {"ignore_malformed": True, "total_fields": {"limit": 5000}},
        "analysis": {
            "normalizer": {"vigie_lowercase": {"type": "custom", "filter": ["lowercase"]}}
        },
    }


EVENT_PROPERTIES: dict[str, Any] = {
    # Nanoseconds: Windows keeps 100 ns, and time-range bounds stay exact at microseconds.
    "@timestamp": {"type": "date_nanos"},
    "organization": {"properties": {"id": _EXACT}},
    "agent": {"properties": {"id": _EXACT}},
    "winlog": {
        "properties": {
            "channel": _KEYWORD,
            "event_id": _KEYWORD,
            "provider_name": _KEYWORD,
            "computer_name": _KEYWORD,
            "record_id": _EXACT,
            "event_data": {"type": "object", "dynamic": True},
            "user_data": {"type": "object", "dynamic": True},
        }
    },
    "log": {"properties": {"level": _KEYWORD, "file": {"properties": {"path": _EXACT}}}},
}

DETECTION_PROPERTIES: dict[str, Any] = {
    "timestamp": {"type": "date"},
    "establishment": _EXACT,
    "engine": _EXACT,
    "rule_id": _EXACT,
    "rule_title": {"type": "text", "fields": {"keyword": _EXACT}},
    "level": _EXACT,
    # The matched events are kept as they came, not indexed field by field.
    "event": {"type": "object", "enabled": False},
    "events": {"type": "object", "enabled": False},
}


class ElasticEventStore:
    """`EventStore` on Elasticsearch. The client is thread-safe; so is this store."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "vigie",
        refresh: bool = False,
        shards: int = 1,
        replicas: int = 1,
        client: Elasticsearch | None = None,
        bulk_retries: int = 5,
        chunk_size: int = 1000,
    ) -> None:
        self.prefix = prefix
        self.refresh = refresh  # make writes searchable at once (tests, demo)
        self.shards = shards
        self.replicas = replicas
        self.bulk_retries = bulk_retries
        self.chunk_size = chunk_size
        self.client = client or Elasticsearch(
            url,
            max_retries=3,
            retry_on_status=RETRY_STATUSES,
            retry_on_timeout=True,
            request_timeout=30,
        )
        self._templates_ready = False
        self._lock = threading.Lock()

    # --- indices ----------------------------------------------------------------------------

    def pattern(self, kind: Kind) -> str:
        return f"{self.prefix}-{kind}-*"

    def index_for(self, kind: Kind, ts: datetime) -> str:
        return f"{self.prefix}-{kind}-{ts.astimezone(UTC):%Y.%m.%d}"

    def index_templates(self) -> list[dict[str, Any]]:
        """The composable index templates, as `indices.put_index_template` takes them."""
        templates: tuple[tuple[Kind, dict[str, Any]], ...] = (
            ("events", EVENT_PROPERTIES),
            ("detections", DETECTION_PROPERTIES),
        )
        return [
            {
                "name": f"{self.prefix}-{kind}",
                "index_patterns": [self.pattern(kind)],
                "priority": 200,
                "template": {
                    "settings": _settings(self.shards, self.replicas),
                    "mappings": {"dynamic_templates": _leaf_templates(), "properties": properties},
                },
                "meta": {"managed_by": "vigie", "description": f"Vigie {kind}, one index a day"},
            }
            for kind, properties in templates
        ]

    def ensure_templates(self) -> None:
        """Put the index templates (idempotent: a put replaces the template)."""
        with self._lock:
            if self._templates_ready:
                return
            for template in self.index_templates():
                self.client.indices.put_index_template(**template)
            self._templates_ready = True

    # --- writes -----------------------------------------------------------------------------

    def add_events(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        views: Sequence[Mapping[str, Any]] | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        del views  # Elasticsearch indexes the documents themselves
        return self._bulk(self.event_actions(establishment, agent, events, ids))

    def event_actions(
        self,
        establishment: str,
        agent: str,
        events: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The bulk actions `add_events` sends."""
        check_ids(ids, events)
        actions = []
        for index, doc in enumerate(events):
            ts = document_time(doc, index)
            uid = ids[index] if ids is not None else None
            actions.append(
                bulk_action(
                    self.index_for("events", ts), stamped_event(doc, establishment, agent), uid
                )
            )
        return actions

    def add_detections(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> int:
        return self._bulk(self.detection_actions(establishment, detections, ids))

    def detection_actions(
        self,
        establishment: str,
        detections: list[dict[str, Any]],
        ids: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The bulk actions `add_detections` sends."""
        check_ids(ids, detections)
        actions = []
        for index, doc in enumerate(detections):
            ts = document_time(doc, index, key="timestamp")
            if not isinstance(doc.get("rule_id"), str) or not doc["rule_id"]:
                raise InvalidDocument(index, "no rule_id")
            uid = ids[index] if ids is not None else None
            stored = {**doc, "establishment": establishment}
            actions.append(bulk_action(self.index_for("detections", ts), stored, uid))
        return actions

    def _bulk(self, actions: list[dict[str, Any]]) -> int:
        if not actions:
            return 0
        self.ensure_templates()
        return bulk_outcome(
            helpers.streaming_bulk(
                self.client,
                actions,
                chunk_size=self.chunk_size,
                max_retries=self.bulk_retries,
                initial_backoff=0.5,
                max_backoff=30,
                raise_on_error=False,
                raise_on_exception=False,
                refresh="wait_for" if self.refresh else False,
                **_BULK_RETRY,
            )
        )

    def purge(self, before: datetime) -> int:
        """Drop the daily indices wholly before `before`; delete by query on its own day."""
        check_range(before, None)
        removed = 0
        kinds: tuple[tuple[Kind, str], ...] = (
            ("events", "@timestamp"),
            ("detections", "timestamp"),
        )
        for kind, field in kinds:
            boundary = self.index_for(kind, before)
            names = sorted(
                self.client.indices.get(
                    index=self.pattern(kind),
                    allow_no_indices=True,
                    ignore_unavailable=True,
                    expand_wildcards="open",
                )
            )
            old = [n for n in names if n < boundary]
            if old:
                removed += int(self.client.count(index=",".join(old))["count"])
                self.client.indices.delete(index=",".join(old))
            if boundary in names:
                answer = self.client.delete_by_query(
                    index=boundary,
                    query={"range": {field: {"lt": _iso(before)}}},
                    conflicts="proceed",
                    refresh=True,
                )
                removed += int(answer.get("deleted", 0))
        return removed

    # --- reads ------------------------------------------------------------------------------

    def search_events(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        return self._search("events", establishment, since, until, limit)

    def search_detections(
        self,
        *,
        establishment: str | None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        return self._search("detections", establishment, since, until, limit)

    def count(
        self,
        kind: Kind = "events",
        *,
        establishment: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        answer = self.client.count(
            index=self.pattern(kind),
            query=_scope(kind, establishment, since, until),
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        return int(answer["count"])

    def events_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._by_ids("events", establishment, ids)

    def detections_by_ids(self, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self._by_ids("detections", establishment, ids)

    def retro_hunt(
        self,
        rule: CompiledRule,
        *,
        since: datetime | None,
        until: datetime | None,
        establishment: str | None = None,
        limit: int = DEFAULT_HUNT_LIMIT,
    ) -> RetroHunt:
        (converted,) = to_elasticsearch([rule], layout="vigie")
        if not converted.ok or converted.query is None:
            return RetroHunt(rule.id, rule.title, error=f"no Lucene query: {converted.error}")
        query = hunt_query(converted.query, establishment, since, until)
        found: list[Mapping[str, Any]] = []
        try:
            for doc in self._scan(query):
                found.append(doc)
                if len(found) > limit:
                    break
        except (ApiError, TransportError) as exc:
            return RetroHunt(rule.id, rule.title, converted.query, error=_reason(exc))
        found.sort(key=lambda d: str(d.get("@timestamp", "")))
        hits = [
            hit(rule.id, rule.title, rule.level, doc, _organization(doc)) for doc in found[:limit]
        ]
        return RetroHunt(rule.id, rule.title, converted.query, hits, truncated=len(found) > limit)

    def close(self) -> None:
        self.client.close()

    # --- internals --------------------------------------------------------------------------

    def _search(
        self,
        kind: Kind,
        establishment: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        field = "@timestamp" if kind == "events" else "timestamp"
        answer = self.client.search(
            index=self.pattern(kind),
            query=_scope(kind, establishment, since, until),
            sort=[{field: {"order": "desc"}}],
            size=max(0, limit),
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        return [dict(h["_source"]) for h in answer["hits"]["hits"]]

    def _by_ids(self, kind: Kind, establishment: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        wanted = wanted_ids(ids)
        uid_of = {document_id(uid): uid for uid in wanted}
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_PER_SEARCH):
            chunk = wanted[start : start + IDS_PER_SEARCH]
            answer = self.client.search(
                index=self.pattern(kind),
                **ids_search(kind, establishment, chunk),
                allow_no_indices=True,
                ignore_unavailable=True,
            )
            for item in answer["hits"]["hits"]:
                uid = uid_of.get(item["_id"])
                if uid is not None:  # the earliest, were an id in two days' indices
                    found.setdefault(uid, dict(item["_source"]))
        return [{"id": uid, "document": found[uid]} for uid in wanted if uid in found]

    def _scan(self, query: dict[str, Any]) -> Iterator[Mapping[str, Any]]:
        for item in helpers.scan(
            self.client,
            query={"query": query},
            index=self.pattern("events"),
            size=1000,
            allow_no_indices=True,
            ignore_unavailable=True,
        ):
            yield item["_source"]


def document_id(uid: str) -> str:
    """The `_id` of the document stored under a stable id of ingestion: hashed, a fixed
    length whatever the agent's ids look like (Elasticsearch allows 512 bytes)."""
    return hashlib.sha256(uid.encode()).hexdigest()


def bulk_action(index: str, doc: dict[str, Any], uid: str | None) -> dict[str, Any]:
    """One bulk action: `create`, so that a document whose `_id` the index has already is
    refused (409) instead of replaced or stored twice; its `_id` is `document_id(uid)`."""
    action: dict[str, Any] = {"_op_type": "create", "_index": index, "_source": doc}
    if uid is not None:
        action["_id"] = document_id(uid)
    return action


def ids_search(kind: Kind, establishment: str, uids: Sequence[str]) -> dict[str, Any]:
    """The body of a read by ids (`search` keyword arguments): the documents whose `_id` is
    one of the stable ids', within the establishment. An `_id` is unique per index only: an
    agent that reused an id on another day has a document in each daily index, so the answer
    has room for several per id, the earliest first."""
    field = "@timestamp" if kind == "events" else "timestamp"
    scope = _scope(kind, establishment, None, None)
    wanted = {"ids": {"values": [document_id(uid) for uid in uids]}}
    return {
        "query": {"bool": {"filter": [*scope["bool"]["filter"], wanted]}},
        "sort": [{field: {"order": "asc"}}],
        "size": min(_MAX_RESULT_WINDOW, 10 * len(uids)),
        "track_total_hits": False,
    }


def bulk_outcome(results: Iterable[tuple[bool, dict[str, Any]]]) -> int:
    """How many documents `streaming_bulk` stored; a 409 (the `_id` is there already: a
    duplicate) is not counted and not an error; other refusals raise `StoreWriteError` once
    the rest is stored."""
    stored = 0
    errors: list[str] = []
    for ok, info in results:
        item: dict[str, Any] = next(iter(info.values()), {})
        if ok:
            stored += 1
        elif item.get("status") != 409:
            errors.append(f"{item.get('_index')}: {item.get('status')} {item.get('error')}")
    if errors:
        raise StoreWriteError(stored, errors)
    return stored


def hunt_query(
    lucene: str, establishment: str | None, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    """A retro-hunt's query: the rule's Lucene query, inside the establishment and the time
    range, all as filters (no scoring)."""
    scope = _scope("events", establishment, since, until)
    rule = {"query_string": {"query": lucene, "allow_leading_wildcard": True}}
    return {"bool": {"filter": [*scope["bool"]["filter"], rule]}}


def _scope(
    kind: Kind, establishment: str | None, since: datetime | None, until: datetime | None
) -> dict[str, Any]:
    check_range(since, until)
    filters: list[dict[str, Any]] = []
    if establishment is not None:
        key = "organization.id" if kind == "events" else "establishment"
        filters.append({"term": {key: establishment}})
    bounds: dict[str, str] = {}
    if since is not None:
        bounds["gte"] = _iso(since)
    if until is not None:
        bounds["lt"] = _iso(until)
    if bounds:
        field = "@timestamp" if kind == "events" else "timestamp"
        filters.append({"range": {field: bounds}})
    return {"bool": {"filter": filters}}


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _organization(doc: Mapping[str, Any]) -> str | None:
    organization = doc.get("organization")
    return organization.get("id") if isinstance(organization, Mapping) else None


def _reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
