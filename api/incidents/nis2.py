"""NIS2 reporting deadlines, counted from the moment the establishment became aware.

Early warning within 24 hours, incident notification within 72 hours, final report within one
month (a calendar month: awareness on 31 January gives 28 or 29 February, as relativedelta
counts it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil.relativedelta import relativedelta

from api.agents.models import as_utc

KINDS = ("early_warning", "notification", "final_report")


@dataclass(frozen=True)
class Deadline:
    kind: str
    due: datetime
    done_at: datetime | None

    def overdue(self, now: datetime) -> bool:
        """Passed and not sent (a report sent late stops being overdue but was not met)."""
        return self.done_at is None and now > self.due

    @property
    def met(self) -> bool | None:
        """None while not sent; then whether it was sent on time."""
        return None if self.done_at is None else self.done_at <= self.due


def due_dates(aware_at: datetime) -> dict[str, datetime]:
    aware = as_utc(aware_at)
    return {
        "early_warning": aware + timedelta(hours=24),
        "notification": aware + timedelta(hours=72),
        "final_report": aware + relativedelta(months=1),
    }


def deadlines(aware_at: datetime, done: dict[str, datetime | None]) -> list[Deadline]:
    out = []
    for kind, due in due_dates(aware_at).items():
        sent = done.get(kind)
        out.append(Deadline(kind, due, as_utc(sent) if sent is not None else None))
    return out
