"""Charts for PDF reports, drawn by matplotlib's Agg renderer into images.

Same figures, same pixels: a fixed size and dpi, the vendored DejaVu Sans (registered with
matplotlib's font manager and set on every text by its file, so an installed font never
stands in), French numbers and month names written by `french`, not by the locale. The
images go to fpdf2 as RGB pixels, never through a file format that would carry a date or a
software version.

`Figure` and its Agg canvas are used directly (not pyplot): no global figure state, no
backend chosen at import, nothing kept between reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Any

from api.reports import french
from api.reports.pdf import BAD, FONTS, GOOD, INK, MUTED, RULE, WARN

if TYPE_CHECKING:
    from PIL.Image import Image

DPI = 200
MM = 1 / 25.4  # inches per millimetre


@cache
def _fonts() -> dict[str, Any]:
    """The vendored fonts, by weight; registered once per process."""
    from matplotlib import font_manager

    files = {"normal": FONTS / "DejaVuSans.ttf", "bold": FONTS / "DejaVuSans-Bold.ttf"}
    for path in files.values():
        font_manager.fontManager.addfont(str(path))
    return {weight: str(path) for weight, path in files.items()}


def _rgb(colour: tuple[int, int, int]) -> tuple[float, float, float]:
    return (colour[0] / 255, colour[1] / 255, colour[2] / 255)


def _figure(width_mm: float, height_mm: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_mm * MM, height_mm * MM), dpi=DPI, facecolor="white")
    FigureCanvasAgg(figure)
    return figure


def _pixels(figure: Any) -> Image:
    """The figure as RGB pixels, every text set in the vendored font first."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.text import Text
    from PIL import Image as PILImage

    fonts = _fonts()
    for text in figure.findobj(Text):
        weight = "bold" if text.get_fontweight() in ("bold", 700) else "normal"
        text.set_fontproperties(FontProperties(fname=fonts[weight], size=text.get_fontsize()))
    canvas = figure.canvas
    canvas.draw()
    width, height = canvas.get_width_height()
    rgba = PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    return rgba.convert("RGB")


def _band(score: float) -> tuple[int, int, int]:
    return GOOD if score >= 75 else WARN if score >= 50 else BAD


def _axes_style(axes: Any) -> None:
    for side in ("top", "right"):
        axes.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        axes.spines[side].set_color(_rgb(RULE))
    axes.tick_params(colors=_rgb(INK), labelsize=7, length=2)


def domain_bars(
    domains: Sequence[tuple[str, float | None]], *, width_mm: float, height_mm: float
) -> Image:
    """One horizontal bar per domain (label, score 0-100 or None: nothing applicable), in
    the given order from the top, its value written at its end."""
    from matplotlib.ticker import FuncFormatter

    figure = _figure(width_mm, height_mm)
    axes = figure.add_axes((0.34, 0.12, 0.6, 0.84))
    labels = [label for label, _ in domains]
    values = [score or 0.0 for _, score in domains]
    positions = list(range(len(domains)))[::-1]
    colours = [_rgb(_band(v)) for v in values]
    axes.barh(positions, values, height=0.62, color=colours)
    for y, (_, score) in zip(positions, domains, strict=True):
        said = "non applicable" if score is None else french.number(score, 1)
        axes.text((score or 0.0) + 1.2, y, said, va="center", fontsize=7, color=_rgb(INK))
    axes.set_yticks(positions, labels)
    axes.set_xlim(0, 100)
    axes.set_xticks([0, 25, 50, 75, 100])
    axes.xaxis.set_major_formatter(FuncFormatter(lambda v, _: french.number(v)))
    axes.grid(axis="x", color=_rgb(RULE), linewidth=0.5)
    axes.set_axisbelow(True)
    _axes_style(axes)
    return _pixels(figure)


def score_line(
    points: Sequence[tuple[date, float]],
    *,
    start: date,
    end: date,
    width_mm: float,
    height_mm: float,
) -> Image:
    """Scores (0-100) over time from `start` to `end`, months marked in French."""
    from matplotlib.ticker import FuncFormatter

    figure = _figure(width_mm, height_mm)
    axes = figure.add_axes((0.07, 0.16, 0.9, 0.78))
    xs = [(day - start).days for day in (p[0] for p in points)]
    ys = [p[1] for p in points]
    # Unclipped: today's point sits on the right edge and is drawn whole.
    axes.plot(xs, ys, color=_rgb(INK), linewidth=1.2, marker="o" if len(xs) < 40 else None,
              markersize=2.5 if len(xs) > 1 else 4, clip_on=False)  # fmt: skip
    if xs:
        axes.annotate(
            french.number(ys[-1], 1),
            (xs[-1], ys[-1]),
            textcoords="offset points",
            xytext=(0, 6),
            ha="center",
            fontsize=7,
            fontweight="bold",
        )
    months = _month_starts(start, end)
    axes.set_xticks([(m - start).days for m in months],
                    [f"{MONTHS_SHORT[m.month - 1]} {m:%y}" for m in months])  # fmt: skip
    axes.set_xlim(0, max((end - start).days, 1))
    axes.set_ylim(0, 100)
    axes.set_yticks([0, 25, 50, 75, 100])
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: french.number(v)))
    axes.grid(axis="y", color=_rgb(RULE), linewidth=0.5)
    axes.set_axisbelow(True)
    _axes_style(axes)
    axes.tick_params(axis="x", labelsize=6.5, labelcolor=_rgb(MUTED))
    return _pixels(figure)


MONTHS_SHORT = (
    "janv.", "févr.", "mars", "avr.", "mai", "juin",
    "juil.", "août", "sept.", "oct.", "nov.", "déc.",
)  # fmt: skip


def _month_starts(start: date, end: date) -> list[date]:
    found: list[date] = []
    year, month = (start.year, start.month + 1) if start.day > 1 else (start.year, start.month)
    while True:
        if month > 12:
            year, month = year + 1, 1
        first = date(year, month, 1)
        if first > end:
            return found
        found.append(first)
        month += 1
