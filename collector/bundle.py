"""The signed bundle of rules and indicators the agent fetches from the national service.

The envelope is verified against the key pinned at enrollment (`bundle_key` in the credential
file) before anything of it is used. A genuine signature is not enough, since every
establishment's bundle is signed with the same key and old bundles stay genuine:
- the bundle must name the agent's own establishment (FINESS);
- its version must not be lower than the highest accepted so far, kept in the state folder
  across restarts (`bundle-version.json`); the same version is accepted again only with the
  same content.
A bundle refused for any of these reasons is counted (`refused`, with the last reason) and
the last good one, kept in the state folder, stays in force.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from collector.files import write_atomically
from detection.bundle import BundleError, canonical, verify_bundle
from detection.indicators import AlertIndicators, IndicatorMatcher

log = logging.getLogger("vigie.agent")
FILE_NAME = "bundle.json"
HIGH_WATER_FILE = "bundle-version.json"


class BundleReplayed(BundleError):
    """A genuinely signed bundle that is not for this agent: another establishment's, or
    older than one already accepted."""


@dataclass
class BundleStore:
    state_dir: Path
    public_key: str
    establishment: str | None = None  # the agent's FINESS; unknown: no bundle is accepted
    refused: int = 0
    last_refusal: str | None = None

    @property
    def path(self) -> Path:
        return self.state_dir / FILE_NAME

    def current(self) -> dict[str, Any] | None:
        """The last good bundle (verified again: the file may have been tampered with)."""
        try:
            envelope = json.loads(self.path.read_text(encoding="utf-8"))
            return self._check(verify_bundle(envelope, self.public_key))
        except FileNotFoundError:
            return None
        except (ValueError, BundleError) as exc:
            log.error("the kept bundle %s is not used: %s", self.path, exc)
            return None

    def high_water(self) -> tuple[int, str] | None:
        """(version, content digest) of the highest bundle accepted, if any."""
        try:
            kept = json.loads((self.state_dir / HIGH_WATER_FILE).read_text(encoding="utf-8"))
            return int(kept["version"]), str(kept["digest"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Unreadable: refusing every bundle for ever would be worse than starting again.
            log.error(
                "%s unreadable (%s): the version high-water starts again", HIGH_WATER_FILE, exc
            )
            return None

    def _check(self, bundle: dict[str, Any]) -> dict[str, Any]:
        """`bundle` if it is this agent's and not older than what was accepted."""
        if self.establishment is None:
            raise BundleReplayed("this agent's establishment is not known yet")
        if bundle.get("establishment") != self.establishment:
            raise BundleReplayed(
                f"bundle for establishment {bundle.get('establishment')!r}, "
                f"not this agent's {self.establishment}"
            )
        version = bundle.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise BundleReplayed(f"bundle version {version!r} is not a number")
        high = self.high_water()
        if high is not None:
            if version < high[0]:
                raise BundleReplayed(
                    f"bundle version {version} is older than version {high[0]} already "
                    "accepted (a rollback)"
                )
            if version == high[0] and _digest(bundle) != high[1]:
                raise BundleReplayed(
                    f"bundle version {version} was already accepted with another content"
                )
        return bundle

    def _refuse(self, reason: str) -> bool:
        self.refused += 1
        self.last_refusal = reason
        log.error("bundle refused (the last good one stays in force): %s", reason)
        return False

    def fetch(self, client: httpx.Client) -> bool:
        """Fetch a newer bundle; True when one was verified and kept."""
        if self.establishment is None:
            log.warning("bundle not fetched: this agent's establishment is not known yet")
            return False
        have = self.current()
        if have is not None and self.high_water() is None:
            self._mark(have)  # kept by an agent from before the high-water mark
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
            bundle = self._check(verify_bundle(envelope, self.public_key))
        except (ValueError, BundleError) as exc:
            return self._refuse(str(exc))
        if have is not None and _digest(have) == _digest(bundle):
            return False  # the same bundle again: nothing new
        # The bundle first, then the high-water: a crash in between leaves a kept bundle at
        # least as new as the mark, never a mark that refuses the kept bundle.
        write_atomically(self.path, json.dumps(envelope))
        self._mark(bundle)
        return True

    def _mark(self, bundle: dict[str, Any]) -> None:
        mark = {"version": bundle["version"], "digest": _digest(bundle)}
        write_atomically(self.state_dir / HIGH_WATER_FILE, json.dumps(mark))


def _digest(bundle: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(bundle)).hexdigest()


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
