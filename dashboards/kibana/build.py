"""Vigie's Kibana saved objects, written to `vigie.ndjson` beside this file.

    python dashboards/kibana/build.py            # (re)write vigie.ndjson
    python dashboards/kibana/build.py --check    # exit 1 if vigie.ndjson is not what this builds

For deployments whose events are in Elasticsearch (`api/events/elastic_store.py`): two data
views, on `vigie-events-*` (time `@timestamp`) and `vigie-detections-*` (time `timestamp`), five
Lens visualisations and the dashboard "Vigie — détections" that shows them. Kibana sees only what
Vigie writes to Elasticsearch; incidents, alerts, campaigns and NIS2 reports live in Vigie's own
database and its own dashboard.

The file is the saved-objects export format (NDJSON, one object a line) for Kibana 8.8.0 and
later: 8.8.0 is the first Kibana that reads `typeMigrationVersion`, and objects import into the
same or a newer version only, so each object carries the migration version its shape has in
8.8.0 and newer Kibanas migrate it up on import. Ids are fixed, keys sorted: the output is the
same byte for byte on every run, and an import with `overwrite=true` replaces the objects of an
earlier import instead of adding copies. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).resolve().with_name("vigie.ndjson")

# The core migrations of every type stopped at 8.8.0 (later Kibanas still export "8.8.0").
CORE_MIGRATION_VERSION = "8.8.0"
# What Kibana 8.8.0 itself writes for each type. Lens must not say less than 8.6.0: its 8.6.0
# migration renames the `indexpattern` datasource to `formBased`, and would replace the
# `formBased` state written here with nothing.
TYPE_MIGRATION_VERSIONS = {"index-pattern": "8.0.0", "lens": "8.6.0", "dashboard": "8.7.0"}
PANEL_VERSION = "8.8.0"  # the Kibana version a dashboard panel was saved with

EVENTS_VIEW = "vigie-events"
DETECTIONS_VIEW = "vigie-detections"
DASHBOARD_ID = "vigie-dashboard-detections"
LAYER = "layer1"  # each visualisation has one layer: its id only has to be unique in it
# Lens's name for "the documents themselves" in a count, not a field of the index.
RECORDS = "___records___"
TOP_RULES = 20
TOP_ESTABLISHMENTS = 20

Json = dict[str, Any]


def stringify(value: Any) -> str:
    """A JSON value as Kibana keeps some attributes: a string, here with sorted keys."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def saved_object(kind: str, object_id: str, attributes: Json, references: list[Json]) -> Json:
    return {
        "type": kind,
        "id": object_id,
        "attributes": attributes,
        "references": references,
        "coreMigrationVersion": CORE_MIGRATION_VERSION,
        "typeMigrationVersion": TYPE_MIGRATION_VERSIONS[kind],
        "managed": False,
    }


def data_view(object_id: str, name: str, pattern: str, time_field: str) -> Json:
    """An `index-pattern` object: Kibana reads the fields from the indices themselves."""
    return saved_object(
        "index-pattern",
        object_id,
        {
            "title": pattern,
            "name": name,
            "timeFieldName": time_field,
            "fields": "[]",
            "fieldAttrs": "{}",
            "fieldFormatMap": "{}",
            "runtimeFieldMap": "{}",
            "sourceFilters": "[]",
            "typeMeta": "{}",
        },
        [],
    )


# --- Lens columns (the "formBased" datasource: one column an aggregation) -------------------


def count(label: str) -> Json:
    return {
        "label": label,
        "customLabel": True,
        "dataType": "number",
        "operationType": "count",
        "isBucketed": False,
        "scale": "ratio",
        "sourceField": RECORDS,
        "params": {"emptyAsNull": True},
    }


def date_histogram(field: str, label: str) -> Json:
    return {
        "label": label,
        "customLabel": True,
        "dataType": "date",
        "operationType": "date_histogram",
        "isBucketed": True,
        "scale": "interval",
        "sourceField": field,
        "params": {"interval": "auto", "includeEmptyRows": True, "dropPartials": False},
    }


