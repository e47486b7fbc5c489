"""Checks on how the establishment runs Vigie itself: agents, incidents, alerts, detections."""

from __future__ import annotations

from datetime import datetime, timedelta
from statistics import median

from pydantic import Field

from api.maturity.checks.base import (
    Outcome,
    Params,
    check,
    day_fr,
    plural,
    source_seen,
    span,
    subjects,
)
from api.maturity.inputs import AgentFacts, Inputs

# No incident in the window is a pass only if data arrived in the last QUIET_DAYS days: the
# last time it did dates the pass (older than the control's validity, it is stale).
QUIET_DAYS = 30


class Window(Params):
    window_days: int = Field(default=30, ge=1, le=366)


def _active(agent: AgentFacts, inputs: Inputs) -> bool:
    return agent.revoked_at is None or agent.revoked_at > inputs.cutoff


def _heard_within(agent: AgentFacts, inputs: Inputs, hours: int) -> bool:
    beat = agent.last_heartbeat
    return beat is not None and inputs.cutoff - beat <= timedelta(hours=hours)


@check("agents.coverage", reads={"source": 1})
def coverage(inputs: Inputs, p: Params) -> Outcome:
    """Declared sites with an agent heard from in the last 24 hours, and declared sources
    arriving: covered / expected."""
    del p
    sites, sources = inputs.profile.sites, inputs.profile.expected_sources
    agents = [a for a in inputs.agents if _active(a, inputs)]
    if not sites and not sources:
        if not agents:
            return Outcome(0.0, "Aucun agent enrôlé et aucun site déclaré.", counts={"agents": 0})
        return Outcome(None, "Le profil ne déclare ni sites ni sources attendues.")
    live = [a for a in agents if _heard_within(a, inputs, 24)]
    missing_sites = [s for s in sites if not any(a.site == s for a in live)]
    missing_sources = [k for k in sources if source_seen(inputs, k, 1) is None]
    expected = len(sites) + len(sources)
    covered = expected - len(missing_sites) - len(missing_sources)
    parts = [f"{covered} élément(s) couverts sur {expected}"]
    if missing_sites:
        parts.append(f"site(s) sans agent actif : {', '.join(missing_sites)}")
    if missing_sources:
        parts.append(f"source(s) absentes depuis 24 h : {', '.join(missing_sources)}")
    seen = max((a.last_heartbeat for a in live if a.last_heartbeat), default=None)
    return Outcome(
        covered / expected,
        " ; ".join(parts) + ".",
        seen,
        {"expected": expected, "covered": covered, "agents": len(live)},
        link=f"/agents?establishment={inputs.finess}",
    )


@check("agents.silences", Window, reads={"agent": None})
def silences(inputs: Inputs, p: Window) -> Outcome:
    """Agents with a whole day without a heartbeat in the window (since they enrolled)."""
    agents = [a for a in inputs.agents if _active(a, inputs)]
    if not agents:
        return Outcome(None, "Aucun agent enrôlé.")
    heard = inputs.rows("agent", p.window_days)
    days_by_agent: dict[str, set[object]] = {}
    for r in heard:
        days_by_agent.setdefault(r.key, set()).add(r.day)
    silent: dict[str, int] = {}
    start = inputs.as_of - timedelta(days=p.window_days - 1)
    for agent in agents:
        first = max(start, agent.enrolled_at.date())
        # The day of `as_of` is judged by the last heartbeat (the day may not be over).
        days = [first + timedelta(days=i) for i in range((inputs.as_of - first).days)]
        gaps = sum(1 for d in days if d not in days_by_agent.get(agent.id, set()))
        if not _heard_within(agent, inputs, 24):
            gaps += 1
        if gaps:
            silent[agent.hostname] = gaps
    seen = max((a.last_heartbeat for a in agents if a.last_heartbeat), default=None)
    counts = {"agents": len(agents), "silent": len(silent)}
    if not silent:
        return Outcome(
            1.0,
            f"{plural(len(agents), 'agent')} : aucun silence de plus de 24 h "
            f"sur {p.window_days} jours.",
            seen,
            counts,
        )
    shown = ", ".join(f"{h} ({d} j)" for h, d in sorted(silent.items())[:3])
    return Outcome(
        1.0 - len(silent) / len(agents),
        f"{len(silent)} agent(s) sur {len(agents)} silencieux plus de 24 h : {shown}.",
        seen,
        counts,
        link=f"/agents?establishment={inputs.finess}",
    )


class Retention(Params):
    min_days: int = Field(ge=1, le=3660)


