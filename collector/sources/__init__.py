"""The agent's live sources: files followed like `tail -F`, a syslog listener, a watched
folder of Windows event exports. Each is a `Source` (see `base.py`)."""

from __future__ import annotations

from collector.sources.base import BadRecord, Source, SourceError
from collector.sources.syslog_listener import SyslogListener
from collector.sources.tail import FileTail
from collector.sources.winlog import WatchedFolder

__all__ = ["BadRecord", "FileTail", "Source", "SourceError", "SyslogListener", "WatchedFolder"]
