"""The dashboard without a browser: the real service over HTTP, a person logging in with the
form (cookies, CSRF tokens) and reading the HTML a browser would get."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest

from tests import clients
from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world

EVIL = '<script>alert("pwn")</script> & <b>gras</b>'


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the form"
    return found.group(1)


@contextmanager
def browser(service: Service, username: str, password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A client that logged in through /login, as a person would."""
    with clients.client(service.url, follow_redirects=True) as client:
        form = client.get("/login")
        assert form.status_code == 200
        answer = client.post(
            "/login",
            data={"username": username, "password": password, "csrf": form_token(form.text)},
            headers={"Origin": service.url},
        )
        assert answer.status_code == 200, answer.text
        assert answer.url.path.startswith("/ui/")
        yield client


@pytest.fixture
def world(service: Service) -> dict[str, str]:
    tokens = setup_world(service)
    ids: dict[str, str] = {}
    with service.client(tokens["admin"]) as client:
        for finess, title in ((PITIE, EVIL), (BORDEAUX, "Rançongiciel à Bordeaux")):
            made = client.post(
                "/incidents",
                json={
                    "establishment": finess,
                    "title": title,
                    "category": "ransomware",
                    "severity": "high",
                    "aware_at": "2026-12-01T08:00:00Z",
                    "notifiable": True,
                    "care_impact": "none",
                    "personal_data": False,
                },
            )
            assert made.status_code == 201, made.text
            ids[finess] = made.json()["id"]
    return ids


def test_the_login_page_and_a_wrong_password(service: Service) -> None:
    with clients.client(service.url) as client:
        assert client.get("/ui/incidents").status_code == 303  # not logged in: to the login
        form = client.get("/login")
        bad = client.post(
            "/login",
            data={"username": "admin", "password": "non", "csrf": form_token(form.text)},
            headers={"Origin": service.url},
        )
        assert bad.status_code == 401
        assert "Identifiant ou mot de passe incorrect" in bad.text
        assert "vigie_session" not in bad.headers.get("set-cookie", "")


def test_a_session_cookie_is_httponly_and_strict(service: Service) -> None:
    with clients.client(service.url) as client:
        form = client.get("/login")
        answer = client.post(
            "/login",
            data={"username": "admin", "password": service.admin_password,
                  "csrf": form_token(form.text)},
            headers={"Origin": service.url},
        )  # fmt: skip
        assert answer.status_code == 303
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "vigie_session=" in c)
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/" in cookie


def test_a_login_without_the_forms_token_is_refused(service: Service) -> None:
    with clients.client(service.url) as client:
        client.get("/login")
        answer = client.post(
            "/login",
            data={"username": "admin", "password": service.admin_password, "csrf": "forged"},
        )
        assert answer.status_code == 403
        assert "vigie_session" not in answer.headers.get("set-cookie", "")


