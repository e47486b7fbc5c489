"""Indicators of compromise: how they are checked and written, and how arriving events are
matched against those of published alerts.

Kinds: `ip` (v4 or v6), `domain`, `url`, `md5`, `sha1`, `sha256`. Each value is normalised
once, when the alert is written (IPs compressed, domains and hashes lower case), so that
matching is a set lookup.

`IndicatorMatcher` looks up a fixed list of event fields (ECS names, and the Windows names
that Sysmon uses) in one dict per kind: the cost per event depends on the fields, not on how
many indicators are published. A domain also matches its subdomains (one lookup per label).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from detection.event import Event, iso_utc

KINDS = ("ip", "domain", "url", "md5", "sha1", "sha256")
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
_HEX = re.compile(r"^[0-9a-f]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

# Where each kind is looked for, in an event's Sigma view (ECS documents are flattened to
# dotted names; Windows events keep their EventData names).
FIELDS: dict[str, tuple[str, ...]] = {
    "ip": (
        "source.ip",
        "destination.ip",
        "client.ip",
        "server.ip",
        "host.ip",
        "related.ip",
        "SourceIp",  # Sysmon 3
        "DestinationIp",
        "IpAddress",  # Security 4624/4625
    ),
    "domain": (
        "dns.question.name",
        "url.domain",
        "destination.domain",
        "server.domain",
        "tls.client.server_name",
        "related.hosts",
        "QueryName",  # Sysmon 22
        "DestinationHostname",  # Sysmon 3
    ),
    "url": ("url.original", "url.full"),
    "md5": ("file.hash.md5", "process.hash.md5", "related.hash"),
    "sha1": ("file.hash.sha1", "process.hash.sha1", "related.hash"),
    "sha256": ("file.hash.sha256", "process.hash.sha256", "related.hash"),
}
SYSMON_HASHES = "Hashes"  # "SHA1=...,MD5=...,SHA256=...,IMPHASH=..."


class IndicatorError(ValueError):
    """A value that is not an indicator of its kind."""


def normalise(kind: str, value: str) -> str:
    """The value as stored and matched, or `IndicatorError` saying what is wrong."""
    text = value.strip()
    if kind == "ip":
        try:
            return ipaddress.ip_address(text).compressed
        except ValueError as exc:
            raise IndicatorError(f"{value!r} is not an IPv4 or IPv6 address") from exc
    if kind == "domain":
        name = text.lower().rstrip(".")
        labels = name.split(".")
        if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(x) for x in labels):
            raise IndicatorError(f"{value!r} is not a domain name")
        if _is_ip(name):
            raise IndicatorError(f"{value!r} is an IP address: give it as kind 'ip'")
        return name
    if kind == "url":
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https", "ftp") or not parts.hostname:
            raise IndicatorError(f"{value!r} is not an http(s) or ftp URL with a host")
        if any(c.isspace() for c in text):
            raise IndicatorError(f"{value!r}: a URL holds no white space")
        return text
    if kind in HASH_LENGTHS:
        digest = text.lower()
        if not _HEX.match(digest):
            raise IndicatorError(f"{value!r} is not hexadecimal")
        if len(digest) != HASH_LENGTHS[kind]:
            raise IndicatorError(
                f"a {kind} has {HASH_LENGTHS[kind]} hex digits, {value!r} has {len(digest)}"
            )
        return digest
    raise IndicatorError(f"unknown indicator kind {kind!r} (one of {', '.join(KINDS)})")


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AlertIndicators:
    """What the matcher needs of one published alert."""

    alert_id: str
    title: str
    severity: str
    indicators: tuple[tuple[str, str], ...]  # (kind, normalised value)


class IndicatorMatcher:
    """Detections (engine `indicator`) of the published alerts' indicators in events."""

    def __init__(self, alerts: Iterable[AlertIndicators]) -> None:
        # kind -> value -> the alerts that publish it
        self._index: dict[str, dict[str, list[AlertIndicators]]] = {k: {} for k in KINDS}
        self.count = 0
        for alert in alerts:
            for kind, value in alert.indicators:
                self._index[kind].setdefault(value, []).append(alert)
                self.count += 1
        self._kinds = [k for k in KINDS if self._index[k]]

    def __bool__(self) -> bool:
        return self.count > 0

    def match(self, events: list[Event]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in events:
            found = self.match_one(event)
            if found:
                out.extend(found)
        return out

    def match_one(self, event: Event) -> list[dict[str, Any]]:
        view = event.sigma_view()
        # alert id -> (alert, [(kind, value, field), ...])
        hits: dict[str, tuple[AlertIndicators, list[dict[str, str]]]] = {}
        for kind in self._kinds:
            index = self._index[kind]
            for name in FIELDS[kind]:
                raw = view.get(name)
                if raw is None:
                    continue
                for value in _values(raw):
                    for key in _keys(kind, value):
                        for alert in index.get(key, ()):
                            entry = hits.setdefault(alert.alert_id, (alert, []))
                            entry[1].append({"type": kind, "value": key, "field": name})
            if kind in HASH_LENGTHS and SYSMON_HASHES in view:
                for value in _sysmon_hashes(view[SYSMON_HASHES]).get(kind, ()):
                    for alert in index.get(value, ()):
                        entry = hits.setdefault(alert.alert_id, (alert, []))
                        entry[1].append({"type": kind, "value": value, "field": SYSMON_HASHES})
        return [self._detection(alert, matched, event) for alert, matched in hits.values()]

    @staticmethod
    def _detection(
        alert: AlertIndicators, matched: list[dict[str, str]], event: Event
    ) -> dict[str, Any]:
        return {
            "engine": "indicator",
            "rule_id": f"indicator:{alert.alert_id}",
            "rule_title": alert.title,
            "level": alert.severity,
            "source": event.source,
            "timestamp": iso_utc(event.timestamp),
            "tags": sorted({f"indicator.{m['type']}" for m in matched}),
            "meta": {"alert_id": alert.alert_id, "indicators": matched},
            "event": event.to_ecs(),
        }


def _values(raw: Any) -> Iterable[str]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw if isinstance(v, str | int)]
    return ()


def _keys(kind: str, value: str) -> Iterable[str]:
    """The lookup keys of one field value: the value normalised, and for a domain, the
    domains it is a subdomain of."""
    text = value.strip()
    if kind == "ip":
        try:
            return (ipaddress.ip_address(text).compressed,)
        except ValueError:
            return ()
    if kind == "domain":
        name = text.lower().rstrip(".")
        labels = name.split(".")
        return [".".join(labels[i:]) for i in range(len(labels) - 1)]
    if kind == "url":
        return (text,)
    return (text.lower(),)


def _sysmon_hashes(raw: Any) -> Mapping[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not isinstance(raw, str):
        return out
    for part in raw.split(","):
        name, _, digest = part.partition("=")
        kind = name.strip().lower().replace("-", "")
        if kind in HASH_LENGTHS:
            out.setdefault(kind, []).append(digest.strip().lower())
    return out
