"""Retro-hunt: an alert's Sigma rules and indicators over the events stored in the last days.

Each Sigma rule is hunted as it is; the indicators are hunted as one Sigma rule made of them
(`rules.indicator_rule`), so that both event stores answer with their own query language.
Every establishment's hits open (or extend) incidents of origin `retro-hunt`. The outcome is
kept on the alert for the CERT: what was hunted, what could not be and why, the hits per
establishment, the incidents touched.

Runs after the publishing request has answered (the alert is committed by then), in its own
transactions: a failure is recorded in the outcome, never raised to anyone.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from api.agents.models import utcnow
from api.alerts.models import Alert
from api.alerts.rules import RuleTextError, compile_sigma, indicator_rule
from api.alerts.service import targets
from api.db import transaction
from api.establishments.models import Establishment
from api.events.store import EventStore
from api.incidents.service import open_from_detections
from detection.event import iso_utc
from detection.sigma import CompiledRule

log = logging.getLogger("vigie.api")
ORIGIN = "retro-hunt"


def pending(days: int) -> dict[str, Any]:
    return {"status": "pending", "days": days, "requested_at": iso_utc(utcnow())}


def run(
    *, sessions: sessionmaker[Session], store: EventStore, alert_id: str, days: int
) -> dict[str, Any]:
    """Hunt, open incidents, record the outcome on the alert; returns the outcome."""
    until = utcnow()
    since = until - timedelta(days=days)
    outcome: dict[str, Any] = {
        "status": "running",
        "days": days,
        "since": iso_utc(since),
        "until": iso_utc(until),
        "started_at": iso_utc(utcnow()),
    }
    try:
        with transaction(sessions) as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                return {"status": "failed", "error": f"no alert {alert_id}"}
            hunted = _rules(alert, outcome)
            alert.retro_hunt = dict(outcome)
        by_establishment = _hunt(store, hunted, since, until, outcome)
        outcome["hits_by_establishment"] = {e: len(d) for e, d in by_establishment.items()}
        outcome["hits"] = sum(outcome["hits_by_establishment"].values())
        _open_incidents(sessions, by_establishment, outcome)
        outcome["status"] = "done"
    except Exception as exc:  # recorded on the alert for the CERT, and logged
        log.exception("retro-hunt of alert %s failed", alert_id)
        outcome["status"] = "failed"
        outcome["error"] = f"{type(exc).__name__}: {exc}"
    outcome["finished_at"] = iso_utc(utcnow())
    with transaction(sessions) as session:
        alert = session.get(Alert, alert_id)
        if alert is not None:
            alert.retro_hunt = outcome
    return outcome


def _rules(alert: Alert, outcome: dict[str, Any]) -> list[tuple[str, CompiledRule, str]]:
    """(kind, rule, level of its hits) for every rule hunted; unusable ones in `outcome`."""
    hunted: list[tuple[str, CompiledRule, str]] = []
    outcome["rules"] = []
    for n, text in enumerate(alert.sigma_rules):
        try:
            rule = compile_sigma(text)
        except RuleTextError as exc:
            outcome["rules"].append({"kind": "sigma", "index": n, "error": str(exc), "hits": 0})
            continue
        hunted.append(("sigma", rule, rule.level))
    indicators = indicator_rule(alert.id, alert.title, alert.severity, alert.indicators)
    if indicators is not None:
        hunted.append(("indicators", indicators, alert.severity))
    outcome["alert"] = {"id": alert.id, "title": alert.title}
    return hunted


def _hunt(
    store: EventStore,
    hunted: list[tuple[str, CompiledRule, str]],
    since: Any,
    until: Any,
    outcome: dict[str, Any],
) -> dict[str, list[dict[str, Any]]]:
    alert_id = outcome["alert"]["id"]
    title = outcome["alert"]["title"]
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for kind, rule, level in hunted:
        entry: dict[str, Any] = {"kind": kind, "rule_id": rule.id, "title": rule.title}
        try:
            result = store.retro_hunt(rule, since=since, until=until, establishment=None)
        except Exception as exc:  # a store that fails on one rule: the others still run
            entry.update(hits=0, error=f"{type(exc).__name__}: {exc}")
            outcome["rules"].append(entry)
            continue
        entry.update(
            query=result.query,
            hits=len(result.hits),
            error=result.error,
            truncated=result.truncated,
        )
        outcome["rules"].append(entry)
        for hit in result.hits:
            establishment = hit.pop("establishment", None)
            if not establishment:
                continue
            detection = {**hit, "meta": {"alert_id": alert_id}}
            if kind == "indicators":
                # As the live matcher reports them: one rule per alert, the alert's level.
                detection.update(
                    engine="indicator",
                    rule_id=f"indicator:{alert_id}",
                    rule_title=title,
                    level=level,
                )
            found[str(establishment)].append(detection)
    return dict(found)


def _open_incidents(
    sessions: sessionmaker[Session],
    by_establishment: dict[str, list[dict[str, Any]]],
    outcome: dict[str, Any],
) -> None:
    """One transaction per establishment: one that fails does not cost the others.

    Hits in establishments the alert is not meant for open nothing there (the alert may be
    TLP:AMBER or RED for them); the CERT sees them counted in the outcome."""
    incidents: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    outside: list[str] = []
    for establishment, detections in sorted(by_establishment.items()):
        try:
            with transaction(sessions) as session:
                alert = session.get(Alert, outcome["alert"]["id"])
                place = session.get(Establishment, establishment)
                if alert is None or place is None or not targets(alert, place):
                    outside.append(establishment)
                    continue
                touched = open_from_detections(
                    session=session,
                    establishment=establishment,
                    detections=detections,
                    origin=ORIGIN,
                )
                incidents[establishment] = [i.id for i in touched]
        except Exception as exc:  # reported per establishment in the outcome
            log.exception("retro-hunt incidents for %s not opened", establishment)
            errors[establishment] = f"{type(exc).__name__}: {exc}"
    outcome["incidents"] = incidents
    outcome["incidents_opened"] = sum(len(ids) for ids in incidents.values())
    outcome["outside_target"] = outside
    if errors:
        outcome["incident_errors"] = errors
