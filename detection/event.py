"""The event model: one ECS-shaped document per record, original fields kept.

An `Event` is what every source produces and every engine reads. Its `fields` follow the
Elastic Common Schema (`@timestamp` aside, which is `timestamp`), and keep the record's own
fields where ECS has no place for them: `winlog.event_data.*` for Windows, `log.syslog.*` for
syslog, the columns of a CSV file under their header names, and so on.

Sigma rules are written against the *original* field names (`Image`, `CommandLine`,
`EventID`, ...). `sigma_view()` gives that flat view of an event; the Sigma engine reads only
that view.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from detection.flatten import flatten

# ECS winlog keys -> the System field names that Sigma rules use.
_WINLOG_SYSTEM = {
    "event_id": "EventID",
    "channel": "Channel",
    "provider_name": "Provider_Name",
    "provider_guid": "Provider_Guid",
    "computer_name": "Computer",
    "record_id": "EventRecordID",
    "task": "Task",
    "opcode": "Opcode",
    "keywords": "Keywords",
    "version": "Version",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One normalised record."""

    timestamp: datetime
    fields: Mapping[str, Any]
    source: str = ""
    establishment: str | None = None  # FINESS number of the establishment
    agent: str | None = None  # id of the agent that read it
    _view: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def sigma_view(self) -> Mapping[str, Any]:
        """Flat field view for Sigma matching (computed once)."""
        if not self._view:
            self._view.update(sigma_view(self.fields))
        return self._view

    def __reduce__(self) -> tuple[Any, ...]:
        # The cached view is rebuilt on demand: it would double what goes between processes.
        return (Event, (self.timestamp, self.fields, self.source, self.establishment, self.agent))

    def to_ecs(self) -> dict[str, Any]:
        """The event as one ECS document, ready to be stored or shipped."""
        doc: dict[str, Any] = {"@timestamp": iso_utc(self.timestamp), **self.fields}
        if self.establishment:
            doc["organization"] = _with(doc.get("organization"), "id", self.establishment)
        if self.agent:
            doc["agent"] = _with(doc.get("agent"), "id", self.agent)
        if self.source:
            doc["log"] = _with(doc.get("log"), "file", {"path": self.source})
        return doc


def _with(current: Any, key: str, value: Any) -> dict[str, Any]:
    """An object of the ECS document with one key set. A record's own value there that is
    no object (`"log": "text"` in some JSON logs) is kept, as `value` inside it."""
    if isinstance(current, Mapping):
        return {**current, key: value}
    return {key: value} if current is None else {"value": current, key: value}


# Consecutive records mostly share their time (a log's second, a poll's `now`): the string is
# made once per distinct time. `typed`: a datetime subclass equal to a datetime may print more.
@functools.lru_cache(maxsize=1024, typed=True)
def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, microseconds kept."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: Any) -> datetime | None:
    """Parse the timestamps sources meet (ISO 8601, with or without zone; epoch seconds)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # beyond year 9999, NaN, ...
            return None
    if not isinstance(value, str) or not value:
        return None
    try:  # the common case, as agents write it (`iso_utc`): no rewriting needed
        ts = datetime.fromisoformat(value)
    except ValueError:
        pass
    else:
        return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
    text = value.strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # Windows writes 7 fractional digits; Python reads at most 6.
    if "." in text:
        head, _, frac = text.partition(".")
        digits = len(frac) - len(frac.lstrip("0123456789"))
        if digits > 6:
            frac = frac[:6] + frac[digits:]
        text = f"{head}.{frac}"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def sigma_view(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The flat view of an ECS document that Sigma rules are matched against.

    Windows events expose their EventData/UserData fields and System fields under the names
    of the Windows rendering (`Image`, `EventID`, `Channel`, ...). Every other document is
    flattened to dotted keys (`process.command_line`).
    """
    winlog = fields.get("winlog")
    if isinstance(winlog, Mapping):
        view: dict[str, Any] = {}
        for key, name in _WINLOG_SYSTEM.items():
            value = winlog.get(key)
            if value is not None:
                view[name] = value
        level = (
            fields.get("log", {}).get("level") if isinstance(fields.get("log"), Mapping) else None
        )
        if level is not None:
            view["Level"] = level
        for part in ("user_data", "event_data"):
            data = winlog.get(part)
            if isinstance(data, Mapping):
                view.update(data)
        if winlog.get("event_id") == 4688 and winlog.get("channel") == "Security":
            _add_process_creation_names(view)
        return view
    return flatten(fields)


_INTEGRITY = {
    "S-1-16-4096": "Low",
    "S-1-16-8192": "Medium",
    "S-1-16-12288": "High",
    "S-1-16-16384": "System",
}


def _add_process_creation_names(view: dict[str, Any]) -> None:
    """Security 4688 under the Sysmon names that `process_creation` rules use.

    Hospitals without Sysmon still audit process creation; this lets the same rules apply.
    The event's own fields stay; only missing names are added.
    """

    def put(name: str, value: Any) -> None:
        if value not in (None, "", "-"):
            view.setdefault(name, value)

    put("Image", view.get("NewProcessName"))
    put("ParentImage", view.get("ParentProcessName"))
    put("ParentProcessId", view.get("ProcessId"))
    if view.get("NewProcessId") is not None:
        view["ProcessId"] = view["NewProcessId"]  # 4688's ProcessId is the creator's
    target = view.get("TargetUserName")
    if target and target != "-":
        put("User", f"{view.get('TargetDomainName') or ''}\\{target}".lstrip("\\"))
    elif view.get("SubjectUserName"):
        put(
            "User", f"{view.get('SubjectDomainName') or ''}\\{view['SubjectUserName']}".lstrip("\\")
        )
    put("IntegrityLevel", _INTEGRITY.get(str(view.get("MandatoryLabel") or "")))