@check("agents.loss_and_retention", Retention, reads={})
def loss_and_retention(inputs: Inputs, p: Retention) -> Outcome:
    """Events kept at least `min_days` by the service, and none dropped by agents' disk
    budgets: half each."""
    # Only agents heard from: a silent agent's counters say nothing of what it lost since.
    agents = [a for a in inputs.agents if _active(a, inputs) and a.last_heartbeat is not None]
    if not agents:
        return Outcome(None, "Aucun agent n'a donné de nouvelles.")
    dropped = sum(a.dropped for a in agents)
    kept = inputs.retention_days >= p.min_days
    score = (0.5 if kept else 0.0) + (0.5 if dropped == 0 else 0.0)
    parts = [
        f"conservation {inputs.retention_days} jours "
        f"({'≥' if kept else '<'} {p.min_days} attendus)",
        "aucun événement perdu"
        if dropped == 0
        else f"{dropped} événement(s) perdu(s) par manque de disque",
    ]
    seen = max((a.last_heartbeat for a in agents if a.last_heartbeat), default=None)
    return Outcome(
        score,
        parts[0][0].upper() + parts[0][1:] + " ; " + parts[1] + ".",
        seen,
        {"retention_days": inputs.retention_days, "dropped": dropped},
        link=f"/agents?establishment={inputs.finess}",
    )


class Handling(Window):
    acknowledge_hours: float = Field(gt=0)
    contain_hours: float = Field(gt=0)


@check("incidents.handling_times", Handling, reads={"source": QUIET_DAYS})
def handling_times(inputs: Inputs, p: Handling) -> Outcome:
    """Median time from an incident's opening to its acknowledgement, and to its containment,
    against targets: half each."""
    start = inputs.cutoff - timedelta(days=p.window_days)
    mine = [i for i in inputs.incidents if i.created_at >= start]
    if not mine:
        return _quiet(inputs, "Aucun incident sur la période.")
    to_ack = [_hours(i.created_at, i.acknowledged_at or inputs.cutoff) for i in mine]
    to_contain = [_hours(i.created_at, i.contained_at or inputs.cutoff) for i in mine]
    ack, contain = median(to_ack), median(to_contain)
    score = (0.5 if ack <= p.acknowledge_hours else 0.0) + (
        0.5 if contain <= p.contain_hours else 0.0
    )
    return Outcome(
        score,
        f"{plural(len(mine), 'incident')} : prise en compte en {ack:.1f} h (médiane, cible "
        f"{p.acknowledge_hours:g} h), confinement en {contain:.1f} h (cible "
        f"{p.contain_hours:g} h).",
        max(i.created_at for i in mine),
        {"incidents": len(mine)},
        samples=tuple(i.id for i in mine[:10]),
        link=f"/incidents?establishment={inputs.finess}",
    )


def _hours(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds() / 3600)


def _quiet(inputs: Inputs, text: str) -> Outcome:
    """Nothing to judge, and rightly so only when data kept arriving: a silent establishment
    has no incidents because nobody looks."""
    seen = max(
        (
            source_seen(inputs, k, QUIET_DAYS) or datetime.min.replace(tzinfo=inputs.cutoff.tzinfo)
            for k in ("network", "windows", "logs")
        ),
    )
    if seen.year == 1:
        return Outcome(None, f"{text} Mais aucune donnée reçue : rien ne permet d'en juger.")
    return Outcome(1.0, text, seen)


@check("incidents.nis2_deadlines", Window, reads={"source": QUIET_DAYS})
def nis2_deadlines(inputs: Inputs, p: Window) -> Outcome:
    """The share of NIS2 deadlines (early warning 24 h, notification 72 h, final report one
    month) met, over the notifiable incidents of the window; one still running counts when
    it is overdue."""
    from api.incidents import nis2

    start = inputs.cutoff - timedelta(days=p.window_days)
    mine = [i for i in inputs.incidents if i.notifiable and i.aware_at >= start]
    if not mine:
        return _quiet(inputs, "Aucun incident notifiable sur la période.")
    met = judged = 0
    for incident in mine:
        done = {
            "early_warning": incident.early_warning_at,
            "notification": incident.notification_at,
            "final_report": incident.final_report_at,
        }
        for deadline in nis2.deadlines(incident.aware_at, done):
            if deadline.done_at is None and not deadline.overdue(inputs.cutoff):
                continue  # pending: neither met nor missed yet
            judged += 1
            met += bool(deadline.met)
    if not judged:
        return Outcome(
            1.0,
            f"{plural(len(mine), 'incident notifiable')} : échéances en cours.",
            inputs.cutoff,
            {"incidents": len(mine)},
        )
    return Outcome(
        met / judged,
        f"{met} échéance(s) NIS2 tenue(s) sur {judged} ({plural(len(mine), 'incident')} "
        "notifiable(s)).",
        inputs.cutoff,
        {"incidents": len(mine), "deadlines": judged, "met": met},
        samples=tuple(i.id for i in mine[:10]),
        link=f"/incidents?establishment={inputs.finess}",
    )


