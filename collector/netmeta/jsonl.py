"""Records as JSON lines, as `vigie netmeta` writes them: here rather than in cli/ so that the
loop over every record is compiled with the modules that make them (setup.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, BinaryIO

import orjson

from collector.netmeta.records import ConnRecord, DnsRecord, Record


def write(records: Iterable[Record], fmt: str, out: BinaryIO) -> int:
    """Write records as JSON lines (`zeek`: Zeek's field names; else ECS-style), leaving out
    unset fields as Zeek's JSON logs do; returns how many were written."""
    count = 0
    zeek = fmt == "zeek"
    newline = orjson.OPT_APPEND_NEWLINE
    lines: list[bytes] = []
    for record in records:
        # Most records: their set fields by name.
        if zeek and isinstance(record, ConnRecord):
            fields: dict[str, Any] = record.zeek_set()
        elif zeek and isinstance(record, DnsRecord):
            fields = record.zeek_set()
        else:
            fields = record.zeek() if zeek else record.ecs()
            fields = {k: v for k, v in fields.items() if v is not None}
        lines.append(orjson.dumps(fields, option=newline))
        if len(lines) >= 1024:  # bytes in batches: one write call per thousand records
            out.write(b"".join(lines))
            count += len(lines)
            lines.clear()
    out.write(b"".join(lines))
    out.flush()
    return count + len(lines)