def top_values(field: str, label: str, size: int, order_by: str) -> Json:
    """The `size` most frequent values of a keyword field, by the metric column `order_by`."""
    return {
        "label": label,
        "customLabel": True,
        "dataType": "string",
        "operationType": "terms",
        "isBucketed": True,
        "scale": "ordinal",
        "sourceField": field,
        "params": {
            "size": size,
            "orderBy": {"type": "column", "columnId": order_by},
            "orderDirection": "desc",
            "otherBucket": True,
            "missingBucket": False,
            "parentFormat": {"id": "terms"},
        },
    }


def lens(
    object_id: str,
    title: str,
    description: str,
    view: str,
    columns: list[tuple[str, Json]],
    visualization_type: str,
    visualization: Json,
) -> Json:
    """A Lens visualisation of one layer on the data view `view`. Columns come buckets first,
    then metrics: Lens nests the aggregations in `columnOrder`'s order."""
    layer = {
        "columns": dict(columns),
        "columnOrder": [column_id for column_id, _ in columns],
        "incompleteColumns": {},
    }
    state = {
        "datasourceStates": {"formBased": {"layers": {LAYER: layer}}},
        "visualization": visualization,
        "query": {"language": "kuery", "query": ""},
        "filters": [],
        "internalReferences": [],
        "adHocDataViews": {},
    }
    reference = {
        "type": "index-pattern",
        "id": view,
        "name": f"indexpattern-datasource-layer-{LAYER}",
    }
    return saved_object(
        "lens",
        object_id,
        {
            "title": title,
            "description": description,
            "visualizationType": visualization_type,
            "state": state,
        },
        [reference],
    )


def xy(series_type: str, x: str, y: str, split: str | None = None) -> Json:
    layer: Json = {
        "layerId": LAYER,
        "layerType": "data",
        "seriesType": series_type,
        "xAccessor": x,
        "accessors": [y],
    }
    if split is not None:
        layer["splitAccessor"] = split
    return {
        "preferredSeriesType": series_type,
        "layers": [layer],
        "legend": {"isVisible": True, "position": "right"},
        "valueLabels": "hide",
        "fittingFunction": "None",
    }


def metric(column: str) -> Json:
    return {"layerId": LAYER, "layerType": "data", "metricAccessor": column}


def table(columns: list[str]) -> Json:
    return {
        "layerId": LAYER,
        "layerType": "data",
        "columns": [{"columnId": column, "isTransposed": False} for column in columns],
    }


# --- the objects ---------------------------------------------------------------------------


def visualisations() -> list[Json]:
    return [
        lens(
            "vigie-detections-count",
            "Vigie — nombre de détections",
            "Détections sur la période choisie, tous établissements confondus.",
            DETECTIONS_VIEW,
            [("count", count("Détections"))],
            "lnsMetric",
            metric("count"),
        ),
        lens(
            "vigie-detections-by-level",
            "Vigie — détections dans le temps, par niveau",
            "Détections par intervalle de temps, empilées par niveau de la règle.",
            DETECTIONS_VIEW,
            [
                ("time", date_histogram("timestamp", "Date")),
                ("level", top_values("level", "Niveau", 5, order_by="count")),
                ("count", count("Détections")),
            ],
            "lnsXY",
            xy("bar_stacked", x="time", y="count", split="level"),
        ),
        lens(
            "vigie-detections-top-rules",
            "Vigie — règles les plus déclenchées",
            "Les règles qui ont le plus détecté sur la période, avec leur identifiant.",
            DETECTIONS_VIEW,
            [
                ("rule_title", top_values("rule_title.keyword", "Règle", TOP_RULES, "count")),
                ("rule_id", top_values("rule_id", "Identifiant", 3, order_by="count")),
                ("count", count("Détections")),
            ],
            "lnsDatatable",
            table(["rule_title", "rule_id", "count"]),
        ),
        lens(
            "vigie-detections-by-establishment",
            "Vigie — détections par établissement",
            "Les établissements (FINESS) qui ont le plus de détections sur la période.",
            DETECTIONS_VIEW,
            [
                (
                    "establishment",
                    top_values("establishment", "Établissement", TOP_ESTABLISHMENTS, "count"),
                ),
                ("count", count("Détections")),
            ],
            "lnsXY",
            xy("bar_horizontal", x="establishment", y="count"),
        ),
        lens(
            "vigie-events-by-establishment",
            "Vigie — événements reçus, par établissement",
            "Événements reçus des agents par intervalle de temps, par établissement (FINESS) : "
            "un établissement qui se tait n'envoie plus rien.",
            EVENTS_VIEW,
            [
                ("time", date_histogram("@timestamp", "Date")),
                (
                    "organization",
                    top_values("organization.id", "Établissement", 10, order_by="count"),
                ),
                ("count", count("Événements")),
            ],
            "lnsXY",
            xy("bar_stacked", x="time", y="count", split="organization"),
        ),
    ]


