"""Windows events in the rendering of the `evtx` package (and of SigmaHQ's regression data):
`{"Event": {"System": {...}, "EventData": {...}, "UserData": {...}}}` -> `Event`.

The ECS document follows Winlogbeat: `winlog.channel`, `winlog.event_id`,
`winlog.event_data.*`, `host.name`, `event.code`, ...
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from detection.errors import VigieDetectionError
from detection.event import Event, parse_timestamp

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class NotWindowsEvent(VigieDetectionError):
    """The document is not in the Windows event rendering."""


def is_rendering(doc: Any) -> bool:
    return isinstance(doc, Mapping) and isinstance(doc.get("Event"), Mapping)


# System elements copied as they are (their `#text` when they carry attributes).
_SYSTEM_TEXT = (
    ("channel", "Channel"),
    ("computer_name", "Computer"),
    ("record_id", "EventRecordID"),
    ("task", "Task"),
    ("opcode", "Opcode"),
    ("keywords", "Keywords"),
    ("version", "Version"),
)


def event_from_rendering(doc: Mapping[str, Any], source: str = "") -> Event:
    """Turn one rendered Windows event into an `Event`; raise NotWindowsEvent if it is not one."""
    # Written for speed (every Windows event passes here): plain dict checks, few calls.
    root = doc.get("Event") if isinstance(doc, dict | Mapping) else None
    system = root.get("System") if isinstance(root, dict | Mapping) else None
    if not isinstance(system, dict | Mapping):
        raise NotWindowsEvent("no Event.System object")
    provider = _attrs(system.get("Provider"))
    event_id = _as_int(_text(system.get("EventID")))
    timestamp = parse_timestamp(_attrs(system.get("TimeCreated")).get("SystemTime")) or _EPOCH
    winlog: dict[str, Any] = {}
    for key, element in _SYSTEM_TEXT:
        value = system.get(element)
        if type(value) is dict:
            value = value.get("#text")
        if value is not None:
            winlog[key] = value
    if event_id is not None:
        winlog["event_id"] = event_id
    name = provider.get("Name")
    if name is not None:
        winlog["provider_name"] = name
    guid = provider.get("Guid")
    if guid is not None:
        winlog["provider_guid"] = guid
    execution = _attrs(system.get("Execution"))
    if execution:
        winlog["process"] = {
            "pid": execution.get("ProcessID"),
            "thread": {"id": execution.get("ThreadID")},
        }
    user_id = _attrs(system.get("Security")).get("UserID")
    if user_id:
        winlog["user"] = {"identifier": user_id}
    event_data = _data_fields(root.get("EventData"))  # type: ignore[union-attr]
    if event_data:
        winlog["event_data"] = event_data
    user_data = _data_fields(root.get("UserData"))  # type: ignore[union-attr]
    if user_data:
        winlog["user_data"] = user_data
    fields: dict[str, Any] = {
        "event": {
            "kind": "event",
            "module": "windows",
            "code": str(event_id) if event_id is not None else None,
            "provider": name,
        },
        "host": {"name": winlog.get("computer_name")},
        "winlog": winlog,
    }
    level = _text(system.get("Level"))
    if level is not None:
        fields["log"] = {"level": level}
    return Event(timestamp=timestamp, fields=fields, source=source)


def _attrs(node: Any) -> Mapping[str, Any]:
    if isinstance(node, dict):
        attrs = node.get("#attributes")
        if isinstance(attrs, dict):
            return attrs
    return {}


def _text(node: Any) -> Any:
    """The value of an XML element: its `#text` when it also has attributes."""
    if isinstance(node, dict):
        return node.get("#text")
    return node


def _as_int(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


def _data_fields(node: Any) -> dict[str, Any]:
    """EventData/UserData as a flat name -> value dict.

    Named `<Data Name="X">` elements are already keys; nested UserData elements are flattened
    to their leaf names (as Windows tools show them); unnamed `<Data>` elements stay a list
    under `Data`.
    """
    out: dict[str, Any] = {}
    if not isinstance(node, dict):
        return out
    for key, value in node.items():
        if key == "#attributes":
            continue
        if key == "#text":
            out.setdefault("Data", value)
        elif not isinstance(value, dict):  # parsed JSON: dicts, never other mappings
            out[key] = value
        elif "#text" in value:
            out[key] = value["#text"]
        else:
            out.update(_data_fields(value))
    return out
