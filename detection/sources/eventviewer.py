"""Windows Event Viewer's CSV exports ("Save All Events As...", CSV) as Windows events.

    Level,Date and Time,Source,Event ID,Task Category
    Information,5/14/2024 10:12:33 AM,Service Control Manager,7045,None,"A service was ..."

(`Keywords` instead of `Level` for the Security log; in French `Niveau,Date et heure,Source,ID
de l'événement,Catégorie de la tâche`.) The message is a sixth column that the header does not
name. Each row becomes the event the EVTX reader makes of the same record, as far as the export
tells: `winlog.event_id`, `winlog.provider_name`, `winlog.channel`, `winlog.task`,
`winlog.keywords`, `log.level`, and the message as `message`, so that Sigma's Windows rules
that need only those fields fire. EventData is not in the export (only inside the message,
worded for people and translated), so rules on EventData fields cannot fire.

What the export leaves out is inferred:
- the channel, from the file's name (`Security.csv`, `Microsoft-Windows-Sysmon%4Operational.csv`)
  or else from the provider (Security-Auditing writes to Security, ...);
- the provider's name where Event Viewer shows a display name (`Microsoft Windows security
  auditing.`, `Sysmon`, `Kernel-General` for `Microsoft-Windows-Kernel-General`);
- the time zone: Event Viewer writes the local time of the machine that exported, without a
  zone; it is taken to be UTC, as for other CSV exports.
A row without a numeric event ID, or with fewer than five columns, is counted and skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detection.event import Event
from detection.logsource import POWERSHELL, POWERSHELL_CLASSIC, SERVICE_CHANNELS, SYSMON
from detection.sources.csvlog import csv_time
from detection.sources.jsonlog import EPOCH
from detection.sources.sniff import open_binary, open_text
from detection.sources.stats import ReadStats

# Level names as Event Viewer shows them (en, fr) -> the number EVTX holds.
_LEVELS = {
    "critical": 1,
    "critique": 1,
    "error": 2,
    "erreur": 2,
    "warning": 3,
    "avertissement": 3,
    "information": 4,
    "verbose": 5,
    "commentaires": 5,
}
# Security's first column is Keywords, as Event Viewer names them -> the auditing events' hex.
_AUDITING = "Microsoft-Windows-Security-Auditing"
_KEYWORDS = {
    "audit success": "0x8020000000000000",
    "succès de l'audit": "0x8020000000000000",
    "audit failure": "0x8010000000000000",
    "échec de l'audit": "0x8010000000000000",
}
# Display names Event Viewer shows in place of the provider's name.
_PROVIDERS = {
    "microsoft windows security auditing.": _AUDITING,
    "audit de la sécurité microsoft windows.": _AUDITING,
    "sysmon": "Microsoft-Windows-Sysmon",
    "eventlog": "Microsoft-Windows-Eventlog",
    "taskscheduler": "Microsoft-Windows-TaskScheduler",
    "winlogon": "Microsoft-Windows-Winlogon",
    "windows defender": "Microsoft-Windows-Windows Defender",
    "powershell": "PowerShell",
}
# Where a provider writes when the file's name does not say.
_PROVIDER_CHANNELS = {
    _AUDITING: "Security",
    "Service Control Manager": "System",
    "Microsoft-Windows-Sysmon": SYSMON,
    "Microsoft-Windows-PowerShell": POWERSHELL[0],
    "PowerShell": POWERSHELL_CLASSIC,
    "Microsoft-Windows-Windows Defender": "Microsoft-Windows-Windows Defender/Operational",
    "Microsoft-Windows-TaskScheduler": "Microsoft-Windows-TaskScheduler/Operational",
}
_EVENTLOG_CHANNELS = {1102: "Security", 104: "System"}  # log cleared: which log says it
_KNOWN_CHANNELS = {
    channel.lower(): channel
    for channel in {"Security", "System", "Application", "Setup"}.union(*SERVICE_CHANNELS.values())
}
_PARENTHESISED = re.compile(r".*\(([\w-]+)\)\s*$")
_SHORT_NAME = re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+")


def read_event_viewer(path: Path, stats: ReadStats) -> Iterator[Event]:
    """Yield one Windows event per row of an Event Viewer CSV export."""
    source = str(path)
    named_channel = _channel_from_name(path)
    with _open(path) as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except csv.Error as exc:
            stats.skip(source, 1, f"invalid CSV header: {exc}")
            return
        if not header:
            return
        security = header[0].strip().lstrip("\ufeff").lower().startswith(("keywords", "mots-cl"))
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                stats.skip(source, reader.line_num, f"invalid CSV row: {exc}")
                continue
            if not any(cell.strip() for cell in row):
                continue
            event = _row_event(row, security, named_channel, source)
            if isinstance(event, str):
                stats.skip(source, reader.line_num, event)
                continue
            stats.records_read += 1
            yield event


def _row_event(
    row: list[str], security: bool, named_channel: str | None, source: str
) -> Event | str:
    """The event of one row, or why the row cannot be one."""
    if len(row) < 5:
        return f"{len(row)} columns where an Event Viewer export has 6"
    first, when, shown, event_id_text, task = (cell.strip() for cell in row[:5])
    try:
        event_id = int(event_id_text)
    except ValueError:
        return f"event ID is not a number: {event_id_text[:40]!r}"
    provider = provider_name(shown)
    winlog: dict[str, Any] = {"event_id": event_id, "provider_name": provider}
    channel = named_channel or _channel_from_provider(provider, event_id, security)
    if channel:
        winlog["channel"] = channel
    if task and task.lower() not in ("none", "aucun"):
        winlog["task"] = task
    level: int | None = None
    if not security:
        level = _LEVELS.get(first.lower())
    elif provider == _AUDITING:
        # What the EVTX of auditing events holds: level 0 (LogAlways), keywords with the
        # audit bit. Other providers of the Security log (Eventlog's 1102) have their own,
        # which the export does not show: left out rather than guessed.
        level = 0
        keywords = _KEYWORDS.get(first.lower())
        if keywords:
            winlog["keywords"] = keywords
    fields: dict[str, Any] = {
        "event": {
            "kind": "event",
            "module": "windows",
            "code": str(event_id),
            "provider": provider,
        },
        "winlog": winlog,
    }
    if level is not None:
        fields["log"] = {"level": level}
    # A stray comma outside quotes splits the message: rejoined. Windows line ends as `\n`.
    message = ",".join(row[5:]).strip().replace("\r\n", "\n")
    if message:
        fields["message"] = message
    return Event(timestamp=csv_time(when) or EPOCH, fields=fields, source=source)


def provider_name(shown: str) -> str:
    """The provider's name for what Event Viewer shows in its Source column."""
    known = _PROVIDERS.get(shown.lower())
    if known:
        return known
    inner = _PARENTHESISED.match(shown)  # `PowerShell (Microsoft-Windows-PowerShell)`
    if inner:
        return inner.group(1)
    if _SHORT_NAME.fullmatch(shown) and not shown.startswith("Microsoft-"):
        return f"Microsoft-Windows-{shown}"  # `Kernel-General`: the name without its prefix
    return shown


def _channel_from_provider(provider: str, event_id: int, security: bool) -> str | None:
    if security:
        return "Security"
    if provider == "Microsoft-Windows-Eventlog":
        return _EVENTLOG_CHANNELS.get(event_id)
    return _PROVIDER_CHANNELS.get(provider)


def _channel_from_name(path: Path) -> str | None:
    """`Security.csv`, `Microsoft-Windows-Sysmon%4Operational.csv` -> the channel they name."""
    stem = path.name.split(".", 1)[0]
    return _KNOWN_CHANNELS.get(stem.replace("%4", "/").lower())


def _open(path: Path) -> io.TextIOWrapper:
    """UTF-8 or UTF-16 as other text inputs; an export whose header is not UTF-8 is read as
    Windows-1252 (the ANSI code page of French and English Windows)."""
    with open_binary(path) as fh:
        first = fh.readline()
    try:
        first.decode("utf-8")
    except UnicodeDecodeError:
        if not first.startswith((b"\xff\xfe", b"\xfe\xff")):
            return io.TextIOWrapper(open_binary(path), encoding="cp1252", newline="")
    return open_text(path, errors="replace")
