"""The Elasticsearch store, checked as far as it can be without a server (none can run where
the suite runs; tests/api/test_event_store.py runs the store itself against one when
`VIGIE_ELASTICSEARCH_URL` is set).

Checked here: the index templates against the types of the official client (the typed
parameters of `indices.put_index_template` and of each mapping field type, generated from
Elasticsearch's API specification), every field the rules' queries use against the type the
templates give it, the retro-hunt's query against the client's query DSL, and the bulk bodies
as the client serializes them. Not checked (a server only): that Elasticsearch accepts the
templates and settings as a whole, how its normalizer and `query_string` treat each term, and
what the queries find.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
from elasticsearch import helpers
from elasticsearch._sync.client.indices import IndicesClient
from elasticsearch.dsl import Q, query
from elasticsearch.dsl.analysis import normalizer
from elasticsearch.dsl.field import Field
from luqum.parser import parser

from api.events.elastic_store import ElasticEventStore, hunt_query
from api.events.store import Kind, stamped_event
from detection.sigma import load_sigma_rules
from detection.sigma.convert import NUMERIC_SUBFIELD, to_elasticsearch
from tests.api.test_event_store import T0, A, _case_events, _detection, _event
from tests.conftest import REPO
from tests.detection.test_lucene_queries import _leaves

# What a dynamic template may say (Elasticsearch's DynamicTemplate type), and the JSON types
# `match_mapping_type` can name.
DYNAMIC_TEMPLATE_KEYS = {
    "mapping",
    "runtime",
    "match",
    "path_match",
    "unmatch",
    "path_unmatch",
    "match_mapping_type",
    "unmatch_mapping_type",
    "match_pattern",
}
JSON_TYPES = {"object", "string", "long", "double", "boolean", "date", "binary", "*"}
NUMERIC = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}


@pytest.fixture
def store() -> Iterator[ElasticEventStore]:
    es = ElasticEventStore("http://127.0.0.1:9", prefix="vigie")  # never contacted
    yield es
    es.close()


def _parameters(function: Any) -> set[str]:
    return set(inspect.signature(function).parameters) - {"self", "args", "kwargs"}


def _check_field(path: str, mapping: dict[str, Any]) -> list[str]:
    """What in one field's mapping the client's typed field classes do not know."""
    if "type" not in mapping or mapping["type"] == "object":
        known = {"type", "properties", "dynamic", "enabled"}
        problems = [f"{path}: object parameter {k}" for k in set(mapping) - known]
        for name, sub in mapping.get("properties", {}).items():
            problems += _check_field(f"{path}.{name}", sub)
        return problems
    cls = Field.get_dsl_class(mapping["type"])  # raises for a type Elasticsearch lacks
    problems = [
        f"{path}: {mapping['type']} takes no {key}"
        for key in set(mapping) - {"type"} - _parameters(cls.__init__)
    ]
    for name, sub in mapping.get("fields", {}).items():
        problems += _check_field(f"{path}.{name}", sub)
    return problems


def test_index_templates_are_what_the_clients_typed_api_takes(store: ElasticEventStore) -> None:
    templates = store.index_templates()
    assert [t["name"] for t in templates] == ["vigie-events", "vigie-detections"]
    for template in templates:
        assert set(template) <= _parameters(IndicesClient.put_index_template)
        assert template["index_patterns"] == [f"{template['name']}-*"]
        settings, mappings = template["template"]["settings"], template["template"]["mappings"]
        assert set(mappings) == {"dynamic_templates", "properties"}
        problems = [p for n, f in mappings["properties"].items() for p in _check_field(n, f)]
        for entry in mappings["dynamic_templates"]:
            ((name, body),) = entry.items()
            assert set(body) <= DYNAMIC_TEMPLATE_KEYS, name
            assert body["match_mapping_type"] in JSON_TYPES, name
            problems += _check_field(name, body["mapping"])
        assert not problems, problems
        # Every normalizer a field names is defined, as the client's analysis DSL defines one.
        defined = settings["analysis"]["normalizer"]
        assert defined == {
            "vigie_lowercase": normalizer(
                "vigie_lowercase", type="custom", filter=["lowercase"]
            ).get_definition()
        }
        assert _normalizers(mappings) == {"vigie_lowercase"}
        assert settings["number_of_replicas"] == 1
        assert settings["mapping"]["ignore_malformed"] is True


def _normalizers(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["normalizer"]} if isinstance(node.get("normalizer"), str) else set()
        return found.union(*(_normalizers(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_normalizers(v) for v in node))
    return set()


def _event_field_type(store: ElasticEventStore, field: str) -> str:
    """The type the events template gives a field a rule queries (its values being strings,
    or, for `<leaf>.num`, numbers)."""
    (events, _) = store.index_templates()
    mappings = events["template"]["mappings"]
    dynamic = {
        body["match_mapping_type"]: body["mapping"]
        for entry in mappings["dynamic_templates"]
        for body in entry.values()
    }
    leaf, _, sub = field.rpartition(".")
    if sub == NUMERIC_SUBFIELD:
        types = {dynamic[kind]["fields"][sub]["type"] for kind in ("long", "double")}
        assert len(types) == 1, types
        return types.pop()
    node: dict[str, Any] = {"properties": mappings["properties"]}
    for part in field.split("."):
        node = node.get("properties", {}).get(part, {})
        if not node:  # not in the template: mapped on arrival, as a string leaf is
            return str(dynamic["string"]["type"])
        if node.get("dynamic") is True:
            return str(dynamic["string"]["type"])
    return str(node["type"])


def test_every_field_vigies_rules_query_has_a_type_that_supports_the_query(
    store: ElasticEventStore,
) -> None:
    """Terms, wildcards and regular expressions on keywords; numeric comparisons on a numeric
    type (on a keyword "999" > "1000"); `_exists_` on anything."""
    ruleset = load_sigma_rules([REPO / "rules" / "sigma"])
    queried: dict[str, set[str]] = {}
    for result in to_elasticsearch(ruleset.rules):
        assert result.query is not None, result.error
        for field, kind, _ in _leaves(parser.parse(result.query)):
            if field is not None and kind != "exists":
                queried.setdefault(kind, set()).add(field)
    assert queried["compare"]  # Vigie's rules have a numeric comparison
    problems = [
        f"{kind} on {field}: {_event_field_type(store, field)}"
        for kind, fields in queried.items()
        for field in sorted(fields)
        if (_event_field_type(store, field) in NUMERIC) != (kind == "compare")
        or (kind != "compare" and _event_field_type(store, field) != "keyword")
    ]
    assert not problems, problems


def test_retro_hunt_query_is_the_rule_inside_the_establishment_and_time_range(
    store: ElasticEventStore,
) -> None:
    lucene = 'winlog.event_data.CommandLine:*whoami* AND NOT winlog.channel:"a b"'
    since, until = T0, T0 + timedelta(hours=1)
    body = hunt_query(lucene, A, since, until)
    assert Q(body).to_dict() == body  # every part a query type the client's DSL knows
    (scope_org, scope_time, rule) = Q(body).filter
    assert scope_org.to_dict() == {"term": {"organization.id": A}}
    assert scope_time.to_dict() == {
        "range": {
            "@timestamp": {
                "gte": "2026-11-20T10:00:00.000000Z",
                "lt": "2026-11-20T11:00:00.000000Z",
            }
        }
    }
    assert isinstance(rule, query.QueryString)
    assert set(rule.to_dict()["query_string"]) <= _parameters(query.QueryString.__init__)
    assert rule.query == lucene
    parser.parse(rule.query)
    assert _event_field_type(store, "organization.id") == "keyword"
    assert _event_field_type(store, "@timestamp") == "date_nanos"
    # The CERT's hunt over every establishment and all time: the rule alone.
    assert [type(q) for q in Q(hunt_query(lucene, None, None, None)).filter] == [query.QueryString]


def _ndjson(store: ElasticEventStore, actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bulk body the client sends, serialized by the client, read back line by line."""
    lines: list[Any] = []
    for action in actions:
        header, source = helpers.expand_action(action)
        lines += [header, source]
    body = store.client.transport.serializers.dumps(lines, mimetype="application/x-ndjson")
    assert body.endswith(b"\n")
    return [json.loads(line) for line in body.decode().splitlines()]


