"""Statistical disclosure control of the statistics report: which cells are hidden (`s`).

A table is a list of rows, each keyed by its cohort (region, kind, legal status, and
possibly what the row is about: a control, an incident category) where `total` stands for a
margin ("Ensemble"). Each count of a row also knows its contributors: the establishments
behind it (for a count of establishments, the count itself).

- Primary: a row whose cohort has fewer than `THRESHOLD` establishments hides every count;
  a count whose contributors are 1 to THRESHOLD - 1 is hidden. A zero is shown: it counts no
  establishment.
- Secondary (complementary): a margin is the sum of its parts (the regions of the national
  row, the kinds of a region...), and some counts of a row add up to another (the levels to
  the establishments scored). Where such a sum shows its total and hides exactly one part,
  that part is the total minus the others: a second part is hidden too (the smallest non-zero
  one shown), or the total when no part is left; the most detailed sums are settled first,
  until no sum has a lone hidden part. This is a heuristic: a chain of several sums could
  still pin a hidden cell down, which only a full audit (linear programming, as tau-ARGUS
  does) would rule out.

Rates, quantiles and means are not handled here: the caller hides one whenever a count it is
computed from is hidden.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

THRESHOLD = 5

Cell = tuple[str, int]  # (count, row index)


@dataclass(frozen=True)
class Count:
    name: str
    contributors: str | None = None  # the count of establishments behind it; None: itself
    along: tuple[int, ...] = (0, 1, 2)  # the key positions whose margins add it up


def hidden_cells(
    keys: Sequence[tuple[str, ...]],
    rows: Sequence[Mapping[str, int]],
    base: Sequence[int],
    counts: Sequence[Count],
    sums: Sequence[tuple[str, tuple[str, ...]]] = (),
    *,
    total: str,
) -> dict[str, list[bool]]:
    """For each count, which rows hide it. `base`: the establishments of each row's cohort;
    `sums`: within a row, (total, parts) whose parts add up to the total."""
    hidden = {c.name: [False] * len(keys) for c in counts}
    for i, row in enumerate(rows):
        for c in counts:
            behind = row[c.contributors or c.name]
            if base[i] < THRESHOLD or 0 < behind < THRESHOLD:
                hidden[c.name][i] = True
    lines = _lines(keys, total)
    groups: list[tuple[Cell, list[Cell]]] = [
        ((whole, i), [(part, i) for part in parts])
        for i in range(len(keys))
        for whole, parts in sums
    ]
    groups += [
        ((c.name, t), [(c.name, p) for p in parts])
        for c in counts
        for position in c.along
        for t, parts in lines.get(position, ())
    ]
    # The most detailed sums first (a row's own, then the margins nearest the finest
    # cohorts), always: a small cohort is covered by its neighbours, not by a complement a
    # wide margin would pick far from it. Hiding a cell puts back the sums it is in.
    groups.sort(key=lambda g: -sum(v != total for v in keys[g[0][1]]))
    containing: dict[Cell, list[int]] = defaultdict(list)
    for index, (whole, parts) in enumerate(groups):
        for cell in (whole, *parts):
            containing[cell].append(index)
    queue = list(range(len(groups)))
    queued = set(queue)
    while queue:
        index = heapq.heappop(queue)
        queued.discard(index)
        picked = _protect(hidden, rows, *groups[index])
        for again in containing[picked] if picked else ():
            if again not in queued:
                heapq.heappush(queue, again)
                queued.add(again)
    return hidden


def _lines(keys: Sequence[tuple[str, ...]], total: str) -> dict[int, list[tuple[int, list[int]]]]:
    """For each key position, the margins along it: (the margin's row, its parts' rows)."""
    index = {key: i for i, key in enumerate(keys)}
    children: dict[tuple[int, tuple[str, ...]], list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        for position, value in enumerate(key):
            if value != total:
                children[(position, (*key[:position], total, *key[position + 1 :]))].append(i)
    lines: dict[int, list[tuple[int, list[int]]]] = defaultdict(list)
    for (position, parent), parts in children.items():
        if parent in index:
            lines[position].append((index[parent], parts))
    return lines


def _protect(
    hidden: dict[str, list[bool]],
    rows: Sequence[Mapping[str, int]],
    whole: Cell,
    parts: list[Cell],
) -> Cell | None:
    """Hide one more cell of the sum if one hidden cell could be computed from it; that
    cell, or None."""

    def is_hidden(cell: Cell) -> bool:
        return hidden[cell[0]][cell[1]]

    def value(cell: Cell) -> int:
        return rows[cell[1]][cell[0]]

    lone = sum(1 for p in parts if is_hidden(p))
    # Shown total, one hidden part: the part is the difference. Hidden total, every part
    # shown: the total is their sum.
    if not ((not is_hidden(whole) and lone == 1) or (is_hidden(whole) and lone == 0 and parts)):
        return None
    shown = [p for p in parts if not is_hidden(p)]
    # A zero hidden beside a small count would give the small count away.
    pick = min(shown, key=lambda p: (value(p) == 0, value(p))) if shown else whole
    hidden[pick[0]][pick[1]] = True
    return pick
