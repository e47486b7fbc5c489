"""The dashboard with a keyboard only, and on a wall screen (kiosk mode), in a real browser."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.test_service import PASSWORD
from tests.web.test_browser import chromium, open_page, serious, world

__all__ = ["chromium", "world"]  # fixtures, used by name

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_a_keyboard_reaches_the_content_and_every_link(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    page, watched = open_page(chromium, service, "analyst", PASSWORD)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "contenu"
    # Tabbing on reaches the navigation, the map's regions and the tables' links, each with a
    # visible focus (an outline the stylesheet draws).
    reached: list[str] = []
    for _ in range(200):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement === document.body"):
            break  # past the last link of the page
        reached.append(page.evaluate("document.activeElement.getAttribute('href') || ''"))
        # HTML elements draw an outline; the map's SVG links thicken their region's border.
        focus = page.evaluate(
            """(() => { const e = document.activeElement;
                 const region = e.querySelector && e.querySelector('.region');
                 return region ? getComputedStyle(region).strokeWidth
                               : getComputedStyle(e).outlineStyle; })()"""
        )
        tag = page.evaluate("document.activeElement.outerHTML.slice(0, 120)")
        assert focus not in ("none", "1px"), (tag, focus)
    assert any(h.startswith("/ui/incidents?region=") for h in reached)
    assert any(re.match(r"/ui/incidents/[0-9a-f-]{36}$", h) for h in reached)
    # A region's link followed with Enter opens its list.
    page.focus(".map svg a[href*='Nouvelle-Aquitaine']")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*region=Nouvelle-Aquitaine.*"))
    watched.check(page, "keyboard")


def test_kiosk_mode_shows_the_overview_alone_and_refreshes(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    page, watched = open_page(chromium, service, "analyst", PASSWORD)
    page.goto(f"{service.url}/ui/?kiosk=1")
    assert page.locator("header.top").count() == 0  # no navigation on a wall screen
    assert page.locator("body.kiosk").count() == 1
    assert page.locator('meta[http-equiv="refresh"]').count() == 0  # RGAA: no meta refresh
    main = page.locator("main#contenu")
    assert main.get_attribute("hx-trigger") == "every 60s"
    assert main.get_attribute("hx-get") == "/ui/?kiosk=1"
    # What the minute's refresh does, now: the content is swapped in, the chart drawn again.
    with page.expect_response(re.compile(r".*/ui/\?kiosk=1$")):
        page.evaluate(
            "htmx.ajax('GET', '/ui/?kiosk=1',"
            " {target: '#contenu', select: '#contenu', swap: 'outerHTML'})"
        )
    page.wait_for_selector("main#contenu .chart canvas")
    assert page.locator("header.top").count() == 0
    assert serious(page) == []
    watched.check(page, "kiosk")
