"""The map of France's 18 regions: an inline SVG coloured by a count per region.

The outlines come from dashboards/web/map/regions.json, built once from IGN's by
dashboards/web/map/build.py (metropolitan France in Lambert-93, the five overseas regions as
insets); the service only reads that file.

Each region is a link (to a list filtered by region) holding its outline, a <title> naming it
with its count, and the count printed inside it: colour is never the only carrier. Colours come
from CSS classes, as the Content-Security-Policy forbids style attributes:

    region lvl-0        a count of zero
    region lvl-1 .. 5   non-zero counts, by quantile (lvl-5 holds the largest)
    region nodata       no figure available (None)

Imagery credit: the Licence Ouverte asks for the line in `credit()` beside the map; `svg()`
prints it inside the drawing as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

from markupsafe import Markup

from api.web.render import WEB

MAP_FILE = WEB / "map" / "regions.json"
LEVELS = 5  # non-zero buckets


@dataclass(frozen=True)
class Frame:
    """An overseas region's inset in the viewBox: top-left corner and size."""

    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Outline:
    code: str  # INSEE region code
    name: str  # a value of api.establishments.finess.Region
    d: str  # SVG path data, in viewBox units
    label: tuple[float, float]  # a point inside the region, where its count is printed
    inset: Frame | None  # overseas regions only


@dataclass(frozen=True)
class RegionMap:
    view_box: str
    credit: str
    regions: tuple[Outline, ...]


@cache
def load() -> RegionMap:
    data = json.loads(MAP_FILE.read_text(encoding="utf-8"))
    return RegionMap(
        view_box=data["viewBox"],
        credit=data["credit"],
        regions=tuple(
            Outline(
                code=r["code"],
                name=r["name"],
                d=r["d"],
                label=(r["label"][0], r["label"][1]),
                inset=Frame(**r["inset"]) if "inset" in r else None,
            )
            for r in data["regions"]
        ),
    )


def credit() -> str:
    """The line the outlines' licence asks for, to print beside the map."""
    return load().credit


def _complete(counts: Mapping[str, int | None]) -> dict[str, int | None]:
    """A count for each of the 18 regions: a region left out counts 0 (a GROUP BY leaves out
    the regions it found nothing for). A name that is no region, or a negative count, is an
    error in the caller."""
    names = [r.name for r in load().regions]
    unknown = sorted(set(counts) - set(names))
    if unknown:
        raise ValueError(f"not region names: {unknown}")
    negative = sorted(name for name, n in counts.items() if n is not None and n < 0)
    if negative:
        raise ValueError(f"negative counts for {negative}")
    return {name: counts.get(name, 0) for name in names}


def _levels(counts: Mapping[str, int | None]) -> dict[int, int]:
    """The level (1 to 5) of each non-zero count: its share of the non-zero counts that are
    less or equal, in fifths, rounded up. Equal counts share a level, and the largest is 5."""
    values = sorted(n for n in counts.values() if n)
    level: dict[int, int] = {}
    for rank, value in enumerate(values, start=1):
        level[value] = -(-LEVELS * rank // len(values))  # ceil; ties keep their last rank
    return level


def _css_class(count: int | None, level: Mapping[int, int]) -> str:
    if count is None:
        return "nodata"
    return f"lvl-{level[count] if count else 0}"


def _number(count: int) -> str:
    """A count the French way: thousands separated by a narrow no-break space."""
    return f"{count:,}".replace(",", "\u202f")


def legend(counts: Mapping[str, int | None]) -> list[tuple[str, str]]:
    """(CSS class, French label) of each class the map uses, in order: 'lvl-0' ('0') always,
    then the non-empty levels with the range of counts each covers ('1 à 3'), then 'nodata'
    when a count is missing. The ranges cover every integer up to the largest count."""
    complete = _complete(counts)
    level = _levels(complete)
    rows = [("lvl-0", "0")]
    low = 1
    for n in range(1, LEVELS + 1):
        members = [value for value, lvl in level.items() if lvl == n]
        if not members:
            continue
        high = max(members)
        text = _number(high) if low == high else f"{_number(low)} à {_number(high)}"
        rows.append((f"lvl-{n}", text))
        low = high + 1
    if any(n is None for n in complete.values()):
        rows.append(("nodata", "données indisponibles"))
    return rows


def svg(
    counts: Mapping[str, int | None],
    link: Callable[[str], str],
    *,
    what: str,
    what_one: str | None = None,
    ident: str = "carte-regions",
) -> Markup:
    """The map as inline SVG, each region a link to `link(name)`.

    `what` names what is counted, in the plural ('incidents ouverts'); `what_one` is its
    singular, used for 0 and 1 as French does (defaults to `what`). `ident` prefixes the ids
    inside, for pages that show two maps.

    The SVG is a group of links, not role="img": an image's content is hidden from assistive
    technologies, and these links must be reachable. Each link is named by its <title>.
    """
    shapes = load()
    complete = _complete(counts)
    level = _levels(complete)
    title_id = f"{ident}-titre"
    out = [
        Markup(
            '<svg xmlns="http://www.w3.org/2000/svg" viewBox="{}" class="carte-regions" '
            'role="group" aria-labelledby="{}"><title id="{}">Carte des régions : {}</title>'
        ).format(shapes.view_box, title_id, title_id, what)
    ]
    # Metropolitan regions are drawn before the insets, and Île-de-France last, so that no
    # neighbour is painted over a count that reaches past its border.
    order = sorted(shapes.regions, key=lambda r: (r.inset is not None, r.code == "11", r.code))
    for region in order:
        count = complete[region.name]
        if count is None:
            title = f"{region.name} : données indisponibles"
            shown = "n.d."
        else:
            unit = what_one if what_one is not None and count <= 1 else what
            title = f"{region.name} : {_number(count)} {unit}"
            shown = _number(count)
        out.append(Markup('<a href="{}"><title>{}</title>').format(link(region.name), title))
        if region.inset is not None:
            frame = region.inset
            out.append(
                Markup(
                    '<rect class="inset" x="{}" y="{}" width="{}" height="{}"/>'
                    '<text class="inset-name" x="{}" y="{}">{}</text>'
                ).format(
                    frame.x,
                    frame.y,
                    frame.width,
                    frame.height,
                    round(frame.x + 6, 1),
                    round(frame.y + 14, 1),
                    region.name,
                )
            )
        out.append(
            Markup(
                '<path class="region {}" d="{}"/>'
                '<text class="count" x="{}" y="{}" text-anchor="middle" '
                'dominant-baseline="central">{}</text></a>'
            ).format(_css_class(count, level), region.d, *region.label, shown)
        )
    width, height = (float(v) for v in shapes.view_box.split()[2:])
    out.append(
        Markup('<text class="credit" x="{}" y="{}" text-anchor="end">{}</text></svg>').format(
            round(width - 10, 1), round(height - 10, 1), shapes.credit
        )
    )
    return Markup("").join(out)
