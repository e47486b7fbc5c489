"""The map of the 18 regions: the committed regions.json (outlines, insets, credit), the SVG that
api.web.map draws from it, and the builder that makes regions.json from IGN's outlines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from api.establishments.finess import Region
from api.web import map as regions_map

REPO = Path(__file__).resolve().parent.parent.parent
GEO = REPO.parent / "shared" / "geo"
BUILDER = REPO / "dashboards" / "web" / "map" / "build.py"
CREDIT = "Contours : IGN Admin Express COG 2018, Licence Ouverte"
SVG = "{http://www.w3.org/2000/svg}"

# INSEE region codes (COG 2018), written out by hand.
CODES = {
    "Guadeloupe": "01",
    "Martinique": "02",
    "Guyane": "03",
    "La Réunion": "04",
    "Mayotte": "06",
    "Île-de-France": "11",
    "Centre-Val de Loire": "24",
    "Bourgogne-Franche-Comté": "27",
    "Normandie": "28",
    "Hauts-de-France": "32",
    "Grand Est": "44",
    "Pays de la Loire": "52",
    "Bretagne": "53",
    "Nouvelle-Aquitaine": "75",
    "Occitanie": "76",
    "Auvergne-Rhône-Alpes": "84",
    "Provence-Alpes-Côte d'Azur": "93",
    "Corse": "94",
}
OVERSEAS = {"Guadeloupe", "Martinique", "Guyane", "La Réunion", "Mayotte"}

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # min x, min y, max x, max y


def committed() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(regions_map.MAP_FILE.read_text(encoding="utf-8"))
    return data


def rings(d: str) -> list[list[Point]]:
    """The closed rings of SVG path data, in absolute coordinates. Understands the commands a
    polygon needs (M L H V Z, either case); anything else is an error."""
    tokens = re.findall(r"[A-Za-z]|-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", d)
    assert "".join(tokens) == re.sub(r"[\s,]", "", d), f"stray characters in {d[:60]}..."
    out: list[list[Point]] = []
    x = y = 0.0
    command = ""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.isalpha():
            command = token
            i += 1
            if command in "Zz":
                assert out, "a close with no ring"
                assert len(out[-1]) >= 3, "a ring of fewer than 3 points"
                x, y = out[-1][0]
                command = ""
            continue
        assert command, f"a number with no command at token {i}"
        if command in "MmLl":
            dx, dy = float(tokens[i]), float(tokens[i + 1])
            i += 2
            x, y = (x + dx, y + dy) if command.islower() else (dx, dy)
            if command in "Mm":
                out.append([])
                command = "l" if command == "m" else "L"  # later pairs are line-tos
        elif command in "HhVv":
            value = float(tokens[i])
            i += 1
            if command in "Hh":
                x = x + value if command == "h" else value
            else:
                y = y + value if command == "v" else value
        else:
            raise AssertionError(f"unexpected path command {command!r}")
        out[-1].append((x, y))
    assert command == "", "the last ring is not closed"
    return out


def inside(point: Point, parts: list[list[Point]]) -> bool:
    """Even-odd rule over every ring: holes count as outside."""
    px, py = point
    crossings = 0
    for ring in parts:
        for (x0, y0), (x1, y1) in zip(ring, ring[1:] + ring[:1], strict=True):
            if (y0 > py) != (y1 > py) and px < x0 + (py - y0) * (x1 - x0) / (y1 - y0):
                crossings += 1
    return crossings % 2 == 1


def bounds(points: list[Point]) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def frame(inset: dict[str, float]) -> Box:
    return inset["x"], inset["y"], inset["x"] + inset["width"], inset["y"] + inset["height"]


def overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def within(a: Box, b: Box) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


# --- regions.json -----------------------------------------------------------------------------


def test_the_18_regions_with_the_enum_names_and_insee_codes() -> None:
    regions = committed()["regions"]
    assert len(regions) == 18
    assert {r["name"]: r["code"] for r in regions} == CODES
    assert {r["name"] for r in regions} == {region.value for region in Region}
    assert {r["name"] for r in regions if "inset" in r} == OVERSEAS


def test_paths_parse_and_stay_in_the_view_box_with_labels_inside() -> None:
    data = committed()
    x0, y0, width, height = (float(v) for v in data["viewBox"].split())
    view = (x0, y0, x0 + width, y0 + height)
    assert 900 <= width <= 1100
    for region in data["regions"]:
        parts = rings(region["d"])
        points = [p for ring in parts for p in ring]
        assert len(points) > 20, region["name"]
        assert within(bounds(points), view), region["name"]
        assert inside(tuple(region["label"]), parts), f"{region['name']}: label outside"


def test_insets_overlap_neither_each_other_nor_metropolitan_france() -> None:
    data = committed()
    metropole = bounds(
        [p for r in data["regions"] if "inset" not in r for ring in rings(r["d"]) for p in ring]
    )
    frames = {r["name"]: frame(r["inset"]) for r in data["regions"] if "inset" in r}
    for name, box in frames.items():
        assert not overlap(box, metropole), name
    for (a, box_a), (b, box_b) in combinations(frames.items(), 2):
        assert not overlap(box_a, box_b), (a, b)
    for region in data["regions"]:
        if "inset" in region:  # each outline drawn within its own frame
            points = [p for ring in rings(region["d"]) for p in ring]
            assert within(bounds(points), frames[region["name"]]), region["name"]


def test_corse_is_in_the_metropolitan_frame() -> None:
    corse = next(r for r in committed()["regions"] if r["name"] == "Corse")
    assert "inset" not in corse
    # south-east of everything else in metropolitan France
    others = [r for r in committed()["regions"] if "inset" not in r and r["name"] != "Corse"]
    assert corse["label"][0] > max(r["label"][0] for r in others)
    assert corse["label"][1] > max(r["label"][1] for r in others)


def test_the_credit_is_in_the_file_and_the_map_is_small() -> None:
    assert committed()["credit"] == CREDIT
    assert regions_map.credit() == CREDIT
    assert regions_map.MAP_FILE.stat().st_size < 80_000


# --- svg() and legend() -----------------------------------------------------------------------

# A hand-worked example. The non-zero counts, sorted: 1 1 1 2 2 3 4 5 10 10 20 40 (12 of them).
# A count's level is ceil(5 * r / 12), r being the number of non-zero counts <= it:
#   1 -> r=3, ceil(1.25)=2   2 -> r=5, ceil(2.08)=3   3 -> r=6, 3   4 -> r=7, ceil(2.92)=3
#   5 -> r=8, ceil(3.33)=4   10 -> r=10, ceil(4.17)=5   20 -> 5   40 -> 5
COUNTS: dict[str, int | None] = {
    "Île-de-France": 40,
    "Auvergne-Rhône-Alpes": 20,
    "Provence-Alpes-Côte d'Azur": 10,
    "Occitanie": 10,
    "Nouvelle-Aquitaine": 5,
    "Grand Est": 4,
    "Hauts-de-France": 3,
    "Bretagne": 2,
    "La Réunion": 2,
    "Normandie": 1,
    "Pays de la Loire": 1,
    "Guadeloupe": 1,
    "Centre-Val de Loire": 0,
    "Bourgogne-Franche-Comté": 0,
    "Corse": 0,
    "Guyane": 0,
    "Martinique": None,
    # Mayotte left out: counts 0
}
CLASSES = {
    "Île-de-France": "lvl-5",
    "Auvergne-Rhône-Alpes": "lvl-5",
    "Provence-Alpes-Côte d'Azur": "lvl-5",
    "Occitanie": "lvl-5",
    "Nouvelle-Aquitaine": "lvl-4",
    "Grand Est": "lvl-3",
    "Hauts-de-France": "lvl-3",
    "Bretagne": "lvl-3",
    "La Réunion": "lvl-3",
    "Normandie": "lvl-2",
    "Pays de la Loire": "lvl-2",
    "Guadeloupe": "lvl-2",
    "Centre-Val de Loire": "lvl-0",
    "Bourgogne-Franche-Comté": "lvl-0",
    "Corse": "lvl-0",
    "Guyane": "lvl-0",
    "Martinique": "nodata",
    "Mayotte": "lvl-0",
}


def link(name: str) -> str:
    return f"/incidents?region={name}&statut=ouvert"


def drawn() -> tuple[str, ET.Element]:
    text = str(regions_map.svg(COUNTS, link, what="incidents ouverts", what_one="incident ouvert"))
    return text, ET.fromstring(text)


def test_svg_has_a_link_per_region_with_its_class_title_and_count() -> None:
    _, root = drawn()
    assert root.tag == f"{SVG}svg"
    title_id = root.get("aria-labelledby")
    (title,) = (t for t in root.iter(f"{SVG}title") if t.get("id") == title_id)
    assert title.text == "Carte des régions : incidents ouverts"
    links = root.findall(f"{SVG}a")
    assert len(links) == 18
    seen = {}
    for a in links:
        title = a.findtext(f"{SVG}title") or ""
        name = title.split(" : ")[0]
        seen[name] = a
        assert a.get("href") == link(name)
        (path,) = a.findall(f"{SVG}path")
        assert path.get("class") == f"region {CLASSES[name]}", name
        (count,) = (t for t in a.findall(f"{SVG}text") if t.get("class") == "count")
        expected = COUNTS.get(name, 0)
        assert count.text == ("n.d." if expected is None else str(expected)), name
    assert set(seen) == set(CODES)
    assert seen["Bretagne"].findtext(f"{SVG}title") == "Bretagne : 2 incidents ouverts"
    assert seen["Corse"].findtext(f"{SVG}title") == "Corse : 0 incident ouvert"
    assert seen["Normandie"].findtext(f"{SVG}title") == "Normandie : 1 incident ouvert"
    assert seen["Martinique"].findtext(f"{SVG}title") == "Martinique : données indisponibles"
    # the insets are named inside their frames
    names = {t.text for t in root.iter(f"{SVG}text") if t.get("class") == "inset-name"}
    assert names == OVERSEAS


def test_svg_escapes_and_carries_no_style_nor_script() -> None:
    text, root = drawn()
    assert "Côte d&#39;Azur" in text
    assert "d'Azur" not in text
    assert "&amp;statut=ouvert" in text
    assert "style=" not in text.lower()
    assert "<script" not in text.lower()
    assert "on" not in {attr[:2] for el in root.iter() for attr in el.attrib}  # no handlers
    assert CREDIT in text


def test_large_counts_are_grouped_the_french_way() -> None:
    text = str(regions_map.svg({"Bretagne": 12345}, link, what="événements"))
    assert "Bretagne : 12\u202f345 événements" in text


def test_legend_gives_the_ranges_of_the_classes_used() -> None:
    assert regions_map.legend(COUNTS) == [
        ("lvl-0", "0"),
        ("lvl-2", "1"),
        ("lvl-3", "2 à 4"),
        ("lvl-4", "5"),
        ("lvl-5", "6 à 40"),
        ("nodata", "données indisponibles"),
    ]
    assert regions_map.legend({}) == [("lvl-0", "0")]
    # equal counts share the top level, whose range starts at 1
    assert regions_map.legend(dict.fromkeys(("Corse", "Bretagne"), 7)) == [
        ("lvl-0", "0"),
        ("lvl-5", "1 à 7"),
    ]


@pytest.mark.parametrize(
    ("counts", "message"),
    [({"Bretagne": 1, "Picardie": 2}, "Picardie"), ({"Corse": -1}, "negative")],
)
def test_counts_must_name_regions_and_be_positive(
    counts: dict[str, int | None], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        regions_map.svg(counts, link, what="incidents")
    with pytest.raises(ValueError, match=message):
        regions_map.legend(counts)


# --- the builder ------------------------------------------------------------------------------


def test_builder_reproduces_the_committed_file(tmp_path: Path) -> None:
    if not GEO.is_dir():
        reason = f"IGN outlines not found: {GEO} (../shared/geo is not checked out here)"
        if os.environ.get("VIGIE_REQUIRE_CORPORA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    out = tmp_path / "regions.json"
    subprocess.run(
        [sys.executable, str(BUILDER), "--geo", str(GEO), "--out", str(out)],
        check=True,
        capture_output=True,
    )
    assert out.read_bytes() == regions_map.MAP_FILE.read_bytes()
