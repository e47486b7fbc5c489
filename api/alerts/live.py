"""The rules and indicators run on arriving events: Vigie's own Sigma rules, plus the Sigma
rules and indicators of the published alerts.

Several service processes may share one database: each checks the bundle version there at
most every `CHECK_EVERY` seconds and rebuilds its engines when it changed. A publication in
this process asks for a check on the next call (`published`), so its rules apply at once.
Also holds the key pair that signs the agents' bundles (made on the first start).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.alerts.rules import RuleTextError, compile_sigma
from api.alerts.service import Scope
from api.alerts.signing import BundleSigner
from api.settings import Settings
from detection.event import Event
from detection.indicators import AlertIndicators
from detection.indicators import IndicatorMatcher as AlertIndicatorMatcher
from detection.sigma import CompiledRule, SigmaEngine, SigmaRuleSet, load_sigma_rules

log = logging.getLogger("vigie.api")
CHECK_EVERY = 3.0  # seconds between two looks at the bundle version in the database


class IndicatorMatcher(Protocol):
    def match(self, events: list[Event]) -> list[dict[str, Any]]:
        """Detections (`Detection.to_dict()` shape, engine `indicator`) for the events."""
        ...


@dataclass(frozen=True)
class _Engines:
    version: int
    sigma: SigmaEngine | None
    indicators: AlertIndicatorMatcher | None
    alert_rules: int
    # rule id (an alert's Sigma rule, or `indicator:<alert id>`) -> the targets of the alerts
    # that carry it; Vigie's own rules are not in it and apply everywhere.
    scopes: dict[str, tuple[Scope, ...]] = field(default_factory=dict)


class LiveRules:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.signer = BundleSigner.in_data_dir(settings.data_dir)
        self._own = _own_rules(settings)
        self._current = _Engines(-1, SigmaEngine(self._own) if self._own else None, None, 0)
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._wanted = -1  # a version published here, awaited until this deadline:
        self._wanted_until = 0.0
        self.refresh_failures = 0

    @property
    def version(self) -> int:
        """The bundle version the engines were built from (-1: not yet built)."""
        return self._current.version

    def engines(self) -> tuple[SigmaEngine | None, IndicatorMatcher | None]:
        if self._due():
            self._refresh()
        current = self._current
        return current.sigma, current.indicators

    def meant_for(self, rule_id: str, region: str, kind: str) -> bool:
        """Whether a detection of `rule_id` may be kept for an establishment of that region
        and kind: an alert's rules and indicators apply where the alert is targeted only
        (its title, even its existence, may be TLP:AMBER or RED for the others)."""
        scopes = self._current.scopes.get(rule_id)
        return scopes is None or any(s.includes(region, kind) for s in scopes)

    def published(self, version: int) -> None:
        """This process published `version`: rebuild as soon as the database shows it."""
        with self._lock:
            self._wanted = max(self._wanted, version)
            # The publishing transaction may still roll back: wait for it a while only.
            self._wanted_until = time.monotonic() + 2 * CHECK_EVERY

    def _due(self) -> bool:
        now = time.monotonic()
        if self._current.version < self._wanted and now < self._wanted_until:
            return True
        return now - self._checked >= CHECK_EVERY

    def _refresh(self) -> None:
        with self._lock:
            if not self._due():  # another thread did it meanwhile
                return
            self._checked = time.monotonic()
            try:
                self._current = self._build()
            except SQLAlchemyError as exc:
                # Keep detecting with what was loaded; try again at the next check.
                self.refresh_failures += 1
                log.warning(
                    "published alerts not reloaded (%d failures): %s", self.refresh_failures, exc
                )

    def _build(self) -> _Engines:
        from api.alerts import service

        with self.sessions() as session:
            version = service.bundle_version(session=session)
            if version == self._current.version:
                return self._current
            alerts = service.published(session=session)
            rules: list[CompiledRule] = []
            seen: set[str] = set()
            scopes: dict[str, list[Scope]] = {}
            for alert in alerts:
                scope = service.scope_of(alert)
                scopes.setdefault(f"indicator:{alert.id}", []).append(scope)
                for n, text in enumerate(alert.sigma_rules):
                    try:
                        rule = compile_sigma(text)
                    except RuleTextError as exc:  # checked at publication; pySigma changed?
                        log.warning("alert %s sigma_rules[%d] skipped: %s", alert.id, n, exc)
                        continue
                    scopes.setdefault(rule.id, []).append(scope)
                    if rule.id not in seen:
                        seen.add(rule.id)
                        rules.append(rule)
            matcher = AlertIndicatorMatcher(
                AlertIndicators(
                    a.id,
                    a.title,
                    a.severity,
                    tuple((i["type"], i["value"]) for i in a.indicators),
                )
                for a in alerts
            )
        own = self._own or SigmaRuleSet()
        ruleset = SigmaRuleSet(rules=own.rules + rules, correlations=own.correlations)
        log.info(
            "bundle version %d: %d alert Sigma rules, %d indicators",
            version,
            len(rules),
            matcher.count,
        )
        return _Engines(
            version,
            SigmaEngine(ruleset) if ruleset.rules else None,
            matcher if matcher else None,
            len(rules),
            {rule_id: tuple(found) for rule_id, found in scopes.items()},
        )


def _own_rules(settings: Settings) -> SigmaRuleSet | None:
    folder = settings.rules_dir / "sigma"
    if not folder.is_dir():
        log.warning("no Sigma rules in %s: no server-side detection", folder)
        return None
    ruleset = load_sigma_rules([folder], cache_dir=settings.data_dir / "cache" / "sigma")
    for error in ruleset.errors:
        log.warning("Sigma rule skipped: %s", error)
    return ruleset if ruleset.rules else None
