"""An alert as a STIX 2.1 bundle.

Objects: the CERT's identity; the TLP 2.0 marking definition of the alert (the standard
objects, with their standard ids); one indicator per indicator of compromise (a STIX pattern),
per Sigma rule (pattern_type `sigma`) and per YARA rule (pattern_type `yara`); one
vulnerability per CVE; a report that refers to all of them. Every object is created by the
CERT and marked with the alert's TLP.

Ids are UUIDv5 of the alert and the object's content, so that exporting an alert twice gives
the same objects (a STIX consumer then updates rather than duplicates); the bundle's own id
is new each time, as the standard wants.
"""

from __future__ import annotations

import uuid
from typing import Any

from api.agents.models import as_utc
from api.alerts.models import Alert

_NAMESPACE = uuid.UUID("0b8f3f7e-2c55-4f4e-9c1a-7e3c5b2d9a10")  # Vigie's STIX objects
CERT_NAME = "CERT Santé (Vigie national service)"
TLP_EXTENSION = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"
TLP_MARKINGS = {
    "clear": "marking-definition--94868c89-83c2-464b-929b-a1a8aa3c8487",
    "green": "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb",
    "amber": "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421",
    "amber+strict": "marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003",
    "red": "marking-definition--e828b379-4e03-4974-9ac4-e53a884c97c1",
}
# kind -> the object path a STIX pattern compares
_PATTERN_PATHS = {
    "domain": "domain-name:value",
    "url": "url:value",
    "md5": "file:hashes.MD5",
    "sha1": "file:hashes.'SHA-1'",
    "sha256": "file:hashes.'SHA-256'",
}


def tlp_marking(level: str) -> dict[str, Any]:
    """The standard TLP 2.0 marking definition (as published by FIRST/OASIS)."""
    return {
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": TLP_MARKINGS[level],
        "created": "2022-10-01T00:00:00.000Z",
        "name": f"TLP:{level.upper()}",
        "extensions": {TLP_EXTENSION: {"extension_type": "property-extension", "tlp_2_0": level}},
    }


def pattern(kind: str, value: str) -> str:
    """The STIX pattern matching one indicator of compromise."""
    if kind == "ip":
        path = "ipv6-addr:value" if ":" in value else "ipv4-addr:value"
    else:
        path = _PATTERN_PATHS[kind]
    literal = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"[{path} = '{literal}']"


def _id(kind: str, *parts: str) -> str:
    return f"{kind}--{uuid.uuid5(_NAMESPACE, '|'.join(parts))}"


def _time(value: Any) -> str:
    """STIX timestamps: UTC, 'Z', milliseconds."""
    moment = as_utc(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def export(alert: Alert) -> dict[str, Any]:
    created, modified = _time(alert.created_at), _time(alert.updated_at)
    cert = _id("identity", "cert")
    marking = TLP_MARKINGS[alert.tlp]
    common = {
        "spec_version": "2.1",
        "created": created,
        "modified": modified,
        "created_by_ref": cert,
        "object_marking_refs": [marking],
    }
    identity = {
        "type": "identity",
        "spec_version": "2.1",
        "id": cert,
        "created": "2026-01-01T00:00:00.000Z",
        "modified": "2026-01-01T00:00:00.000Z",
        "name": CERT_NAME,
        "identity_class": "organization",
        "sectors": ["healthcare"],
    }
    objects: list[dict[str, Any]] = []
    for item in alert.indicators:
        objects.append(
            {
                "type": "indicator",
                "id": _id("indicator", alert.id, item["type"], item["value"]),
                **common,
                "name": f"{item['type']} {item['value']}",
                "indicator_types": ["malicious-activity"],
                "pattern": pattern(item["type"], item["value"]),
                "pattern_type": "stix",
                "pattern_version": "2.1",
                "valid_from": created,
            }
        )
    for kind, texts in (("sigma", alert.sigma_rules), ("yara", alert.yara_rules)):
        for n, text in enumerate(texts):
            objects.append(
                {
                    "type": "indicator",
                    "id": _id("indicator", alert.id, kind, text),
                    **common,
                    "name": f"{alert.title}: {kind} rule {n + 1}",
                    "indicator_types": ["malicious-activity"],
                    "pattern": text,
                    "pattern_type": kind,
                    "valid_from": created,
                }
            )
    for cve in alert.cves:
        objects.append(
            {
                "type": "vulnerability",
                "id": _id("vulnerability", cve),
                **common,
                "name": cve,
                "external_references": [{"source_name": "cve", "external_id": cve}],
            }
        )
    description = alert.description
    if alert.products:
        description += "\n\nAffected products: " + ", ".join(alert.products)
    report = {
        "type": "report",
        "id": _id("report", alert.id),
        **common,
        "name": alert.title,
        "description": description.strip(),
        "report_types": ["threat-report" if alert.indicators else "vulnerability"],
        "published": modified,
        "labels": [f"severity:{alert.severity}"],
        "object_refs": [o["id"] for o in objects] or [cert],
    }
    return {
        "type": "bundle",
        "id": f"bundle--{uuid.uuid4()}",
        "objects": [identity, tlp_marking(alert.tlp), report, *objects],
    }
