"""What a check is: a named, pure function of an establishment's inputs and its validated
parameters, giving an `Outcome`. The framework file names checks; it holds no query."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from api.maturity.inputs import Inputs, Row

if TYPE_CHECKING:
    from api.maturity.framework import Framework


class Params(BaseModel):
    """A check's parameters: unknown keys are refused, so a typo never goes unseen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Outcome:
    """A check's result. `score` None: nothing to judge by (`no_evidence`); `seen`: the last
    time the data it judged by arrived (older than the control's validity: `stale`)."""

    score: float | None
    summary: str  # in French: what was seen, with numbers
    seen: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    samples: tuple[str, ...] = ()
    link: str | None = None  # an API view of the records behind it


CheckFunction = Callable[[Inputs, Any], Outcome]


@dataclass(frozen=True)
class CheckSpec:
    name: str
    params: type[Params]
    run: CheckFunction
    description: str
    # The evidence signals the check reads, each over a fixed number of days, or over its
    # `window_days` parameter (None): the snapshot loads no more than that.
    reads: Mapping[str, int | None]

    def windows(self, params: Params) -> dict[str, int]:
        own = getattr(params, "window_days", None)
        out: dict[str, int] = {}
        for signal, days in self.reads.items():
            if days is not None:
                out[signal] = days
            elif isinstance(own, int):
                out[signal] = own
            else:
                raise TypeError(f"check {self.name} reads {signal} over a window it has not")
        return out


REGISTRY: dict[str, CheckSpec] = {}


def check(
    name: str, params: type[Params] = Params, *, reads: Mapping[str, int | None]
) -> Callable[[CheckFunction], CheckFunction]:
    def register(func: CheckFunction) -> CheckFunction:
        if name in REGISTRY:
            raise ValueError(f"check {name} registered twice")
        doc = (func.__doc__ or "").strip()
        REGISTRY[name] = CheckSpec(name, params, func, doc, dict(reads))
        return func

    return register


def evidence_windows(framework: Framework) -> dict[str, int]:
    """How many days of each evidence signal the framework's checks read, at most: all a
    snapshot needs to load (a year of rows where 30 days are read would be most of its time)."""
    out: dict[str, int] = {}
    for control in framework.controls:
        name = control.evidence.check
        if name is None:
            continue
        spec = REGISTRY[name]
        params = spec.params.model_validate(control.evidence.params)
        for signal, days in spec.windows(params).items():
            out[signal] = max(out.get(signal, 0), days)
    return dict(sorted(out.items()))


def source_seen(inputs: Inputs, kind: str, days: int) -> datetime | None:
    """The last time data of `kind` (network, windows, logs) arrived in the window."""
    rows = inputs.rows("source", days, [kind])
    return max((r.last_seen for r in rows), default=None)


def span(rows: Iterable[Row]) -> tuple[datetime | None, datetime | None, tuple[str, ...]]:
    """First and last seen over rows, and up to 10 sample ids (the earliest rows first)."""
    rows = sorted(rows, key=lambda r: (r.day, r.key))
    first = min((r.first_seen for r in rows), default=None)
    last = max((r.last_seen for r in rows), default=None)
    samples: list[str] = []
    for r in rows:
        samples.extend(s for s in r.samples if s not in samples)
    return first, last, tuple(samples[:10])


def subjects(rows: Iterable[Row]) -> set[str]:
    out: set[str] = set()
    for r in rows:
        out.update(r.subjects)
    return out


def day_fr(moment: datetime | None) -> str:
    return "?" if moment is None else f"{moment:%d/%m/%Y}"


def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n <= 1 else (many or one + 's')}"


def events_link(finess: str, samples: Iterable[str]) -> str | None:
    ids = ",".join(samples)
    return f"/establishments/{finess}/events?ids={ids}" if ids else None


def judged(
    inputs: Inputs,
    score: float,
    summary: str,
    seen: datetime | None,
    counts: dict[str, int],
    rows: Iterable[Row],
) -> Outcome:
    """An outcome found in `rows`: their first and last time, samples, and the link to them."""
    first, last, samples = span(rows)
    return Outcome(
        score, summary, seen, counts, first, last, samples, events_link(inputs.finess, samples)
    )
