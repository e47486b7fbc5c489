"""What makes Kibana saved objects fail to import, or import and show nothing, checked without
a Kibana (none can be installed where the suite runs).

Each check takes the objects (and, for fields, the mappings of Vigie's index templates by index
pattern) and returns its problems as sentences, none when all is well; `problems` runs them all.
Kibana publishes no schema of these objects: what is checked here is what its import and its
renderers rely on, as read in its sources and in real exports:

- every object has the keys of an export, migration versions that Kibana 8.8.0 knows (an
  object newer than the Kibana it goes to is refused), ids unique;
- every reference resolves to an object of the set, of the type it says;
- the attributes Kibana keeps as JSON strings parse, to the kind of value expected;
- a dashboard has only the attributes Kibana's dashboard schema allows, each panel on the
  48-column grid without overlapping another, and each `panelRefName` has its reference
  (`<panelIndex>:<panelRefName>`, or the bare name as 7.x wrote it);
- a Lens visualisation has, for each layer, its `indexpattern-datasource-layer-<id>`
  reference; `columnOrder` lists the layer's columns, buckets first; what the chart draws are
  columns of the layer; each field is in the mapping of the data view's indices, aggregatable
  where it is bucketed, a date under a date histogram;
- a data view's index pattern is one of Vigie's templates, its time field a date there.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

Json = dict[str, Any]
Mappings = Mapping[str, Mapping[str, Any]]  # index pattern -> {"properties", "dynamic_templates"}

TARGET = "8.8.0"  # the oldest Kibana the objects are written for
TARGET_VERSION = (8, 8, 0)
REQUIRED = (
    "type",
    "id",
    "attributes",
    "references",
    "coreMigrationVersion",
    "typeMigrationVersion",
)
# The newest migration version of each type that Kibana 8.8.0 knows, as far as checked: an
# 8.8.0 export writes `index-pattern` 8.0.0 and `dashboard` 8.7.0 (so do Kibana's own sample
# data sets, core 8.8.0); Lens's 8.6.0 migration (the `formBased` datasource) exists from 8.6.
KNOWN_IN_TARGET = {"index-pattern": "8.0.0", "lens": "8.6.0", "dashboard": "8.7.0"}
# The oldest a shape allows: below 8.6.0, Kibana would run Lens's 8.6.0 migration, which
# replaces the datasource states by the `indexpattern` one, dropping `formBased`.
OLDEST_FOR_SHAPE = {"lens": "8.6.0"}

# Attributes Kibana keeps as strings of JSON, and the kind of value each holds.
STRINGIFIED: dict[str, dict[str, type]] = {
    "index-pattern": {
        "fields": list,
        "fieldAttrs": dict,
        "fieldFormatMap": dict,
        "runtimeFieldMap": dict,
        "sourceFilters": list,
        "typeMeta": dict,
    },
    "dashboard": {
        "panelsJSON": list,
        "optionsJSON": dict,
        "kibanaSavedObjectMeta.searchSourceJSON": dict,
    },
}
# The attributes the dashboard schema accepts; it refuses any other (`unknowns: 'forbid'`).
DASHBOARD_ATTRIBUTES = {
    "title",
    "description",
    "kibanaSavedObjectMeta",
    "timeRestore",
    "timeFrom",
    "timeTo",
    "refreshInterval",
    "controlGroupInput",
    "panelsJSON",
    "optionsJSON",
    "hits",
    "version",
}
GRID_COLUMNS = 48
LAYER_REFERENCE = "indexpattern-datasource-layer-"
RECORDS = "___records___"  # Lens's count of documents: no field
NUMBERS = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float"}
AGGREGATABLE = {"keyword", "date", "date_nanos", "boolean", "ip", *NUMBERS}
DATES = {"date", "date_nanos"}
LENS_DATA_TYPE = {
    "keyword": "string",
    "date": "date",
    "date_nanos": "date",
    "boolean": "boolean",
    "ip": "ip",
    **dict.fromkeys(NUMBERS, "number"),
}


def version(text: Any) -> tuple[int, ...] | None:
    """`8.6.0` as (8, 6, 0); None for anything else."""
    if not isinstance(text, str):
        return None
    parts = text.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        return None
    return tuple(int(part) for part in parts)


def _name(item: Mapping[str, Any]) -> str:
    return f"{item.get('type')} {item.get('id')}"


def _of_type(objects: Iterable[Json], kind: str) -> list[Json]:
    return [item for item in objects if item.get("type") == kind]


def _parsed(item: Mapping[str, Any], path: str) -> Any:
    """The JSON inside a stringified attribute (`a.b` for nested ones), None if it is not."""
    value: Any = item.get("attributes", {})
    for key in path.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    if not isinstance(value, str):
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


# --- the checks ----------------------------------------------------------------------------


def shape_problems(objects: list[Json]) -> list[str]:
    found = []
    for item in objects:
        where = _name(item)
        missing = [key for key in REQUIRED if key not in item]
        if missing:
            found.append(f"{where}: missing {', '.join(missing)}")
            continue
        if not isinstance(item["id"], str) or not item["id"]:
            found.append(f"{where}: the id is not a string")
        if not isinstance(item["attributes"], dict):
            found.append(f"{where}: attributes is not an object")
        if not isinstance(item["references"], list):
            found.append(f"{where}: references is not a list")
        core = version(item["coreMigrationVersion"])
        if core is None or core > TARGET_VERSION:
            found.append(f"{where}: coreMigrationVersion {item['coreMigrationVersion']!r}")
        own = version(item["typeMigrationVersion"])
        known = version(KNOWN_IN_TARGET.get(item["type"]))
        oldest = version(OLDEST_FOR_SHAPE.get(item["type"], "0.0.0"))
        if own is None or known is None:
            found.append(f"{where}: typeMigrationVersion {item['typeMigrationVersion']!r}")
        elif own > known:
            found.append(
                f"{where}: typeMigrationVersion {item['typeMigrationVersion']} is newer than "
                f"Kibana {TARGET} knows ({KNOWN_IN_TARGET[item['type']]})"
            )
        elif oldest is not None and own < oldest:
            found.append(
                f"{where}: typeMigrationVersion {item['typeMigrationVersion']} is older than "
                f"its shape ({OLDEST_FOR_SHAPE[item['type']]})"
            )
    ids = Counter(item.get("id") for item in objects)
    found += [f"duplicate id {object_id}" for object_id, n in sorted(ids.items()) if n > 1]
    return found


def reference_problems(objects: list[Json]) -> list[str]:
    types_of: dict[str, set[str]] = {}
    for item in objects:
        types_of.setdefault(str(item.get("id")), set()).add(str(item.get("type")))
    found = []
    for item in objects:
        where = _name(item)
        names: Counter[str] = Counter()
        for reference in item.get("references", []):
            if not all(isinstance(reference.get(key), str) for key in ("name", "type", "id")):
                found.append(f"{where}: reference {reference} lacks a name, type or id")
                continue
            names[reference["name"]] += 1
            types = types_of.get(reference["id"], set())
            if not types:
                found.append(
                    f"{where}: reference {reference['name']} ({reference['type']} "
                    f"{reference['id']}) resolves to nothing in the file"
                )
            elif reference["type"] not in types:
                found.append(
                    f"{where}: reference {reference['name']} says {reference['type']} but "
                    f"{reference['id']} is of type {', '.join(sorted(types))}"
                )
        found += [f"{where}: two references named {name}" for name, n in names.items() if n > 1]
    return found


def stringified_problems(objects: list[Json]) -> list[str]:
    found = []
    for item in objects:
        for path, kind in STRINGIFIED.get(str(item.get("type")), {}).items():
            value = _parsed(item, path)
            if not isinstance(value, kind):
                found.append(
                    f"{_name(item)}: {path} is not a string of JSON holding a {kind.__name__}"
                )
    return found


def dashboard_problems(objects: list[Json]) -> list[str]:
    found = []
    for item in _of_type(objects, "dashboard"):
        where = _name(item)
        unknown = sorted(set(item.get("attributes", {})) - DASHBOARD_ATTRIBUTES)
        if unknown:
            found.append(f"{where}: {', '.join(unknown)} not a dashboard attribute")
        panels = _parsed(item, "panelsJSON")
        if not isinstance(panels, list):
            continue  # stringified_problems says so
        references = {ref.get("name"): ref for ref in item.get("references", [])}
        indexes: Counter[str] = Counter()
        cells: dict[tuple[int, int], str] = {}
        for panel in panels:
            index = panel.get("panelIndex") if isinstance(panel, dict) else None
            if not isinstance(index, str) or not index:
                found.append(f"{where}: a panel has no panelIndex")
                continue
            indexes[index] += 1
            found += _grid_problems(f"{where} panel {index}", panel.get("gridData"), index, cells)
            ref_name = panel.get("panelRefName")
            if ref_name is None:
                if "attributes" not in panel.get("embeddableConfig", {}):
                    found.append(f"{where} panel {index}: neither a reference nor a value")
                continue
            reference = references.get(f"{index}:{ref_name}") or references.get(ref_name)
            if reference is None:
                found.append(f"{where} panel {index}: panelRefName {ref_name} has no reference")
            elif panel.get("type") not in (None, reference.get("type")):
                found.append(
                    f"{where} panel {index}: a {panel['type']} panel refers to a "
                    f"{reference.get('type')}"
                )
        found += [f"{where}: two panels {index}" for index, n in indexes.items() if n > 1]
    return found


def _grid_problems(
    where: str, grid: Any, index: str, cells: dict[tuple[int, int], str]
) -> list[str]:
    if not isinstance(grid, dict) or not all(
        isinstance(grid.get(key), int) for key in ("x", "y", "w", "h")
    ):
        return [f"{where}: gridData needs integers x, y, w, h"]
    found = []
    if grid.get("i") != index:
        found.append(f"{where}: gridData.i is not the panelIndex")
    x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > GRID_COLUMNS:
        found.append(f"{where}: gridData {x},{y} {w}x{h} is off the {GRID_COLUMNS}-column grid")
        return found
    for cell in ((column, row) for column in range(x, x + w) for row in range(y, y + h)):
        if cell in cells:
            found.append(f"{where}: overlaps panel {cells[cell]}")
            break
        cells[cell] = index
    return found


def lens_problems(objects: list[Json], mappings: Mappings) -> list[str]:
    titles = {
        item["id"]: item.get("attributes", {}).get("title")
        for item in _of_type(objects, "index-pattern")
    }
    found = []
    for item in _of_type(objects, "lens"):
        where = _name(item)
        state = item.get("attributes", {}).get("state", {})
        layers = state.get("datasourceStates", {}).get("formBased", {}).get("layers")
        if not isinstance(layers, dict) or not layers:
            found.append(f"{where}: no formBased layers")
            continue
        references = {ref.get("name"): ref for ref in item.get("references", [])}
        for layer_id, layer in layers.items():
            reference = references.get(f"{LAYER_REFERENCE}{layer_id}")
            if reference is None or reference.get("type") != "index-pattern":
                found.append(f"{where}: layer {layer_id} has no {LAYER_REFERENCE}{layer_id}")
                mapping = None
            else:
                mapping = mappings.get(str(titles.get(reference.get("id"))))
            found += _layer_problems(f"{where} layer {layer_id}", layer, mapping)
        visualization = state.get("visualization", {})
        kind = item.get("attributes", {}).get("visualizationType")
        for layer_id, column in _drawn(kind, visualization, where, found):
            columns = layers.get(layer_id, {}).get("columns", {}) if layer_id else {}
            if layer_id not in layers:
                found.append(f"{where}: the chart draws layer {layer_id}, which is not there")
            elif column not in columns:
                found.append(f"{where}: the chart draws column {column}, not in its layer")
    return found


def _layer_problems(where: str, layer: Any, mapping: Mapping[str, Any] | None) -> list[str]:
    columns = layer.get("columns") if isinstance(layer, dict) else None
    order = layer.get("columnOrder") if isinstance(layer, dict) else None
    if not isinstance(columns, dict) or not isinstance(order, list):
        return [f"{where}: needs columns and columnOrder"]
    found = []
    if len(set(order)) != len(order) or set(order) != set(columns):
        found.append(f"{where}: columnOrder {order} is not the columns {sorted(columns)}")
    bucketed = [bool(columns[column].get("isBucketed")) for column in order if column in columns]
    if bucketed != sorted(bucketed, reverse=True):
        found.append(f"{where}: a metric comes before a bucket in columnOrder")
    for column_id, column in columns.items():
        found += _column_problems(f"{where} column {column_id}", column, columns, mapping)
    return found


def _column_problems(
    where: str, column: Json, columns: Mapping[str, Any], mapping: Mapping[str, Any] | None
) -> list[str]:
    found = []
    operation, field = column.get("operationType"), column.get("sourceField")
    if operation == "terms":
        order_by = column.get("params", {}).get("orderBy", {})
        if order_by.get("type") == "column" and order_by.get("columnId") not in columns:
            found.append(f"{where}: ordered by column {order_by.get('columnId')}, not there")
    if operation == "count" and field == RECORDS:
        return found
    if not isinstance(field, str):
        return [*found, f"{where}: {operation} has no sourceField"]
    if mapping is None:
        return found  # the layer's data view is missing or unknown: said elsewhere
    kind = field_type(mapping, field)
    if kind is None:
        return [*found, f"{where}: {field} is not in the mapping of the data view's indices"]
    if column.get("isBucketed") and kind not in AGGREGATABLE:
        found.append(f"{where}: {field} is a {kind}, not aggregatable")
    if operation == "date_histogram" and kind not in DATES:
        found.append(f"{where}: date histogram on {field}, a {kind}")
    if column.get("isBucketed") and column.get("dataType") != LENS_DATA_TYPE.get(kind):
        found.append(f"{where}: dataType {column.get('dataType')} for {field}, a {kind}")
    return found


def _drawn(
    kind: Any, visualization: Mapping[str, Any], where: str, found: list[str]
) -> list[tuple[str | None, Any]]:
    """(layer, column) for each column the visualisation draws."""
    if kind == "lnsXY":
        return [
            (layer.get("layerId"), column)
            for layer in visualization.get("layers", [])
            for column in [
                *layer.get("accessors", []),
                *(layer[key] for key in ("xAccessor", "splitAccessor") if key in layer),
            ]
        ]
    if kind == "lnsMetric":
        keys = ("metricAccessor", "secondaryMetricAccessor", "maxAccessor", "breakdownByAccessor")
        return [
            (visualization.get("layerId"), visualization[key])
            for key in keys
            if key in visualization
        ]
    if kind == "lnsDatatable":
        return [
            (visualization.get("layerId"), column.get("columnId"))
            for column in visualization.get("columns", [])
        ]
    found.append(f"{where}: visualizationType {kind} is not one these checks know")
    return []


def data_view_problems(objects: list[Json], mappings: Mappings) -> list[str]:
    found = []
    for item in _of_type(objects, "index-pattern"):
        attributes = item.get("attributes", {})
        mapping = mappings.get(attributes.get("title"))
        if mapping is None:
            found.append(f"{_name(item)}: {attributes.get('title')} is none of Vigie's indices")
            continue
        time_field = attributes.get("timeFieldName")
        kind = field_type(mapping, time_field) if isinstance(time_field, str) else None
        if kind is None:
            found.append(f"{_name(item)}: time field {time_field} is not in the mapping")
        elif kind not in DATES:
            found.append(f"{_name(item)}: time field {time_field} is a {kind}, not a date")
    return found


def problems(objects: list[Json], mappings: Mappings) -> list[str]:
    return [
        *shape_problems(objects),
        *reference_problems(objects),
        *stringified_problems(objects),
        *dashboard_problems(objects),
        *lens_problems(objects, mappings),
        *data_view_problems(objects, mappings),
    ]


# --- fields --------------------------------------------------------------------------------


def field_type(mapping: Mapping[str, Any], path: str) -> str | None:
    """The type Elasticsearch gives `path` under an index template's mappings, None if it
    gives none: declared fields and their declared sub-fields (`rule_title.keyword`), and,
    inside an object declared dynamic, whatever the dynamic templates make of a leaf. Objects
    themselves, and what lies under a disabled object, are no fields."""
    properties: Mapping[str, Any] = mapping.get("properties", {})
    parts = path.split(".")
    for at, part in enumerate(parts):
        node = properties.get(part)
        if not isinstance(node, Mapping) or node.get("enabled") is False:
            return None
        rest = parts[at + 1 :]
        if "properties" in node:
            properties = node["properties"]
            continue
        if node.get("dynamic") in (True, "true"):
            return _dynamic_type(mapping.get("dynamic_templates", []), rest)
        if not rest:
            return node.get("type")
        if len(rest) == 1:
            return node.get("fields", {}).get(rest[0], {}).get("type")
        return None
    return None  # the path ends on an object


def _dynamic_type(templates: list[Mapping[str, Any]], rest: list[str]) -> str | None:
    """What the dynamic templates map a leaf to, `rest` being its path inside the object."""
    if not rest:
        return None
    mappings = [spec["mapping"] for template in templates for spec in template.values()]
    subfields = {
        name: sub["type"] for mapping in mappings for name, sub in mapping.get("fields", {}).items()
    }
    if len(rest) > 1 and rest[-1] in subfields:
        return str(subfields[rest[-1]])
    if rest[-1] == "keyword":
        return None  # every leaf is a keyword already: the templates make no `.keyword`
    leaf_types = {mapping.get("type") for mapping in mappings}
    return str(leaf_types.pop()) if len(leaf_types) == 1 else None
