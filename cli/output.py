"""Detection writers for `vigie scan --format table|jsonl|csv`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TextIO

import orjson

from detection import csvsafe
from detection.detection import Detection

FORMATS = ("table", "jsonl", "csv")
CSV_COLUMNS = (
    "timestamp",
    "engine",
    "level",
    "rule_id",
    "rule_title",
    "source",
    "host",
    "file",
    "strings",
    "event",
)


def write(fmt: str, detections: Iterable[Detection], out: TextIO) -> int:
    """Write every detection; return how many."""
    writer: Callable[[Iterable[Detection], TextIO], int] = {
        "table": _table,
        "jsonl": _jsonl,
        "csv": _csv,
    }[fmt]
    return writer(detections, out)


def _jsonl(detections: Iterable[Detection], out: TextIO) -> int:
    count = 0
    for detection in detections:
        out.write(orjson.dumps(detection.to_dict(), default=str).decode() + "\n")
        count += 1
    return count


def _host(detection: Detection) -> str:
    event = detection.event or (detection.events[-1] if detection.events else None)
    if event is None:
        return ""
    host = event.fields.get("host")
    if isinstance(host, dict):
        return str(host.get("name") or host.get("hostname") or "")
    view = event.sigma_view()
    return str(view.get("Computer") or view.get("host.name") or view.get("id.orig_h") or "")


def _strings(detection: Detection) -> str:
    return " ".join(f"{s.identifier}@{s.offset}" for s in detection.strings)


def _csv(detections: Iterable[Detection], out: TextIO) -> int:
    writer = csvsafe.writer(out)  # no cell runs as a formula in a spreadsheet
    writer.writerow(CSV_COLUMNS)
    count = 0
    for d in detections:
        data = d.to_dict()
        event: Any = data.get("event") or data.get("events") or ""
        writer.writerow(
            (
                data["timestamp"],
                d.engine,
                d.level,
                d.rule_id,
                d.rule_title,
                d.source,
                _host(d),
                d.file or "",
                _strings(d),
                orjson.dumps(event, default=str).decode() if event else "",
            )
        )
        count += 1
    return count


def _table(detections: Iterable[Detection], out: TextIO) -> int:
    out.write(f"{'TIME (UTC)':20} {'LEVEL':13} {'ENGINE':6} {'RULE':50} {'HOST/FILE':24} SOURCE\n")
    count = 0
    for d in detections:
        when = d.to_dict()["timestamp"][:19].replace("T", " ")
        where = _host(d) if d.engine == "sigma" else (d.file or "")
        title = d.rule_title if len(d.rule_title) <= 50 else d.rule_title[:47] + "..."
        out.write(f"{when:20} {d.level:13} {d.engine:6} {title:50} {where[-24:]:24} {d.source}\n")
        count += 1
    return count
