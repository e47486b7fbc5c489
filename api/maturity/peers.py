"""Where an establishment stands among its peers, and the national and regional picture.

Peers: the establishments of the same kind and region, on the same framework version, each
by its latest snapshot of the 7 days up to the day asked. With fewer than 5, the group widens
to the same kind nationally, then to every establishment, and the answer names the group
used. An establishment sees its own percentile and the group's quartiles, never another's
name or score. Statistics suppress every group of fewer than 5.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date, datetime, timedelta
from statistics import quantiles
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from api.maturity.models import Snapshot

MIN_GROUP = 5
WINDOW_DAYS = 7


def _latest_scores(
    session: Session, version: str, as_of: date, known_at: datetime | None = None, **where: str
) -> dict[str, tuple[float, int, str, str]]:
    """finess -> (score, level, kind, region) of each latest snapshot in the window (computed
    by `known_at`, when given)."""
    query = select(
        Snapshot.finess, Snapshot.score, Snapshot.level, Snapshot.kind, Snapshot.region
    ).where(*_window(version, as_of))
    if known_at is not None:
        query = query.where(Snapshot.computed_at <= known_at)
    for column, value in where.items():
        query = query.where(getattr(Snapshot, column) == value)
    query = query.order_by(Snapshot.as_of, Snapshot.computed_at, Snapshot.id)
    return {f: (s, lv, k, r) for f, s, lv, k, r in session.execute(query)}


def _window(version: str, as_of: date) -> list[ColumnElement[bool]]:
    """The snapshots of `version` in the week up to `as_of`."""
    return [
        Snapshot.framework_version == version,
        Snapshot.as_of <= as_of,
        Snapshot.as_of > as_of - timedelta(days=WINDOW_DAYS),
    ]


def percentile(
    session: Session, snapshot: Snapshot, known_at: datetime | None = None
) -> dict[str, Any]:
    """`snapshot`'s rank among its peers; `known_at`: among the snapshots computed by then
    (a report as of a moment ranks against what was known at that moment)."""
    groups: tuple[tuple[str, str, dict[str, str]], ...] = (
        (
            "kind_region",
            f"{snapshot.kind} · {snapshot.region}",
            {"kind": snapshot.kind, "region": snapshot.region},
        ),
        ("kind", f"{snapshot.kind} · national", {"kind": snapshot.kind}),
        ("national", "tous les établissements", {}),
    )
    for group, label, where in groups:
        scores = _latest_scores(
            session, snapshot.framework_version, snapshot.as_of, known_at, **where
        )
        scores[snapshot.finess] = (snapshot.score, snapshot.level, snapshot.kind, snapshot.region)
        if len(scores) >= MIN_GROUP:
            values = sorted(v[0] for v in scores.values())
            below = sum(1 for v in values if v < snapshot.score)
            equal = sum(1 for v in values if v == snapshot.score)
            q1, q2, q3 = quantiles(values, n=4, method="inclusive")
            return {
                "group": group,
                "label": label,
                "value": round(100 * (below + 0.5 * equal) / len(values), 1),
                "peers": len(values),
                "quartiles": [round(q1, 2), round(q2, 2), round(q3, 2)],
            }
    return {
        "group": "none",
        "label": "moins de 5 établissements comparables",
        "value": None,
        "peers": len(scores),
        "quartiles": None,
    }


# `stats` per (database, framework version, day, grouping), with what it was computed from:
# snapshots are only ever added (never changed, never deleted), so how many the window holds
# and the latest computed say whether it still holds. The national overview asks for it at
# every load; computing it reads a week of every establishment's snapshots (63,000 rows for
# 10,500 establishments: 220 ms on SQLite), checking it one count from an index (a few ms).
_STATS: dict[tuple[str, str, date, str], tuple[tuple[Any, ...], dict[str, Any]]] = {}
_STATS_KEPT = 64


def stats(session: Session, version: str, as_of: date, by: str) -> dict[str, Any]:
    """The distribution of scores and levels by kind or region, and nationally; a group of
    fewer than 5 is counted but shows nothing else."""
    stamp = tuple(
        session.execute(
            select(func.count(), func.max(Snapshot.computed_at)).where(*_window(version, as_of))
        ).one()
    )
    key = (str(session.get_bind().engine.url), version, as_of, by)
    kept = _STATS.get(key)
    if kept is not None and kept[0] == stamp:
        return copy.deepcopy(kept[1])
    found = _stats(session, version, as_of, by)
    if len(_STATS) >= _STATS_KEPT:
        _STATS.clear()
    _STATS[key] = (stamp, copy.deepcopy(found))
    return found


def _stats(session: Session, version: str, as_of: date, by: str) -> dict[str, Any]:
    scores = _latest_scores(session, version, as_of)
    groups: dict[str, list[tuple[float, int]]] = {}
    for score, level, kind, region in scores.values():
        groups.setdefault(kind if by == "kind" else region, []).append((score, level))
    return {
        "as_of": as_of.isoformat(),
        "framework_version": version,
        "by": by,
        "national": _distribution(list((s, lv) for s, lv, _, _ in scores.values())),
        "groups": [
            {"group": name, **_distribution(values)} for name, values in sorted(groups.items())
        ],
    }


def _distribution(values: list[tuple[float, int]]) -> dict[str, Any]:
    if len(values) < MIN_GROUP:
        return {"count": len(values), "suppressed": True}
    scores = sorted(s for s, _ in values)
    q1, q2, q3 = quantiles(scores, n=4, method="inclusive")
    levels = Counter(lv for _, lv in values)
    return {
        "count": len(values),
        "suppressed": False,
        "mean": round(sum(scores) / len(scores), 2),
        "quartiles": [round(q1, 2), round(q2, 2), round(q3, 2)],
        "levels": {str(lv): levels.get(lv, 0) for lv in range(1, 6)},
    }
