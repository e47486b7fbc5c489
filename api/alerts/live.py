"""The rules and indicators run on arriving events: Vigie's own Sigma rules, plus the Sigma
rules and indicators of the published alerts.

Several service processes may share one database: each checks the bundle version there at
most every `CHECK_EVERY` seconds and rebuilds its engines when it changed. A publication in
this process asks for a check on the next call (`published`), so its rules apply at once.
A rebuild compiles only the rule texts it has not compiled before (`SigmaCache`).

Detections of an alert's rules carry the alert's id (`meta.alert_id`) and are kept where that
alert is targeted (`meant_for`); `knows` tells which rule ids an establishment's agent may
be trusted to run, for campaigns.

Also holds the key pair that signs the agents' bundles (made on the first start).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from api.alerts.rules import RuleTextError, SigmaCache
from api.alerts.service import Scope
from api.alerts.signing import BundleSigner
from api.settings import Settings
from detection.detection import Detection
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

    def match_one(self, event: Event) -> list[dict[str, Any]]:
        """The same for one event."""
        ...


class AlertSigmaEngine(SigmaEngine):
    """The engine over Vigie's own rules and the published alerts' rules, whose detections
    of an alert's rule say which alert (`meta.alert_id`): rules are told apart by alert, not
    by their id alone, so that an id found in two alerts never lends one alert's logic the
    other's scope (one found in two alerts was possible before ids were held unique)."""

    def __init__(self, ruleset: SigmaRuleSet, alert_of: dict[int, str]) -> None:
        super().__init__(ruleset)
        self._alert_of = alert_of  # id() of a rule object in `ruleset` -> its alert

    def detection(self, rule: CompiledRule, event: Event) -> Detection:
        found = super().detection(rule, event)
        alert_id = self._alert_of.get(id(rule))
        if alert_id is None:
            return found
        return replace(found, meta={**found.meta, "alert_id": alert_id})


@dataclass(frozen=True)
class _Engines:
    version: int
    sigma: SigmaEngine | None
    indicators: AlertIndicatorMatcher | None
    alert_rules: int
    # alert id -> its target: where that alert's detections may be kept
    scopes: dict[str, Scope] = field(default_factory=dict)
    # rule id (an alert's Sigma rule, or `indicator:<alert id>`) -> the targets of the
    # published alerts that carry it: where an agent's detection of it counts as known
    known: dict[str, tuple[Scope, ...]] = field(default_factory=dict)


class LiveRules:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self.signer = BundleSigner.in_data_dir(settings.data_dir)
        self._own = _own_rules(settings)
        own = self._own or SigmaRuleSet()
        # Ids of Vigie's own rules (correlations too): no alert may take one.
        self.own_rule_ids = frozenset([r.id for r in own.rules] + [c.id for c in own.correlations])
        self.cache = SigmaCache()  # alerts' rules compiled once per process
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

    def meant_for(self, alert_id: str | None, region: str, kind: str) -> bool:
        """Whether a server detection of the alert `alert_id` (None: of Vigie's own rules)
        may be kept for an establishment of that region and kind: an alert's rules and
        indicators apply where the alert is targeted only (its title, even its existence,
        may be TLP:AMBER or RED for the others). An alert no longer published applies
        nowhere."""
        if alert_id is None:
            return True
        scope = self._current.scopes.get(alert_id)
        return scope is not None and scope.includes(region, kind)

    def knows(self, rule_id: str, region: str, kind: str) -> bool:
        """Whether `rule_id` is a rule the service knows an agent of that region and kind
        runs: one of Vigie's own Sigma rules, or a rule or the indicators of a published
        alert meant for it. Only those count towards national campaigns: anything else an
        agent posts is its own word (or a stolen key's)."""
        if rule_id in self.own_rule_ids:
            return True
        scopes = self._current.known.get(rule_id, ())
        return any(s.includes(region, kind) for s in scopes)

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
            alert_of: dict[int, str] = {}
            scopes: dict[str, Scope] = {}
            known: dict[str, list[Scope]] = {}
            for alert in alerts:
                scope = scopes[alert.id] = service.scope_of(alert)
                known.setdefault(f"indicator:{alert.id}", []).append(scope)
                for n, text in enumerate(alert.sigma_rules):
                    try:
                        rule = self.cache.compile(text)
                    except RuleTextError as exc:  # checked at publication; pySigma changed?
                        log.warning("alert %s sigma_rules[%d] skipped: %s", alert.id, n, exc)
                        continue
                    if id(rule) in alert_of:  # the same text in two alerts: one object each
                        rule = replace(rule)
                    alert_of[id(rule)] = alert.id
                    known.setdefault(rule.id, []).append(scope)
                    rules.append(rule)
            self.cache.keep_only(t for a in alerts for t in a.sigma_rules)
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
            AlertSigmaEngine(ruleset, alert_of) if ruleset.rules else None,
            matcher if matcher else None,
            len(rules),
            scopes,
            {rule_id: tuple(found) for rule_id, found in known.items()},
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