def test_bulk_bodies_pair_a_create_with_each_document(store: ElasticEventStore) -> None:
    events = [e.to_ecs() for e in _case_events()]
    assert len(events) > 40
    ids = [f"agent:1/spool-{n}" for n in range(len(events))]
    lines = _ndjson(store, store.event_actions(A, "agent-1", events, ids))
    assert len(lines) == 2 * len(events)
    headers, sources = lines[0::2], lines[1::2]
    assert all(list(h) == ["create"] for h in headers)
    assert all(set(h["create"]) == {"_index", "_id"} for h in headers)
    for header, source, event in zip(headers, sources, events, strict=True):
        assert source == json.loads(json.dumps(stamped_event(event, A, "agent-1")))
        day = source["@timestamp"][:10].replace("-", ".")
        assert header["create"]["_index"] == f"vigie-events-{day}"
    # Stable ids: the same events again give the same `_id`s, other ids other ones.
    again = _ndjson(store, store.event_actions(A, "agent-1", events, ids))[0::2]
    assert again == headers
    other = _ndjson(store, store.event_actions(A, "agent-2", events, [f"x{i}" for i in ids]))
    first_ids = {h["create"]["_id"] for h in headers}
    assert len(first_ids) == len(events)  # distinct events, distinct ids
    assert first_ids.isdisjoint(h["create"]["_id"] for h in other[0::2])

    detections = [_detection(m, f"r-{m}") for m in range(3)]
    lines = _ndjson(store, store.detection_actions(A, detections, ["d-0", "d-1", "d-2"]))
    assert [h["create"]["_index"] for h in lines[0::2]] == ["vigie-detections-2026.11.20"] * 3
    assert [s["establishment"] for s in lines[1::2]] == [A] * 3


