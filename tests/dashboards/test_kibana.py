"""Vigie's Kibana saved objects (dashboards/kibana/vigie.ndjson and the builder that writes it).

No Kibana runs where the suite runs: the objects are checked with `kibana_checks` (what
Kibana's import and renderers rely on, and every field against Vigie's own index templates),
each check is shown to catch a broken object, and the committed file must be what the builder
writes. With `VIGIE_KIBANA_URL` set (credentials in the URL if needed), the file is imported
into that Kibana as well, overwriting the objects of the same ids.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from api.events.elastic_store import DETECTION_PROPERTIES, EVENT_PROPERTIES, ElasticEventStore
from api.events.store import Kind
from tests.conftest import REPO
from tests.dashboards import kibana_checks as checks

BUILDER = REPO / "dashboards" / "kibana" / "build.py"
NDJSON = REPO / "dashboards" / "kibana" / "vigie.ndjson"
KIBANA_URL = os.environ.get("VIGIE_KIBANA_URL")
DASHBOARD = "vigie-dashboard-detections"

Json = dict[str, Any]


@cache
def _builder() -> ModuleType:
    """build.py is a script, not a package module: loaded from its path."""
    spec = importlib.util.spec_from_file_location("vigie_kibana_build", BUILDER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _store() -> ElasticEventStore:
    # The client connects on the first request only; nothing here sends one.
    return ElasticEventStore("http://127.0.0.1:9")


@cache
def _mappings() -> dict[str, Json]:
    """The mappings of Vigie's index templates, by index pattern."""
    return {
        pattern: template["template"]["mappings"]
        for template in _store().index_templates()
        for pattern in template["index_patterns"]
    }


def _objects() -> list[Json]:
    return [json.loads(line) for line in NDJSON.read_text(encoding="utf-8").splitlines()]


def test_the_templates_hold_the_store_properties() -> None:
    mappings = _mappings()
    assert mappings[_store().pattern("events")]["properties"] is EVENT_PROPERTIES
    assert mappings[_store().pattern("detections")]["properties"] is DETECTION_PROPERTIES


# --- the file ------------------------------------------------------------------------------


def test_every_line_is_one_saved_object() -> None:
    text = NDJSON.read_text(encoding="utf-8")
    assert text.endswith("\n")
    assert "\r" not in text
    for number, line in enumerate(text.splitlines(), 1):
        item = json.loads(line)
        assert isinstance(item, dict), f"line {number}"
        assert set(checks.REQUIRED) <= set(item), f"line {number}: {sorted(item)}"


def test_the_committed_file_is_what_the_builder_writes() -> None:
    builder = _builder()
    assert NDJSON.read_text(encoding="utf-8") == builder.render(builder.build()), (
        "dashboards/kibana/vigie.ndjson is out of date: run python dashboards/kibana/build.py"
    )
    assert builder.render(builder.build()) == builder.render(builder.build())


def test_the_builder_as_a_command(tmp_path: Path) -> None:
    """`--check` fails on a stale file and passes once the builder has rewritten it."""
    script = tmp_path / "build.py"
    shutil.copy(BUILDER, script)
    (tmp_path / "vigie.ndjson").write_text("{}\n", encoding="utf-8")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(script), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    stale = run("--check")
    assert stale.returncode == 1
    assert "out of date" in stale.stderr
    assert run().returncode == 0
    assert run("--check").returncode == 0
    assert (tmp_path / "vigie.ndjson").read_bytes() == NDJSON.read_bytes()


def test_the_objects_have_no_problems() -> None:
    assert checks.problems(_objects(), _mappings()) == []


def test_what_the_file_holds() -> None:
    objects = _objects()
    by_type: dict[str, list[Json]] = {}
    for item in objects:
        by_type.setdefault(item["type"], []).append(item)
    assert sorted(by_type) == ["dashboard", "index-pattern", "lens"]

    store = _store()
    kinds: tuple[tuple[Kind, str], ...] = (("events", "@timestamp"), ("detections", "timestamp"))
    views = {view["id"]: view["attributes"] for view in by_type["index-pattern"]}
    for kind, time_field in kinds:
        assert views[f"vigie-{kind}"]["title"] == store.pattern(kind)
        assert views[f"vigie-{kind}"]["timeFieldName"] == time_field

    (dashboard,) = by_type["dashboard"]
    assert dashboard["id"] == DASHBOARD
    assert dashboard["attributes"]["title"] == "Vigie — détections"
    drawn = {reference["id"] for reference in dashboard["references"]}
    assert drawn == {lens["id"] for lens in by_type["lens"]}
    assert len(drawn) == 5

    fields = {
        column["sourceField"]
        for lens in by_type["lens"]
        for layer in lens["attributes"]["state"]["datasourceStates"]["formBased"]["layers"].values()
        for column in layer["columns"].values()
    }
    assert {"timestamp", "level", "rule_title.keyword", "rule_id", "establishment"} <= fields
    assert {"@timestamp", "organization.id"} <= fields


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("vigie-detections-*", "timestamp", "date"),
        ("vigie-detections-*", "rule_title", "text"),
        ("vigie-detections-*", "rule_title.keyword", "keyword"),
        ("vigie-detections-*", "establishment", "keyword"),
        ("vigie-detections-*", "establishment.keyword", None),  # no such sub-field
        ("vigie-detections-*", "event", None),  # disabled: stored, not indexed
        ("vigie-detections-*", "event.Image", None),
        ("vigie-events-*", "@timestamp", "date_nanos"),
        ("vigie-events-*", "organization", None),  # an object, not a field
        ("vigie-events-*", "organization.id", "keyword"),
        ("vigie-events-*", "winlog.event_id", "keyword"),
        ("vigie-events-*", "winlog.event_data.Image", "keyword"),  # a dynamic leaf
        ("vigie-events-*", "winlog.event_data.Image.text", "text"),
        ("vigie-events-*", "winlog.event_data.ProcessId.num", "double"),
        ("vigie-events-*", "winlog.event_data.Image.keyword", None),
        ("vigie-events-*", "winlog.event_data", None),
        ("vigie-events-*", "timestamp", None),
    ],
)
def test_field_types(pattern: str, path: str, expected: str | None) -> None:
    assert checks.field_type(_mappings()[pattern], path) == expected


