"""Build the web dashboard's map of France's 18 regions: regions.json, next to this script.

    python dashboards/web/map/build.py [--geo DIR] [--out FILE]

Reads the IGN outlines in DIR (default: the repository's parent's shared/geo; see its README),
projects them, simplifies them and writes one JSON file that the service reads at runtime
(api/web/map.py), so that pyproj and shapely are needed here only, not in the service.

Layout, in a viewBox of 1000 units wide:
- metropolitan France (Corse included) in Lambert-93 (EPSG:2154, the official conic projection),
  on the right;
- the five overseas regions as insets in a column on the left, each in its own frame, at its
  own scale, in its official UTM projection, with room above the outline for its name.

Simplification is a coverage simplification (shapely.coverage_simplify): neighbouring regions
keep one shared border, with neither gaps nor overlaps. Coordinates are rounded to 0.1 unit
and written as relative moves; the same input gives a byte-identical file.

The credit line required by the Licence Ouverte is written into the file, and the service
prints it beside the map.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from pyproj import Transformer
from shapely.affinity import affine_transform
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.base import BaseGeometry
from shapely.geometry.polygon import orient
from shapely.ops import polylabel

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent.parent
sys.path.insert(0, str(REPO))

from api.establishments.finess import Region  # noqa: E402  (after the path is set)

CREDIT = "Contours : IGN Admin Express COG 2018, Licence Ouverte"
SOURCE = "regions-metropole-simplifiee.geojson"

# (INSEE code, file, projection): the overseas regions in the order of their codes, each in
# the projection IGN uses for it.
OVERSEAS = (
    ("01", "region-guadeloupe.geojson", "EPSG:5490"),  # RGAF09 / UTM 20N
    ("02", "region-martinique.geojson", "EPSG:5490"),  # RGAF09 / UTM 20N
    ("03", "region-guyane.geojson", "EPSG:2972"),  # RGFG95 / UTM 22N
    ("04", "region-la-reunion.geojson", "EPSG:2975"),  # RGR92 / UTM 40S
    ("06", "region-mayotte.geojson", "EPSG:4471"),  # RGM04 / UTM 38S
)
METROPOLE = "EPSG:2154"  # RGF93 / Lambert-93

WIDTH = 1000.0
MARGIN = 10.0
INSET_WIDTH = 170.0  # the column of insets, left
INSET_GAP = 10.0  # between two insets, and between the column and metropolitan France
CAPTION = 18.0  # above the outline in an inset: the region's name
PADDING = 6.0  # inside an inset's frame
CREDIT_STRIP = 18.0  # under everything: the credit line

# In map units (1 unit is about 1.4 km in metropolitan France): simplification tolerance, and
# the smallest island kept (a few km² in metropolitan France: Belle-Île and Yeu stay).
TOLERANCE = 0.9
SMALLEST_ISLAND = 6.0
LABEL_PRECISION = 0.5


@dataclass(frozen=True)
class Box:
    """A rectangle of the viewBox: x and y of its top-left corner, width and height."""

    x: float
    y: float
    width: float
    height: float


def read(path: Path) -> list[tuple[str, str, BaseGeometry]]:
    """The (code, name, geometry) of each feature of one GeoJSON file (a Feature or a
    FeatureCollection), in longitude and latitude."""
    data = json.loads(path.read_text(encoding="utf-8"))
    features = data["features"] if data["type"] == "FeatureCollection" else [data]
    return [
        (f["properties"]["code"], f["properties"]["nom"], shape(f["geometry"])) for f in features
    ]


def project(geometry: BaseGeometry, crs: str) -> BaseGeometry:
    to = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return shapely.transform(geometry, to.transform, interleaved=False)


def fit(bounds: tuple[float, float, float, float], box: Box) -> tuple[float, float, float, float]:
    """Scale and offsets that fit projected bounds (metres, y up) into a box (units, y down),
    centred, keeping the aspect ratio: x' = a*x + b, y' = -a*y + c; returned as (a, b, c, a)."""
    minx, miny, maxx, maxy = bounds
    scale = min(box.width / (maxx - minx), box.height / (maxy - miny))
    left = box.x + (box.width - (maxx - minx) * scale) / 2
    top = box.y + (box.height - (maxy - miny) * scale) / 2
    return scale, left - minx * scale, top + maxy * scale, scale


def to_units(geometry: BaseGeometry, scale: float, dx: float, dy: float) -> BaseGeometry:
    return affine_transform(geometry, [scale, 0.0, 0.0, -scale, dx, dy])


def polygons(geometry: BaseGeometry) -> list[Polygon]:
    if isinstance(geometry, Polygon):
        return [geometry]
    if isinstance(geometry, MultiPolygon):
        return list(geometry.geoms)
    # A coverage simplification may return a collection; keep its polygons.
    return [p for g in getattr(geometry, "geoms", []) for p in polygons(g)]


def kept(geometry: BaseGeometry) -> list[Polygon]:
    """The parts worth drawing, largest first: islands under SMALLEST_ISLAND units² are
    dropped, but never the largest part."""
    parts = sorted(polygons(geometry), key=lambda p: -p.area)
    return [p for i, p in enumerate(parts) if i == 0 or p.area >= SMALLEST_ISLAND]


def tenths(value: float) -> int:
    return round(value * 10)


def number(value: int) -> str:
    """A count of tenths as an SVG number: 12 -> '1.2', -5 -> '-0.5', 30 -> '3'."""
    sign = "-" if value < 0 else ""
    whole, tenth = divmod(abs(value), 10)
    return f"{sign}{whole}.{tenth}" if tenth else f"{sign}{whole}"


def numbers(values: Iterable[int]) -> str:
    """Numbers joined the short way SVG allows: a minus sign separates as well as a space."""
    out = ""
    for value in values:
        text = number(value)
        out += text if not out or text.startswith("-") else " " + text
    return out


def ring(coords: Iterable[tuple[float, ...]]) -> str:
    """One closed ring as 'M x y l dx dy ... z', on the 0.1 grid, repeated points dropped."""
    points: list[tuple[int, int]] = []
    for x, y, *_ in coords:
        point = (tenths(x), tenths(y))
        if not points or point != points[-1]:
            points.append(point)
    if len(points) > 1 and points[-1] == points[0]:
        points.pop()
    start = points[0]
    steps: list[int] = []
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        steps += [x1 - x0, y1 - y0]
    return "M" + numbers(start) + "l" + numbers(steps) + "z"


def path(parts: list[Polygon]) -> str:
    # Exteriors one way, holes (the Valréas enclave in Auvergne-Rhône-Alpes) the other, so
    # that the default nonzero fill rule leaves the holes empty.
    out = ""
    for part in parts:
        part = orient(part, sign=1.0)
        out += ring(part.exterior.coords)
        for hole in part.interiors:
            out += ring(hole.coords)
    return out


def label(parts: list[Polygon]) -> list[float]:
    """A point well inside the largest part (its pole of inaccessibility), for the count."""
    point = polylabel(parts[0], tolerance=LABEL_PRECISION)
    return [tenths(point.x) / 10, tenths(point.y) / 10]


def region(code: str, name: str, geometry: BaseGeometry) -> dict[str, Any]:
    if name not in set(Region):
        raise SystemExit(f"region {code} {name!r} is not a value of api.establishments.Region")
    parts = kept(geometry)
    return {"code": code, "name": name, "d": path(parts), "label": label(parts)}


def metropole(geo: Path, box: Box) -> tuple[list[dict[str, Any]], float]:
    """The 13 metropolitan regions fitted into the box's width; returns them and the height
    they take."""
    features = read(geo / SOURCE)
    projected = [project(g, METROPOLE) for _, _, g in features]
    bounds = shapely.total_bounds(projected)
    scale = box.width / (bounds[2] - bounds[0])
    height = (bounds[3] - bounds[1]) * scale
    a, b, c, _ = fit(tuple(bounds), Box(box.x, box.y, box.width, height))
    simplified = shapely.coverage_simplify(projected, TOLERANCE / scale)
    regions = [
        region(code, name, to_units(g, a, b, c))
        for (code, name, _), g in zip(features, simplified, strict=True)
    ]
    return regions, height


def inset(geo: Path, code: str, file: str, crs: str, frame: Box) -> dict[str, Any]:
    ((found, name, geometry),) = read(geo / file)
    if found != code:
        raise SystemExit(f"{file}: code {found}, expected {code}")
    projected = project(geometry, crs)
    inner = Box(
        frame.x + PADDING,
        frame.y + CAPTION,
        frame.width - 2 * PADDING,
        frame.height - CAPTION - PADDING,
    )
    a, b, c, _ = fit(projected.bounds, inner)
    (simplified,) = shapely.coverage_simplify([projected], TOLERANCE / a)
    drawn = region(code, name, to_units(simplified, a, b, c))
    drawn["inset"] = {
        "x": frame.x,
        "y": frame.y,
        "width": frame.width,
        "height": frame.height,
    }
    return drawn


def build(geo: Path) -> dict[str, Any]:
    left = MARGIN + INSET_WIDTH + INSET_GAP
    regions, height = metropole(geo, Box(left, MARGIN, WIDTH - MARGIN - left, 0.0))
    step = (height + INSET_GAP) / len(OVERSEAS)
    for i, (code, file, crs) in enumerate(OVERSEAS):
        frame = Box(MARGIN, MARGIN + round(i * step, 1), INSET_WIDTH, round(step - INSET_GAP, 1))
        regions.append(inset(geo, code, file, crs, frame))
    regions.sort(key=lambda r: r["code"])
    total = round(MARGIN + height + CREDIT_STRIP + MARGIN)
    return {
        "viewBox": f"0 0 {WIDTH:g} {total}",
        "credit": CREDIT,
        "source": "IGN Admin Express COG 2018 (INSEE COG 2018 names and codes), "
        "via gregoiredavid/france-geojson 5d34ee6; built by dashboards/web/map/build.py",
        "regions": regions,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--geo", type=Path, default=REPO.parent / "shared" / "geo")
    parser.add_argument("--out", type=Path, default=HERE / "regions.json")
    args = parser.parse_args(argv)
    data = build(args.geo)
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    args.out.write_bytes(text.encode("utf-8"))
    print(f"{args.out}: {len(data['regions'])} regions, {len(text.encode())} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