# Where each visualisation sits on the dashboard's grid (48 columns wide): x, y, w, h.
LAYOUT = {
    "vigie-detections-count": (0, 0, 12, 15),
    "vigie-detections-by-level": (12, 0, 36, 15),
    "vigie-detections-top-rules": (0, 15, 24, 18),
    "vigie-detections-by-establishment": (24, 15, 24, 18),
    "vigie-events-by-establishment": (0, 33, 48, 15),
}


def dashboard(panels_of: list[Json]) -> Json:
    """The dashboard: one panel for each visualisation, by reference. Each panel names its
    reference `panel_<panelIndex>`, and the reference is `<panelIndex>:panel_<panelIndex>`, as
    Kibana 8 writes them (the prefix keeps references of different panels apart)."""
    panels = []
    references = []
    for visualisation in panels_of:
        index = visualisation["id"]
        x, y, w, h = LAYOUT[index]
        panels.append(
            {
                "version": PANEL_VERSION,
                "type": visualisation["type"],
                "panelIndex": index,
                "gridData": {"x": x, "y": y, "w": w, "h": h, "i": index},
                "embeddableConfig": {"enhancements": {}},
                "panelRefName": f"panel_{index}",
            }
        )
        references.append(
            {"type": visualisation["type"], "id": index, "name": f"{index}:panel_{index}"}
        )
    options = {
        "useMargins": True,
        "syncColors": False,
        "syncCursor": True,
        "syncTooltips": False,
        "hidePanelTitles": False,
    }
    search = {"query": {"language": "kuery", "query": ""}, "filter": []}
    return saved_object(
        "dashboard",
        DASHBOARD_ID,
        {
            "title": "Vigie — détections",
            "description": (
                "Détections et événements que Vigie écrit dans Elasticsearch. Les incidents, "
                "alertes, campagnes et déclarations NIS2 sont dans le tableau de bord de Vigie."
            ),
            "panelsJSON": stringify(panels),
            "optionsJSON": stringify(options),
            "kibanaSavedObjectMeta": {"searchSourceJSON": stringify(search)},
            "timeRestore": True,
            "timeFrom": "now-7d",
            "timeTo": "now",
            "refreshInterval": {"pause": True, "value": 60000},
            "version": 1,
        },
        references,
    )


def build() -> list[Json]:
    """Every object, those referenced before those referring to them."""
    views = [
        data_view(EVENTS_VIEW, "Vigie — événements", "vigie-events-*", "@timestamp"),
        data_view(DETECTIONS_VIEW, "Vigie — détections", "vigie-detections-*", "timestamp"),
    ]
    lenses = visualisations()
    return [*views, *lenses, dashboard(lenses)]


def render(objects: list[Json]) -> str:
    return "".join(stringify(item) + "\n" for item in objects)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file is not what this builds"
    )
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
        if current != text:
            print(f"{OUTPUT} is out of date: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8", newline="\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