# --- each check catches what it is for ---------------------------------------------------------


def _find(objects: list[Json], object_id: str) -> Json:
    return next(item for item in objects if item["id"] == object_id)


def _layer(objects: list[Json], object_id: str) -> Json:
    state = _find(objects, object_id)["attributes"]["state"]
    layer: Json = state["datasourceStates"]["formBased"]["layers"]["layer1"]
    return layer


def _panels(objects: list[Json], edit: Callable[[list[Json]], None]) -> None:
    attributes = _find(objects, DASHBOARD)["attributes"]
    panels = json.loads(attributes["panelsJSON"])
    edit(panels)
    attributes["panelsJSON"] = json.dumps(panels)


def _set(path: str, value: Any) -> Callable[[list[Json]], None]:
    """A mutation setting `<object id>/<key>/<key>...` to `value` (None deletes it)."""
    object_id, *keys = path.split("/")

    def mutate(objects: list[Json]) -> None:
        target: Any = _find(objects, object_id)
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is None:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value

    return mutate


def _column(object_id: str, column: str, key: str, value: Any) -> Callable[[list[Json]], None]:
    def mutate(objects: list[Json]) -> None:
        _layer(objects, object_id)["columns"][column][key] = value

    return mutate


def _duplicate_id(objects: list[Json]) -> None:
    objects.append(copy.deepcopy(_find(objects, "vigie-detections-count")))


def _drop_last_panel_reference(objects: list[Json]) -> None:
    _find(objects, DASHBOARD)["references"].pop()


def _move_first_panel_onto_the_second(objects: list[Json]) -> None:
    def edit(panels: list[Json]) -> None:
        panels[0]["gridData"].update(x=panels[1]["gridData"]["x"], y=panels[1]["gridData"]["y"])

    _panels(objects, edit)


def _widen_a_panel(objects: list[Json]) -> None:
    _panels(objects, lambda panels: panels[-1]["gridData"].update(w=49))


def _panel_as_a_search(objects: list[Json]) -> None:
    _panels(objects, lambda panels: panels[0].update(type="search"))


def _column_order_misses_one(objects: list[Json]) -> None:
    _layer(objects, "vigie-detections-by-level")["columnOrder"].pop(0)


def _metric_first(objects: list[Json]) -> None:
    _layer(objects, "vigie-detections-by-level")["columnOrder"].reverse()


def _draw_a_missing_column(objects: list[Json]) -> None:
    state = _find(objects, "vigie-detections-by-level")["attributes"]["state"]
    state["visualization"]["layers"][0]["accessors"] = ["gone"]


def _rename_the_layer(objects: list[Json]) -> None:
    layers = _find(objects, "vigie-detections-count")["attributes"]["state"]["datasourceStates"]
    layers["formBased"]["layers"]["other"] = layers["formBased"]["layers"].pop("layer1")


def _reference_the_wrong_view(objects: list[Json]) -> None:
    _find(objects, "vigie-detections-top-rules")["references"][0]["id"] = "vigie-events"


