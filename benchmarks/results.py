"""Writing one generated section of RESULTS.md, leaving every other section as it is."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(heading: str, text: str) -> None:
    """Replace the section that starts with `heading` (up to the next `## `) by `text`."""
    current = RESULTS.read_text(encoding="utf-8")
    start = current.index(heading)
    end = current.find("\n## ", start + 1)
    tail = current[end + 1 :] if end != -1 else ""
    RESULTS.write_text(current[:start] + text + ("\n" + tail if tail else ""), encoding="utf-8")


def compiled_modules() -> str:
    """How many of the modules setup.py compiles really load compiled here, said in a report."""
    from detection.compiled import compiled_modules as which

    found = which()
    return f"{sum(found.values())} of {len(found)}"