def test_reads_by_id_ask_for_the_hashed_ids_within_the_establishment() -> None:
    """The search a read by ids sends: an `ids` query on the `_id`s the bulk actions gave
    the documents, filtered by the establishment, every part known to the client's DSL and
    every key a parameter of `Elasticsearch.search`."""
    from elasticsearch import Elasticsearch
    from elasticsearch.dsl import Search

    from api.events.elastic_store import bulk_action, ids_search

    uids = ["agent:1/e-0", "agent:1/e-1"]
    kinds: tuple[tuple[Kind, dict[str, Any], str], ...] = (
        ("events", {"term": {"organization.id": A}}, "@timestamp"),
        ("detections", {"term": {"establishment": A}}, "timestamp"),
    )
    for kind, scope, field in kinds:
        body = ids_search(kind, A, uids)
        assert set(body) <= _parameters(Elasticsearch.search)
        assert Search().update_from_dict(body).to_dict() == body
        (org, ids) = Q(body["query"]).filter
        assert org.to_dict() == scope
        assert isinstance(ids, query.Ids)
        assert list(ids.values) == [bulk_action("i", {}, uid)["_id"] for uid in uids]
        assert body["sort"] == [{field: {"order": "asc"}}]
        assert body["size"] >= len(uids)  # room for every id asked for
    assert ids_search("events", A, ["x"] * 1000)["size"] == 10_000  # the default window


class _Recorder(BaseHTTPRequestHandler):
    """Elasticsearch's side of one search, as far as the client can tell: the request is
    recorded, the answer is the server's (`answer`), with the header the client checks."""

    requests: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    answer: ClassVar[dict[str, Any]] = {}

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        length = int(self.headers.get("Content-Length", "0"))
        self.requests.append((self.path, json.loads(self.rfile.read(length) or b"{}")))
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_read_by_ids_goes_over_the_wire_and_maps_hits_back_to_their_ids() -> None:
    """The whole read through the official client against a recording HTTP server: the body
    sent is `ids_search`'s, and the hits answered (by `_id`, in any order, one id in two
    days' indices) come back under the stable ids asked for, in their order, each once."""
    from api.events.elastic_store import document_id, ids_search

    stored = {uid: stamped_event(_event(n), A, "agent-1") for n, uid in enumerate("abc")}

    def hit_(uid: str, index: str) -> dict[str, Any]:
        return {"_index": index, "_id": document_id(uid), "_source": stored[uid]}

    _Recorder.requests = []
    _Recorder.answer = {
        "took": 1,
        "timed_out": False,
        "hits": {
            "hits": [
                hit_("c", "vigie-events-2026.11.19"),
                hit_("a", "vigie-events-2026.11.20"),
                hit_("c", "vigie-events-2026.11.20"),  # the same id again, a later day
            ]
        },
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    es = ElasticEventStore(f"http://127.0.0.1:{server.server_address[1]}", prefix="vigie")
    try:
        found = es.events_by_ids(A, ["c", "b", "a", "c"])
    finally:
        es.close()
        server.shutdown()
        server.server_close()
    assert [f["id"] for f in found] == ["c", "a"]
    assert found[0]["document"] == json.loads(json.dumps(stored["c"]))
    ((path, body),) = _Recorder.requests
    assert path.split("?")[0] == "/vigie-events-*/_search"
    assert "allow_no_indices=true" in path
    assert "ignore_unavailable=true" in path
    assert body == ids_search("events", A, ["c", "b", "a"])