@check("incidents.exercise", Window, reads={})
def exercise(inputs: Inputs, p: Window) -> Outcome:
    """A crisis exercise recorded in Vigie (an incident declared with category `exercise`)
    within the window."""
    start = inputs.cutoff - timedelta(days=p.window_days)
    done = [i for i in inputs.incidents if i.category == "exercise" and i.created_at >= start]
    if not done:
        return Outcome(None, "Aucun exercice de crise enregistré dans Vigie.")
    last = max(i.created_at for i in done)
    return Outcome(
        1.0,
        f"Dernier exercice de crise enregistré le {day_fr(last)}.",
        last,
        {"exercises": len(done)},
        samples=tuple(i.id for i in done[:10]),
        link=f"/incidents/{done[-1].id}",
    )


class Untreated(Window):
    grace_hours: float = Field(default=24, gt=0)


@check(
    "detections.recovery_inhibition_untreated",
    Untreated,
    reads={"det.recovery": None, "source": None},
)
def recovery_inhibition(inputs: Inputs, p: Untreated) -> Outcome:
    """Recovery-inhibition detections (ATT&CK T1490: shadow copies deleted, backup catalogue
    deleted, recovery disabled) whose incident was still untouched after the grace time."""
    if source_seen(inputs, "windows", p.window_days) is None:
        return Outcome(None, f"Aucun journal Windows reçu sur {p.window_days} jours.")
    rows = inputs.rows("det.recovery", p.window_days)
    seen = source_seen(inputs, "windows", p.window_days)
    if not rows:
        return Outcome(1.0, "Aucune détection d'inhibition de la restauration.", seen)
    rules = {r.key for r in rows}
    grace = timedelta(hours=p.grace_hours)
    untreated = [
        i
        for i in inputs.incidents
        if i.rule_id in rules and i.acknowledged_at is None and inputs.cutoff - i.created_at > grace
    ]
    first, last, samples = span(rows)
    n = sum(r.count for r in rows)
    hosts = subjects(rows)
    if not untreated:
        return Outcome(
            1.0,
            f"{plural(n, 'détection')} d'inhibition de la restauration sur "
            f"{plural(len(hosts), 'machine')}, aucune laissée sans suite plus de "
            f"{p.grace_hours:g} h.",
            seen,
            {"detections": n},
            first,
            last,
            samples,
            f"/establishments/{inputs.finess}/detections?ids={','.join(samples)}",
        )
    return Outcome(
        0.0,
        f"{plural(n, 'détection')} d'inhibition de la restauration (ex. "
        f"{', '.join(sorted(hosts)[:3])}) du {day_fr(first)} au {day_fr(last)} : "
        f"{plural(len(untreated), 'incident')} non pris en compte après {p.grace_hours:g} h.",
        seen,
        {"detections": n, "untreated_incidents": len(untreated)},
        first,
        last,
        tuple(i.id for i in untreated[:10]),
        f"/incidents/{untreated[0].id}",
    )


class Acks(Window):
    critical_hours: float = Field(gt=0)
    other_hours: float = Field(gt=0)


@check("alerts.acknowledgement_delays", Acks, reads={})
def acknowledgements(inputs: Inputs, p: Acks) -> Outcome:
    """The share of the CERT's alerts meant for the establishment that it acknowledged on time
    (critical and high ones within `critical_hours`, others within `other_hours`)."""
    start = inputs.cutoff - timedelta(days=p.window_days)
    alerts = [a for a in inputs.alerts if a.published_at >= start]
    judged = on_time = 0
    late: list[str] = []
    for alert in alerts:
        hours = p.critical_hours if alert.severity in ("critical", "high") else p.other_hours
        due = alert.published_at + timedelta(hours=hours)
        if alert.acknowledged_at is None and inputs.cutoff <= due:
            continue  # still within its time
        if alert.acknowledged_at is None and alert.withdrawn_at and alert.withdrawn_at <= due:
            continue  # withdrawn by the CERT before it was due: nothing left to acknowledge
        judged += 1
        if alert.acknowledged_at is not None and alert.acknowledged_at <= due:
            on_time += 1
        else:
            late.append(alert.id)
    if not judged:
        return Outcome(None, "Aucune alerte du CERT à accuser sur la période.")
    return Outcome(
        on_time / judged,
        f"{on_time} alerte(s) sur {judged} accusée(s) dans les délais.",
        inputs.cutoff,
        {"alerts": judged, "on_time": on_time},
        samples=tuple(late[:10]),
        link=f"/alerts/{late[0]}" if late else None,
    )
