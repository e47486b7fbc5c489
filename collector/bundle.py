"""The signed bundle of rules and indicators the agent fetches from the national service.

The envelope is verified against the key pinned at enrollment (`bundle_key` in the credential
file) before anything of it is used; a bundle that does not verify is refused and the last
good one, kept in the state folder, stays in force.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from collector.files import write_atomically
from detection.bundle import BundleError, verify_bundle
from detection.indicators import AlertIndicators, IndicatorMatcher

log = logging.getLogger("vigie.agent")
FILE_NAME = "bundle.json"


@dataclass
class BundleStore:
    state_dir: Path
    public_key: str
    refused: int = 0

    @property
    def path(self) -> Path:
        return self.state_dir / FILE_NAME

    def current(self) -> dict[str, Any] | None:
        """The last good bundle (verified again: the file may have been tampered with)."""
        try:
            envelope = json.loads(self.path.read_text(encoding="utf-8"))
            return verify_bundle(envelope, self.public_key)
        except FileNotFoundError:
            return None
        except (ValueError, BundleError) as exc:
            log.error("the kept bundle %s does not verify: %s", self.path, exc)
            return None

    def fetch(self, client: httpx.Client) -> bool:
        """Fetch a newer bundle; True when one was verified and kept."""
        have = self.current()
        params = {"version": have["version"]} if have else {}
        try:
            answer = client.get("/alerts/bundle", params=params)
        except httpx.HTTPError as exc:
            log.warning("bundle not fetched: %s", exc or type(exc).__name__)
            return False
        if answer.status_code == 304:
            return False
        if answer.status_code != 200:
            log.warning("bundle not fetched: %d %s", answer.status_code, answer.text[:200])
            return False
        try:
            envelope = answer.json()
            verify_bundle(envelope, self.public_key)
        except (ValueError, BundleError) as exc:
            self.refused += 1
            log.error("bundle refused (the last good one stays in force): %s", exc)
            return False
        write_atomically(self.path, json.dumps(envelope))
        return True


def rule_texts(bundle: dict[str, Any] | None, kind: str) -> list[tuple[str, str]]:
    """(alert id, rule text) of the bundle's `sigma` or `yara` rules, in the bundle's order.

    An item without a text is left out (and logged): the rest of the bundle still counts.
    """
    found: list[tuple[str, str]] = []
    for n, item in enumerate((bundle or {}).get(kind, [])):
        text = item.get("rule") if isinstance(item, dict) else None
        if not isinstance(text, str):
            log.warning("bundle %s[%d] holds no rule text: skipped", kind, n)
            continue
        found.append((str(item.get("alert_id", "alert")), text))
    return found


def indicator_matcher(bundle: dict[str, Any] | None) -> IndicatorMatcher | None:
    if not bundle:
        return None
    alerts = {a["id"]: a for a in bundle.get("alerts", [])}
    per_alert: dict[str, list[tuple[str, str]]] = {}
    for item in bundle.get("indicators", []):
        per_alert.setdefault(item["alert_id"], []).append((item["type"], item["value"]))
    matcher = IndicatorMatcher(
        AlertIndicators(
            alert_id,
            str(alerts.get(alert_id, {}).get("title", alert_id)),
            str(alerts.get(alert_id, {}).get("severity", "high")),
            tuple(values),
        )
        for alert_id, values in per_alert.items()
    )
    return matcher if matcher else None