def test_a_post_without_the_csrf_token_is_refused(service: Service, world: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        page = client.get(f"/ui/incidents/{world[PITIE]}")
        assert page.status_code == 200
        token = form_token(page.text)
        url = f"/ui/incidents/{world[PITIE]}/comments"
        assert client.post(url, data={"text": "sans jeton"}).status_code == 403
        assert client.post(url, data={"text": "faux", "csrf": "x" * 43}).status_code == 403
        other_site = client.post(
            url,
            data={"text": "d'ailleurs", "csrf": token},
            headers={"Origin": "https://evil.example"},
        )
        assert other_site.status_code == 403
        done = client.post(url, data={"text": "avec jeton", "csrf": token})
        assert done.status_code == 200
        assert "avec jeton" in done.text
        assert "sans jeton" not in done.text


def test_what_people_typed_stays_text(service: Service, world: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        for path in ("/ui/incidents", f"/ui/incidents/{world[PITIE]}"):
            html = client.get(path).text
            assert '<script>alert("pwn")</script>' not in html
            assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in html


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.inline: list[str] = []
        self.styled: list[str] = []
        self.forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.inline.append(str(names))
        if "style" in names or any(k.startswith("on") for k in names):
            self.styled.append(f"{tag} {names}")
        if tag == "form" and names.get("action") != "/logout":
            self.forms += 1


def test_pages_carry_a_strict_csp_and_no_inline_script(
    service: Service, world: dict[str, str]
) -> None:
    with browser(service, "analyst") as client:
        for path in ("/login", "/ui/incidents", f"/ui/incidents/{world[PITIE]}", "/password"):
            answer = client.get(path)
            assert answer.status_code == 200, path
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp
            assert "unsafe-inline" not in csp
            assert "unsafe-eval" not in csp
            assert answer.headers["x-content-type-options"] == "nosniff"
            parsed = _Scripts()
            parsed.feed(answer.text)
            assert parsed.inline == [], path
            assert parsed.styled == [], path


def test_an_establishment_sees_its_own_incidents_only(
    service: Service, world: dict[str, str]
) -> None:
    with browser(service, "it_pitie") as client:
        listing = client.get("/ui/incidents").text
        assert world[PITIE] in listing
        assert world[BORDEAUX] not in listing
        assert BORDEAUX not in listing
        assert "Bordeaux" not in listing
        # Another's incident answers as an absent one, and the refusal is audited.
        assert client.get(f"/ui/incidents/{world[BORDEAUX]}").status_code == 404
        assert client.get(f"/ui/incidents?establishment={BORDEAUX}").text.count("<tr>") <= 1
        csv = client.get("/ui/incidents.csv")
        assert csv.status_code == 200
        assert world[PITIE] in csv.text
        assert world[BORDEAUX] not in csv.text


def test_auditors_read_and_get_no_forms(service: Service, world: dict[str, str]) -> None:
    with browser(service, "inspector") as client:
        for path in ("/ui/incidents", f"/ui/incidents/{world[PITIE]}"):
            answer = client.get(path)
            assert answer.status_code == 200
            parsed = _Scripts()
            parsed.feed(answer.text)
            assert parsed.forms == 1 if path == "/ui/incidents" else parsed.forms == 0, path
        # The filter form is a GET; no page offers an action.
        assert 'method="post"' not in client.get(f"/ui/incidents/{world[PITIE]}").text.replace(
            'method="post" action="/logout"', ""
        )
        token = form_token(client.get("/ui/incidents").text)
        refused = client.post(
            f"/ui/incidents/{world[PITIE]}/comments", data={"text": "audit", "csrf": token}
        )
        assert refused.status_code == 403


def test_every_page_read_is_audited(service: Service, world: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        client.get("/ui/incidents")
        client.get(f"/ui/incidents/{world[BORDEAUX]}")
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as api:
        entries = api.get("/audit", params={"actor": "analyst", "limit": 100}).json()
    seen = {(e["action"], e["target_kind"], e["target_id"]) for e in entries}
    assert ("login", "user", "analyst") in seen
    assert ("read", "incident", "*/*") in seen
    assert ("read", "incident", world[BORDEAUX]) in seen


def test_logout_ends_the_session(service: Service) -> None:
    setup_world(service)
    with browser(service, "analyst") as client:
        token = form_token(client.get("/ui/incidents").text)
        cookie = client.cookies.get("vigie_session")
        assert client.post("/logout", data={"csrf": token}).url.path == "/login"
    with clients.client(service.url, cookies={"vigie_session": cookie or ""}) as stolen:
        assert stolen.get("/ui/incidents").status_code == 303  # the old cookie opens nothing


def test_a_role_change_ends_the_users_sessions(service: Service) -> None:
    setup_world(service)
    with browser(service, "analyst") as client:
        assert client.get("/ui/incidents").status_code == 200
        admin = service.login("admin", service.admin_password)
        with service.client(admin) as api:
            assert api.patch("/users/analyst", json={"role": "auditor"}).status_code == 200
        assert client.get("/ui/incidents").url.path == "/login"


def _kpis(html: str) -> dict[str, int]:
    return {
        name: int(value.replace("\u202f", ""))
        for name, value in re.findall(r'data-kpi="([a-z]+)">([\d\u202f]+)<', html)
    }


def test_the_national_overview_counts_what_the_api_counts(
    service: Service, world: dict[str, str]
) -> None:
    with browser(service, "analyst") as client:
        home = client.get("/ui/")
        assert home.status_code == 200
        assert "Vue nationale" in home.text
        shown = _kpis(home.text)
        again = _kpis(client.get("/ui/panels/kpis").text)  # what htmx swaps in every minute
    token = service.login("analyst", PASSWORD)
    with service.client(token) as api:
        counted = api.get("/stats/overview").json()
        regions = api.get("/stats/incidents", params={"by": "region", "status": "open"}).json()
    expected = {
        "open": counted["incidents"]["open"],
        "overdue": counted["incidents"]["overdue_deadlines"],
        "campaigns": counted["campaigns_open"],
        "alerts": counted["alerts"]["last_30_days"],
        "silent": counted["agents"]["silent"],
        "establishments": counted["establishments"],
    }
    assert shown == expected
    assert again == expected
    assert shown["open"] == 2
    # The map: one link per region, the count printed in each; the table form says the same.
    links = re.findall(r'<a href="/ui/incidents\?region=[^"]+&amp;status=open"', home.text)
    assert len(links) >= 18
    for group in regions["groups"]:
        row = f'{group["key"]}</a></td><td class="n">{group["incidents"]}</td>'
        assert row.replace("'", "&#39;") in home.text, group["key"]
    assert "IGN Admin Express COG 2018" in home.text
    assert 'id="serie-incidents" data-points=\'{"series": [' in home.text


def test_an_establishments_home_and_an_acknowledgement_the_cert_sees(
    service: Service, world: dict[str, str]
) -> None:
    cert = service.login("analyst", PASSWORD)
    with service.client(cert) as api:
        alert = api.post(
            "/alerts",
            json={"title": "Campagne <Qakbot>", "severity": "high", "tlp": "amber",
                  "indicators": [{"type": "ip", "value": "203.0.113.66"}],
                  "target": {"all": True}, "retro_hunt_days": 0},
        )  # fmt: skip
        assert alert.status_code == 201, alert.text
        alert_id = alert.json()["id"]
        before = api.get(f"/alerts/{alert_id}/acknowledgements").json()
    assert PITIE in {p["finess"] for p in before["pending"]}
    with browser(service, "it_pitie") as client:
        home = client.get("/ui/")
        assert home.status_code == 200
        assert "Mon établissement" in home.text
        assert "Campagne &lt;Qakbot&gt;" in home.text
        assert BORDEAUX not in home.text
        assert "Bordeaux" not in home.text
        assert "Vue nationale" not in home.text
        done = client.post(
            f"/ui/alerts/{alert_id}/acknowledge",
            data={"csrf": form_token(home.text), "comment": "lu par l'équipe"},
        )
        assert done.status_code == 200
        assert "Campagne &lt;Qakbot&gt;" not in done.text
        assert "Aucune alerte en attente" in done.text
    with service.client(cert) as api:
        after = api.get(f"/alerts/{alert_id}/acknowledgements").json()
    assert PITIE in {a["establishment"] for a in after["acknowledged"]}
    assert PITIE not in {p["finess"] for p in after["pending"]}


ROLE_OF = {"it_pitie": "establishment", "analyst": "cert", "inspector": "auditor"}


def test_each_page_admits_exactly_the_roles_it_states(
    service: Service, world: dict[str, str]
) -> None:
    from api.web import actions, national, pages
    from tests.web.test_pages_national import open_campaign

    campaign = open_campaign(service, service.login("admin", service.admin_password))
    cert = service.login("analyst", PASSWORD)
    with service.client(cert) as api:
        made = api.post(
            "/alerts",
            json={"title": "Test", "severity": "low", "tlp": "clear", "retro_hunt_days": 0,
                  "indicators": [{"type": "ip", "value": "203.0.113.9"}],
                  "target": {"all": True}},
        )  # fmt: skip
        alert_id = made.json()["id"]
    walked = [
        (route.path, route.openapi_extra["x-roles"])  # type: ignore[attr-defined]
        for router in (pages.router, national.router, actions.router)
        for route in router.routes
        if "GET" in getattr(route, "methods", set())
    ]
    assert len(walked) >= 20
    values = {"incident_id": world[PITIE], "alert_id": alert_id, "finess": PITIE,
              "campaign_id": campaign["campaign"]}  # fmt: skip
    users = {**ROLE_OF, "admin": "admin"}
    for username, role in users.items():
        password = service.admin_password if username == "admin" else PASSWORD
        with browser(service, username, password) as client:
            for path, allowed in walked:
                url = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
                answer = client.get(url)
                expected = 200 if role in allowed else 403
                assert answer.status_code == expected, (username, url, answer.status_code)


def test_the_audit_page_filters_and_exports(service: Service, world: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        client.get(f"/ui/incidents/{world[BORDEAUX]}")
    with browser(service, "inspector") as client:
        page = client.get("/ui/audit", params={"actor": "analyst", "kind": "incident"})
        assert page.status_code == 200
        assert world[BORDEAUX] in page.text
        assert "<td>it_pitie</td>" not in page.text
        csv = client.get("/ui/audit.csv", params={"actor": "analyst", "action": "login"})
        assert csv.status_code == 200
        lines = csv.text.lstrip("\ufeff").splitlines()
        assert lines[0].startswith("id;heure (UTC);compte")
        assert len(lines) >= 2
        assert all(";analyst;cert;login;" in line for line in lines[1:])
    with browser(service, "analyst") as client:
        assert client.get("/ui/audit").status_code == 403


def test_an_admin_ends_a_users_sessions(service: Service) -> None:
    setup_world(service)
    with browser(service, "analyst") as client:
        assert client.get("/ui/incidents").url.path == "/ui/incidents"
        admin = service.login("admin", service.admin_password)
        with service.client(admin) as api:
            assert api.post("/users/analyst/logout").status_code == 204
        assert client.get("/ui/incidents").url.path == "/login"


def test_idle_and_old_sessions_end(service: Service) -> None:
    import sqlalchemy

    setup_world(service)
    engine = sqlalchemy.create_engine(service.settings.database_url)
    try:
        for column, minutes in (("last_seen_at", 31), ("created_at", 12 * 60 + 1)):
            with browser(service, "analyst") as client:
                assert client.get("/ui/incidents").url.path == "/ui/incidents"
                with engine.begin() as connection:
                    connection.execute(
                        sqlalchemy.text(
                            f"UPDATE web_sessions SET {column} = :at WHERE ended_at IS NULL"
                        ),
                        {"at": datetime.now(UTC) - timedelta(minutes=minutes)},
                    )
                assert client.get("/ui/incidents").url.path == "/login", column
    finally:
        engine.dispose()


def test_login_failures_are_throttled_on_the_form(service: Service) -> None:
    with clients.client(service.url) as client:
        statuses = []
        for _ in range(7):
            form = client.get("/login")
            answer = client.post(
                "/login",
                data={"username": "admin", "password": "pas le bon", "csrf": form_token(form.text)},
                headers={"Origin": service.url},
            )
            statuses.append(answer.status_code)
        assert statuses[:5] == [401] * 5
        assert statuses[-1] == 429
        assert "Trop d&#39;échecs" in answer.text
        assert int(answer.headers["retry-after"]) > 0


def test_an_incidents_page_shows_what_detected_it(service: Service) -> None:
    from tests.api.test_ingest import SHADOW_RULE, agent_key, case_event, post

    tokens = setup_world(service)
    key = agent_key(service, tokens)
    yara = {
        "engine": "yara",
        "rule_id": "Vigie_Ransom_Note_Health",
        "rule_title": "Note de rançon visant un hôpital",
        "level": "critical",
        "timestamp": "2026-11-20T10:00:00Z",
        "source": "C:/Partages/Pharmacie",
        "file": "C:/Partages/Pharmacie/LISEZ-MOI.txt",
        "strings": [{"identifier": "$note", "offset": 12, "length": 30}],
    }
    # A YARA hit found by the agent, and a Sigma rule the service runs itself on an event.
    batch = {"batch_id": "detected-1", "detections": [yara],
             "events": [case_event(f"{SHADOW_RULE}.positive")]}  # fmt: skip
    assert post(service, key, batch).status_code == 200
    with service.client(tokens["analyst"]) as api:
        found = api.get("/incidents", params={"establishment": PITIE}).json()["items"]
    by_rule = {i["rule_id"]: i["id"] for i in found}
    assert "Vigie_Ransom_Note_Health" in by_rule
    with browser(service, "it_pitie") as client:
        page = client.get(f"/ui/incidents/{by_rule['Vigie_Ransom_Note_Health']}").text
        assert "C:/Partages/Pharmacie/LISEZ-MOI.txt" in page
        assert "1 chaîne trouvée" in page
        assert "détecté par l&#39;agent" in page
        server_side = next(i for r, i in by_rule.items() if r != "Vigie_Ransom_Note_Health")
        page = client.get(f"/ui/incidents/{server_side}").text
        assert "détecté par le service national" in page
        assert "Événement</h3><pre>" in page