MUTATIONS = [
    pytest.param(
        _set("vigie-events/typeMigrationVersion", None), "missing typeMigrationVersion", id="key"
    ),
    pytest.param(_duplicate_id, "duplicate id vigie-detections-count", id="duplicate-id"),
    pytest.param(
        _set("vigie-detections-count/typeMigrationVersion", "8.9.0"), "is newer than", id="newer"
    ),
    pytest.param(
        _set("vigie-detections-count/typeMigrationVersion", "8.5.0"),
        "older than its shape",
        id="older-than-formBased",
    ),
    pytest.param(
        _set("vigie-detections-count/coreMigrationVersion", "8.x"),
        "coreMigrationVersion",
        id="core-version",
    ),
    pytest.param(
        _set("vigie-detections-count/references/0/id", "vigie-nothing"),
        "resolves to nothing in the file",
        id="dangling-reference",
    ),
    pytest.param(
        _set("vigie-detections-count/references/0/type", "dashboard"),
        "says dashboard but vigie-detections is of type index-pattern",
        id="reference-type",
    ),
    pytest.param(
        _set(f"{DASHBOARD}/attributes/panelsJSON", "[{"),
        "panelsJSON is not a string of JSON",
        id="panelsJSON",
    ),
    pytest.param(
        _set(f"{DASHBOARD}/attributes/optionsJSON", {"useMargins": True}),
        "optionsJSON is not a string of JSON",
        id="optionsJSON-not-a-string",
    ),
    pytest.param(
        _set(f"{DASHBOARD}/attributes/kibanaSavedObjectMeta/searchSourceJSON", "[]"),
        "searchSourceJSON is not a string of JSON holding a dict",
        id="searchSourceJSON",
    ),
    pytest.param(
        _set("vigie-events/attributes/fieldFormatMap", "{"),
        "fieldFormatMap is not a string",
        id="fieldFormatMap",
    ),
    pytest.param(
        _set(f"{DASHBOARD}/attributes/subtitle", "x"),
        "subtitle not a dashboard attribute",
        id="dashboard-attribute",
    ),
    pytest.param(
        _drop_last_panel_reference,
        "panelRefName panel_vigie-events-by-establishment has no reference",
        id="panel-reference",
    ),
    pytest.param(_panel_as_a_search, "a search panel refers to a lens", id="panel-type"),
    pytest.param(_move_first_panel_onto_the_second, "overlaps panel", id="overlap"),
    pytest.param(_widen_a_panel, "off the 48-column grid", id="grid"),
    pytest.param(
        _rename_the_layer,
        "layer other has no indexpattern-datasource-layer-other",
        id="layer-reference",
    ),
    pytest.param(_column_order_misses_one, "columnOrder", id="column-order"),
    pytest.param(_metric_first, "a metric comes before a bucket", id="buckets-first"),
    pytest.param(_draw_a_missing_column, "draws column gone", id="accessor"),
    pytest.param(
        _column("vigie-detections-by-establishment", "establishment", "sourceField", "etab"),
        "etab is not in the mapping",
        id="renamed-field",
    ),
    pytest.param(
        _column("vigie-detections-by-establishment", "establishment", "sourceField", "rule_title"),
        "rule_title is a text, not aggregatable",
        id="text-field",
    ),
    pytest.param(
        _column("vigie-detections-top-rules", "rule_id", "sourceField", "rule_id.keyword"),
        "rule_id.keyword is not in the mapping",
        id="keyword-subfield",
    ),
    pytest.param(
        _column("vigie-detections-by-level", "time", "sourceField", "level"),
        "date histogram on level",
        id="histogram-on-keyword",
    ),
    pytest.param(
        _column("vigie-detections-by-level", "level", "dataType", "number"),
        "dataType number for level",
        id="data-type",
    ),
    pytest.param(
        _column("vigie-detections-by-level", "level", "params", {"orderBy": {"type": "column"}}),
        "ordered by column None",
        id="terms-order",
    ),
    pytest.param(
        _reference_the_wrong_view,
        "rule_title.keyword is not in the mapping",
        id="layer-on-the-events",
    ),
    pytest.param(
        _set("vigie-detections-count/attributes/visualizationType", "lnsPie"),
        "visualizationType lnsPie is not one these checks know",
        id="visualization-type",
    ),
    pytest.param(
        _set("vigie-detections/attributes/timeFieldName", "@timestamp"),
        "time field @timestamp is not in the mapping",
        id="time-field",
    ),
    pytest.param(
        _set("vigie-detections/attributes/timeFieldName", "level"),
        "time field level is a keyword, not a date",
        id="time-field-type",
    ),
    pytest.param(
        _set("vigie-events/attributes/title", "vigie-event-*"),
        "vigie-event-* is none of Vigie's indices",
        id="data-view-pattern",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), MUTATIONS)
def test_a_broken_object_is_caught(mutate: Callable[[list[Json]], None], expected: str) -> None:
    objects = copy.deepcopy(_objects())
    mutate(objects)
    found = checks.problems(objects, _mappings())
    assert any(expected in problem for problem in found), found


# --- a real Kibana -------------------------------------------------------------------------


@pytest.mark.skipif(
    not KIBANA_URL,
    reason="VIGIE_KIBANA_URL is not set: no Kibana to import into (none can be installed here)",
)
def test_imports_into_a_real_kibana() -> None:
    assert KIBANA_URL is not None
    objects = _objects()
    with httpx.Client(base_url=KIBANA_URL, timeout=120) as client:
        answer = client.post(
            "/api/saved_objects/_import",
            params={"overwrite": "true"},
            headers={"kbn-xsrf": "true"},
            files={"file": ("vigie.ndjson", NDJSON.read_bytes(), "application/ndjson")},
        )
        assert answer.status_code == 200, answer.text
        outcome = answer.json()
        assert outcome["success"] is True, outcome.get("errors")
        assert outcome["successCount"] == len(objects)
        read = client.get(f"/api/saved_objects/dashboard/{DASHBOARD}")
        assert read.status_code == 200, read.text
        assert read.json()["attributes"]["title"] == "Vigie — détections"
