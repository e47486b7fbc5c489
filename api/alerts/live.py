"""The rules and indicators run on arriving events: Vigie's own Sigma rules, then (to come)
those of published alerts."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from api.settings import Settings
from detection.event import Event
from detection.sigma import SigmaEngine, load_sigma_rules

log = logging.getLogger("vigie.api")


class IndicatorMatcher(Protocol):
    def match(self, events: list[Event]) -> list[dict[str, Any]]:
        """Detections (`Detection.to_dict()` shape, engine `indicator`) for the events."""
        ...


class LiveRules:
    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.settings = settings
        self.sessions = sessions
        self._engine = _own_rules(settings)

    def engines(self) -> tuple[SigmaEngine | None, IndicatorMatcher | None]:
        return self._engine, None


def _own_rules(settings: Settings) -> SigmaEngine | None:
    folder = settings.rules_dir / "sigma"
    if not folder.is_dir():
        log.warning("no Sigma rules in %s: no server-side detection", folder)
        return None
    ruleset = load_sigma_rules([folder], cache_dir=settings.data_dir / "cache" / "sigma")
    for error in ruleset.errors:
        log.warning("Sigma rule skipped: %s", error)
    return SigmaEngine(ruleset) if ruleset.rules else None
