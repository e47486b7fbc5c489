"""The dashboard in a real browser: Debian's chromium driven by Playwright (the system
browser by `executable_path`: `playwright install` cannot download here), against the real
service on a loopback port.

Each role logs in with the form; every page is checked for console errors, CSP violations
and accessibility (axe-core: no serious or critical violation, the RGAA bar), and a
screenshot of it is written to `build/screenshots/` (or `$VIGIE_SCREENSHOTS`) for a person
to look at. Skipped without chromium, unless `VIGIE_REQUIRE_BROWSER=1` (set by `.ci/run`).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("VIGIE_SCREENSHOTS", Path(__file__).parents[2] / "build/screenshots"))

if not Path(CHROMIUM).exists():
    if os.environ.get("VIGIE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"chromium is required (VIGIE_REQUIRE_BROWSER=1) and {CHROMIUM} is missing",
                    pytrace=False)  # fmt: skip
    pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")
axe_api = pytest.importorskip("axe_playwright_python.sync_playwright")

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

# Watches a page: console errors, uncaught errors, CSP violations (reported by the page's
# own securitypolicyviolation events, which an init script listens to before any other).
WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@dataclass
class Watched:
    errors: list[str] = field(default_factory=list)

    def check(self, page: Any, where: str) -> None:
        csp = page.evaluate("window.__csp")
        assert csp == [], f"{where}: CSP violations {csp}"
        assert self.errors == [], f"{where}: console errors {self.errors}"


@pytest.fixture
def chromium() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    ids: dict[str, str] = {}
    with service.client(tokens["admin"]) as client:
        for finess, title in ((PITIE, "Rançongiciel sur le PACS"), (BORDEAUX, "Hameçonnage")):
            made = client.post(
                "/incidents",
                json={"establishment": finess, "title": title, "category": "ransomware",
                      "severity": "critical", "aware_at": "2026-12-01T08:00:00Z",
                      "notifiable": True, "care_impact": "degraded",
                      "personal_data": False},
            )  # fmt: skip
            assert made.status_code == 201, made.text
            ids[finess] = made.json()["id"]
    with service.client(tokens["analyst"]) as client:
        alert = client.post(
            "/alerts",
            json={"title": "Vague de rançongiciels : correctifs VPN", "severity": "critical",
                  "tlp": "amber", "indicators": [{"type": "ip", "value": "203.0.113.66"}],
                  "target": {"all": True}, "retro_hunt_days": 0},
        )  # fmt: skip
        assert alert.status_code == 201, alert.text
        ids["alert"] = alert.json()["id"]
    with service.client(tokens["it_pitie"]) as client:
        answered = client.put(
            f"/establishments/{PITIE}/maturity/answers/GOV-03",
            json={"choice": "largement", "comment": "procédure écrite"},
        )
        assert answered.status_code == 200, answered.text
    with service.client(tokens["admin"]) as client:  # two days of maturity scores
        for now in ("2026-11-20T10:00:00Z", None):
            done = client.post("/jobs/maturity/run", params={"now": now} if now else None)
            assert done.status_code == 200, done.text
    return ids


@pytest.fixture
def national(service: Service, world: dict[str, str]) -> dict[str, str]:
    """The national pages' data: a campaign between Pitié and Bordeaux (two more incidents),
    agents (one that dropped events, one silent, one never seen) and maturity scores."""
    from tests.api.test_agents import enrolled, new_token
    from tests.web.test_pages_national import backdate_heartbeats, heartbeat, open_campaign

    admin = service.login("admin", service.admin_password)
    made = open_campaign(service, admin)
    heartbeat(service, made[PITIE]["key"], dropped=3, queued=12)
    heartbeat(service, made[BORDEAUX]["key"])
    backdate_heartbeats(service, BORDEAUX)
    enrolled(service, new_token(service, admin, PITIE, label="Postes")["token"], "poste-accueil")
    with service.client(admin) as client:
        assert client.post("/jobs/maturity/run").json()["outcome"] == "ok"
    return {"campaign": made["campaign"]}


def open_page(browser: Any, service: Service, username: str, password: str) -> tuple[Any, Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
    page = context.new_page()
    watched = Watched()
    page.add_init_script(WATCH)
    page.on("console", lambda m: watched.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    page.goto(f"{service.url}/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/.*"))
    return page, watched


def serious(page: Any) -> list[str]:
    results = axe_api.Axe().run(page)
    return [
        f"{v['id']} ({v['impact']}): {v['help']} [{len(v['nodes'])}]"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def visit(page: Any, watched: Watched, service: Service, path: str, shot: str) -> None:
    answer = page.goto(f"{service.url}{path}")
    assert answer is not None
    assert answer.status == 200, (path, answer.status)
    page.wait_for_load_state("networkidle")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    watched.check(page, path)
    assert serious(page) == [], path


PAGES = {
    "analyst": [
        "/ui/",
        "/ui/incidents",
        "/ui/incidents/{PITIE}",
        "/ui/alerts",
        "/ui/alerts/{alert}",
        "/ui/establishments",
        "/ui/establishments/{BORDEAUX_FINESS}",
        "/ui/campaigns",
        "/ui/campaigns/{campaign}",
        "/ui/agents",
        "/ui/incidents/new",
        "/ui/alerts/new",
        "/ui/maturity",
        "/ui/maturity/{finess}",
    ],
    "it_pitie": [
        "/ui/",
        "/ui/incidents",
        "/ui/incidents/{PITIE}",
        "/ui/alerts/{alert}",
        "/ui/agents",
        "/ui/establishments/{PITIE_FINESS}",
        "/ui/incidents/new",
        "/ui/maturity",
        "/ui/maturity/questionnaire",
        "/ui/maturity/profile",
        "/ui/reports",
    ],
    "inspector": [
        "/ui/",
        "/ui/audit",
        "/ui/incidents/{BORDEAUX}",
        "/ui/establishments",
        "/ui/agents",
        "/ui/maturity/{finess}",
        "/ui/reports",
    ],
}


@pytest.mark.parametrize("username", sorted(PAGES))
def test_each_role_sees_its_pages_without_errors_and_accessible(
    service: Service,
    world: dict[str, str],
    national: dict[str, str],
    chromium: Any,
    username: str,
) -> None:
    page, watched = open_page(chromium, service, username, PASSWORD)
    ids = {"PITIE": world[PITIE], "BORDEAUX": world[BORDEAUX], "alert": world["alert"],
           "campaign": national["campaign"], "PITIE_FINESS": PITIE,
           "BORDEAUX_FINESS": BORDEAUX, "finess": PITIE}  # fmt: skip
    for path in PAGES[username]:
        url = path.format(**ids)
        name = path.split("/ui/")[1].split("/{")[0].replace("/", "-") or "accueil"
        name += "-fiche" if "{" in path else ""
        visit(page, watched, service, url, f"{username}-{name}")


def test_the_overview_in_the_browser_counts_what_the_api_counts(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    page, watched = open_page(chromium, service, "analyst", PASSWORD)
    page.wait_for_selector(".chart canvas")  # uPlot drew the trend from its JSON block
    shown = {
        name: int(page.inner_text(f'[data-kpi="{name}"]').replace("\u202f", ""))
        for name in ("open", "overdue", "alerts", "silent", "establishments")
    }
    # htmx swaps the KPI panel in (what it does every minute), under the same CSP.
    with page.expect_response(re.compile(r".*/ui/panels/kpis.*")):
        page.evaluate("htmx.ajax('GET', '/ui/panels/kpis', {target: '#kpis', swap: 'outerHTML'})")
    page.wait_for_selector("#kpis")
    token = service.login("analyst", PASSWORD)
    with service.client(token) as api:
        counted = api.get("/stats/overview").json()
    assert shown == {
        "open": counted["incidents"]["open"],
        "overdue": counted["incidents"]["overdue_deadlines"],
        "alerts": counted["alerts"]["last_30_days"],
        "silent": counted["agents"]["silent"],
        "establishments": counted["establishments"],
    }
    assert shown["open"] == 2
    assert page.locator(".map svg a").count() == 18
    page.click(".map svg a[href*='le-de-France']")  # a region opens its filtered list
    page.wait_for_url(re.compile(r".*/ui/incidents\?region=.*"))
    watched.check(page, "overview")


def test_an_acknowledgement_shows_in_the_certs_pending_list(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    alert = f"/ui/alerts/{world['alert']}"
    cert, _ = open_page(chromium, service, "analyst", PASSWORD)
    cert.goto(f"{service.url}{alert}")
    assert cert.locator("#en-attente").inner_text().count(PITIE) == 1
    mine, watched = open_page(chromium, service, "it_pitie", PASSWORD)
    mine.fill("#alertes input[name=comment]", "Correctifs appliqués")
    mine.click("#alertes button[type=submit]")
    mine.wait_for_selector("text=Aucune alerte en attente")
    watched.check(mine, "acknowledgement")
    cert.reload()
    assert PITIE not in cert.locator("#en-attente").inner_text()
    assert "Correctifs appliqués" in cert.locator("#accusees").inner_text()


def test_an_enrollment_token_is_made_and_shown_once_in_the_browser(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    page, watched = open_page(chromium, service, "it_pitie", PASSWORD)
    page.goto(f"{service.url}/ui/agents")
    page.fill("#t-label", "Serveurs du site B")
    page.fill("#t-max", "3")
    page.click("#jetons form button[type=submit]")
    page.wait_for_selector("input.secret")
    secret = page.input_value("input.secret")
    assert secret.startswith("vge_")
    page.screenshot(path=str(SHOTS / "it_pitie-jeton-cree.png"), full_page=True)
    watched.check(page, "token")
    assert serious(page) == []
    page.click("text=Retour aux jetons")
    page.wait_for_url(re.compile(r".*/ui/agents.*"))
    listing = page.locator("#jetons table").inner_text()
    assert "Serveurs du site B" in listing
    assert secret[:8] in listing
    assert secret not in page.content()


def test_a_declaration_typed_in_the_browser_keeps_its_paris_time(
    service: Service, world: dict[str, str], chromium: Any
) -> None:
    page, watched = open_page(chromium, service, "it_pitie", PASSWORD)
    page.goto(f"{service.url}/ui/incidents")
    page.click("text=Déclarer un incident")
    page.wait_for_url(re.compile(r".*/ui/incidents/new$"))
    page.fill("#d-title", "Rançongiciel sur la messagerie")
    page.select_option("#d-category", "ransomware")
    page.check("input[name=personal_data][value=non]")
    page.fill("#d-aware", "2026-07-14T10:30")  # summer time: 08:30 UTC
    page.fill("#d-systems", "messagerie\nannuaire")
    page.click("main button[type=submit]")  # not the header's logout button
    page.wait_for_url(re.compile(r".*/ui/incidents/[0-9a-f-]{36}$"))
    assert page.inner_text("h1") == "Rançongiciel sur la messagerie"
    assert page.get_attribute("dl.facts time", "datetime") == "2026-07-14T08:30:00+00:00"
    assert "14/07/2026 10:30" in page.inner_text("dl.facts")
    watched.check(page, "declaration")
