"""The national pages over real HTTP (establishments, an establishment's page, campaigns,
agents and enrollment tokens): what they show equals what the JSON API answers the same
user, an establishment sees nothing of another's, auditors get no forms, and every new form
refuses a request without the session's CSRF token."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy

from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_incidents import MIMIKATZ, detection
from tests.api.test_ingest import post
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.web.test_pages import EVIL, _Scripts, browser, form_token

SOURCES = [{"name": "syslog-udp-514", "kind": "syslog", "lag_seconds": 4.2}]


def finess(body: str) -> str:
    """`body` (8 digits) with its Luhn key: a FINESS number the registry accepts."""
    for key in "0123456789":
        digits = [int(c) for c in reversed(body + key)]
        doubled = [
            d if i % 2 == 0 else (2 * d - 9 if d > 4 else 2 * d) for i, d in enumerate(digits)
        ]
        total = sum(doubled)
        if total % 10 == 0:
            return body + key
    raise AssertionError(body)


def heartbeat(service: Service, key: str, **counters: int) -> None:
    with service.client(key) as client:
        beat = client.post(
            "/agents/heartbeat",
            json={"version": "0.2.0", "sources": SOURCES, "counters": counters},
        )
    assert beat.status_code == 200, beat.text


def backdate_heartbeats(service: Service, establishment: str, hours: int = 2) -> None:
    """An establishment's agents last heard from `hours` ago: silent (the threshold is 60 min)."""
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text(
                "UPDATE agents SET last_heartbeat = :at WHERE establishment_finess = :f "
                "AND last_heartbeat IS NOT NULL"
            ),
            {"at": datetime.now(UTC) - timedelta(hours=hours), "f": establishment},
        )
    engine.dispose()


def open_campaign(service: Service, admin: str) -> dict[str, Any]:
    """Pitié and Bordeaux each enroll an agent that reports the same rule: a campaign.
    Returns the agents' keys and ids, and the campaign's id."""
    out: dict[str, Any] = {}
    for place, host in ((PITIE, "srv-pitie-01"), (BORDEAUX, "srv-bdx-01")):
        agent = enrolled(service, new_token(service, admin, place)["token"], host)
        out[place] = {"key": agent["agent_key"], "id": agent["id"]}
        stored = post(
            service,
            agent["agent_key"],
            {"batch_id": f"camp-{host}", "detections": [detection(MIMIKATZ, host)]},
        )
        assert stored.status_code == 200, stored.text
    with service.client(admin) as api:
        (campaign,) = api.get("/campaigns").json()
    out["campaign"] = campaign["id"]
    return out


@pytest.fixture
def world(service: Service) -> dict[str, Any]:
    """Two establishments with a declared incident each, a campaign between them; Pitié has
    an active agent that dropped events and one never seen, Bordeaux a silent one."""
    tokens = setup_world(service)
    admin = tokens["admin"]
    with service.client(admin) as client:
        for place in (PITIE, BORDEAUX):
            made = client.post(
                "/incidents",
                json={
                    "establishment": place,
                    "title": f"Déclaré à {place}",
                    "category": "ransomware",
                    "severity": "high",
                    "aware_at": "2026-12-01T08:00:00Z",
                    "notifiable": True,
                    "care_impact": "none",
                    "personal_data": False,
                },
            )
            assert made.status_code == 201, made.text
    ids = open_campaign(service, admin)
    heartbeat(service, ids[PITIE]["key"], dropped=3, queued=12)
    heartbeat(service, ids[BORDEAUX]["key"], dropped=0)
    backdate_heartbeats(service, BORDEAUX)
    never = enrolled(service, new_token(service, admin, PITIE)["token"], "poste-accueil")
    ids["never"] = never["id"]
    return {**ids, "tokens": tokens}


def counts_of(html: str, finess: str) -> dict[str, str]:
    row = re.search(rf'<tr data-finess="{finess}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {finess}"
    return dict(re.findall(r'data-count="(\w+)">([\d\u202f,]+)<', row.group(1)))


def api_total(api: httpx.Client, path: str, **params: str) -> int:
    answer = api.get(path, params=params)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["total"])


def test_the_establishment_list_counts_what_the_api_counts(
    service: Service, world: dict[str, Any]
) -> None:
    analyst = world["tokens"]["analyst"]
    with browser(service, "analyst") as client:
        listing = client.get("/ui/establishments")
        assert listing.status_code == 200
        html = listing.text
        before = client.get(f"/ui/establishments/{PITIE}").text
    with service.client(analyst) as api:
        for place in (PITIE, BORDEAUX):
            shown = counts_of(html, place)
            assert int(shown["open"]) == api_total(
                api, "/incidents", establishment=place, status="open"
            )
            for state in ("active", "silent"):
                assert int(shown[state]) == api_total(
                    api, "/agents", establishment=place, status=state
                ), (place, state)
    assert counts_of(html, PITIE) == {"open": "2", "active": "1", "silent": "0"}
    assert counts_of(html, BORDEAUX) == {"open": "2", "active": "0", "silent": "1"}
    assert "(+1 jamais vu)" in html  # Pitié's second agent
    assert html.count("non calculé") == 2
    assert "Données indisponibles" in before
    # The nightly job scores every establishment: the list and the page show the API's score.
    with service.client(world["tokens"]["admin"]) as api:
        assert api.post("/jobs/maturity/run").json()["outcome"] == "ok"
    with service.client(analyst) as api:
        scored = api.get(f"/establishments/{PITIE}/maturity").json()
    with browser(service, "analyst") as client:
        html = client.get("/ui/establishments").text
        page = client.get(f"/ui/establishments/{PITIE}").text
    score = f"{scored['score']:.1f}".replace(".", ",")
    assert counts_of(html, PITIE)["score"] == score
    assert "non calculé" not in html
    assert f'data-maturity="score">{score}<' in page
    assert f"niveau {scored['level']}" in page
    assert "Données indisponibles" not in page
    assert page.count("<li><strong>") == min(5, len(scored["fixes"]))


def test_the_establishment_list_filters_paginates_and_exports(
    service: Service, world: dict[str, Any]
) -> None:
    with service.client(world["tokens"]["admin"]) as api:
        for n in range(53):  # in the Bouches-du-Rhône: Provence-Alpes-Côte d'Azur
            name = {0: EVIL, 1: "=1+1 Clinique"}.get(n, f"Clinique {n:02d}")
            made = api.post(
                "/establishments",
                json={"finess": finess(f"13{n:06d}"), "name": name, "kind": "clinic"},
            )
            assert made.status_code == 201, made.text
    paca = "Provence-Alpes-Côte d'Azur"
    with browser(service, "inspector") as client:
        first = client.get("/ui/establishments")
        assert "55 établissements, 1 à 50 affichés" in first.text
        assert first.text.count("<tr data-finess=") == 50
        second = client.get("/ui/establishments", params={"offset": 50})
        assert second.text.count("<tr data-finess=") == 5
        assert "← précédents" in second.text
        shown = set(re.findall(r'<tr data-finess="(\w+)">', first.text + second.text))
        assert len(shown) == 55
        # What was typed stays text.
        assert '<script>alert("pwn")</script>' not in first.text
        assert "&lt;script&gt;" in first.text
        # Filters: as a form sends them, the empty choice included.
        chus = client.get("/ui/establishments", params={"region": "", "kind": "CHU"})
        assert chus.status_code == 200
        assert set(re.findall(r'<tr data-finess="(\w+)">', chus.text)) == {PITIE, BORDEAUX}
        south = client.get("/ui/establishments", params={"region": paca, "kind": ""})
        assert "53 établissements" in south.text
        assert PITIE not in south.text
        # A FINESS typed opens its page.
        opened = client.get("/ui/establishments", params={"finess": "330 781 196"})
        assert opened.url.path == f"/ui/establishments/{BORDEAUX}"
        # CSV: the list's columns and counts, every row, the same filters.
        export = client.get("/ui/establishments.csv", params={"kind": "CHU"})
        assert export.status_code == 200
        assert export.headers["content-type"].startswith("text/csv")
        lines = export.content.decode("utf-8-sig").splitlines()
        assert lines[0].startswith("finess;nom;type;région;lits;incidents ouverts;agents actifs")
        rows = {line.split(";")[0]: line.split(";") for line in lines[1:]}
        assert set(rows) == {PITIE, BORDEAUX}
        assert rows[PITIE][5:9] == ["2", "1", "0", "1"]  # open, active, silent, never
        assert rows[BORDEAUX][5:8] == ["2", "0", "1"]
        everything = client.get("/ui/establishments.csv").content.decode("utf-8-sig")
        names = [row[1] for row in csv.reader(io.StringIO(everything), delimiter=";")][1:]
        assert len(names) == 55
        assert EVIL in names
        assert "'=1+1 Clinique" in names  # a cell a spreadsheet will not run
        bad = client.get("/ui/establishments", params={"kind": "hospice"})
        assert bad.status_code == 422
        assert "kind" in bad.text


def test_an_establishment_sees_nothing_of_another(service: Service, world: dict[str, Any]) -> None:
    with browser(service, "it_pitie") as client:
        for path in (
            "/ui/establishments",
            "/ui/establishments.csv",
            "/ui/campaigns",
            f"/ui/campaigns/{world['campaign']}",
        ):
            assert client.get(path).status_code == 403, path
        assert client.get(f"/ui/establishments/{BORDEAUX}").status_code == 404
        assert client.get("/ui/establishments/000000000").status_code == 404
        own = client.get(f"/ui/establishments/{PITIE}")
        agents = client.get("/ui/agents")
        asked = client.get(
            "/ui/agents", params={"establishment": BORDEAUX, "region": "Nouvelle-Aquitaine"}
        )
        export = client.get("/ui/agents.csv", params={"establishment": BORDEAUX})
        for answer in (own, agents, asked, export):
            assert answer.status_code == 200, answer.url
            assert BORDEAUX not in answer.text
            assert "Bordeaux" not in answer.text
            assert "srv-bdx-01" not in answer.text
            assert world["campaign"] not in answer.text
        assert "srv-pitie-01" in asked.text  # its own, whatever it asked for
        assert "srv-pitie-01" in export.text
        # Another's agent and token answer as absent ones.
        token = form_token(agents.text)
        other = world[BORDEAUX]["id"]
        assert client.post(f"/ui/agents/{other}/revoke", data={"csrf": token}).status_code == 404
        with service.client(world["tokens"]["admin"]) as api:
            theirs = api.get(f"/establishments/{BORDEAUX}/enrollment-tokens").json()[0]["id"]
        revoke = f"/ui/establishments/{BORDEAUX}/enrollment-tokens/{theirs}/revoke"
        assert client.post(revoke, data={"csrf": token}).status_code == 404
        made = client.post(f"/ui/establishments/{BORDEAUX}/enrollment-tokens", data={"csrf": token})
        assert made.status_code == 404
    with service.client(world["tokens"]["admin"]) as api:
        assert api.get(f"/agents/{other}").json()["revoked"] is False
        tokens = api.get(f"/establishments/{BORDEAUX}/enrollment-tokens").json()
        assert all(t["state"] != "revoked" for t in tokens)
        assert len(tokens) == 1
        denied = api.get("/audit", params={"actor": "it_pitie", "action": "denied"}).json()
    assert {e["target_id"] for e in denied} >= {BORDEAUX, other}


def test_the_agents_page_counts_what_the_api_counts(
    service: Service, world: dict[str, Any]
) -> None:
    with browser(service, "analyst") as client:
        html = client.get("/ui/agents").text
        buckets = {k: int(n) for k, n in re.findall(r'data-bucket="(\w+)">(\d+)<', html)}
        silent = client.get("/ui/agents", params={"state": "silent"}).text
        south_west = client.get("/ui/agents", params={"region": "Nouvelle-Aquitaine", "state": ""})
        export = client.get("/ui/agents.csv", params={"state": "active"})
    with service.client(world["tokens"]["analyst"]) as api:
        for state in ("active", "silent", "never", "revoked"):
            assert buckets[state] == api_total(api, "/agents", status=state), state
        assert buckets["all"] == api_total(api, "/agents")
    assert buckets == {"all": 3, "active": 1, "silent": 1, "never": 1, "revoked": 0}
    # Dropped events stand out; the lag and the sources are there.
    assert 'data-dropped="3"' in html
    assert "syslog-udp-514" in html
    assert "jamais vu" in html
    assert re.findall(r'<tr data-agent="([\w-]+)">', silent) == [world[BORDEAUX]["id"]]
    assert "srv-bdx-01" in south_west.text
    assert "srv-pitie-01" not in south_west.text
    lines = export.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("finess;machine;site;état;version;dernier signe de vie")
    assert len(lines) == 2
    row = lines[1].split(";")
    assert row[:5] == [PITIE, "srv-pitie-01", "", "actif", "0.2.0"]
    assert row[7:10] == ["3", "12", "syslog-udp-514"]


def test_an_establishment_makes_a_token_shown_once_and_revokes(
    service: Service, world: dict[str, Any]
) -> None:
    with browser(service, "it_pitie") as client:
        page = client.get("/ui/agents")
        assert 'id="jetons"' in page.text
        token = form_token(page.text)
        made = client.post(
            f"/ui/establishments/{PITIE}/enrollment-tokens",
            data={
                "csrf": token,
                "label": EVIL,
                "site": "Site B",
                "max_uses": "2",
                "expires_in_days": "3",
            },
        )
        assert made.status_code == 200
        assert made.headers["cache-control"] == "no-store"
        secret = re.search(r'value="(vge_[\w-]+)"', made.text)
        assert secret, made.text
        again = client.get("/ui/agents").text
        assert secret.group(1) not in again  # shown once
        assert secret.group(1)[:8] in again  # its start tells it apart
        assert "&lt;script&gt;" in again
        bad = client.post(
            f"/ui/establishments/{PITIE}/enrollment-tokens", data={"csrf": token, "max_uses": "0"}
        )
        assert bad.status_code == 422
    agent = enrolled(service, secret.group(1), "srv-site-b")  # the token works
    assert agent["site"] == "Site B"
    with service.client(world["tokens"]["it_pitie"]) as api:
        listed = {
            t["prefix"]: t for t in api.get(f"/establishments/{PITIE}/enrollment-tokens").json()
        }
    mine = listed[secret.group(1)[:8]]
    assert (mine["max_uses"], mine["uses"], mine["label"]) == (2, 1, EVIL)
    with browser(service, "it_pitie") as client:
        token = form_token(client.get("/ui/agents").text)
        gone = client.post(
            f"/ui/establishments/{PITIE}/enrollment-tokens/{mine['id']}/revoke",
            data={"csrf": token},
        )
        assert gone.url.path == "/ui/agents"
        out = client.post(f"/ui/agents/{agent['id']}/revoke", data={"csrf": token})
        assert out.url.path == "/ui/agents"
        assert (
            client.get("/ui/agents", params={"state": "revoked"}).text.count("<tr data-agent") == 1
        )
    with service.client(world["tokens"]["it_pitie"]) as api:
        tokens = {t["id"]: t for t in api.get(f"/establishments/{PITIE}/enrollment-tokens").json()}
        assert tokens[mine["id"]]["state"] == "revoked"
        assert api.get(f"/agents/{agent['id']}").json()["revoked"] is True
    with service.client(world["tokens"]["admin"]) as api:
        trail = api.get("/audit", params={"actor": "it_pitie", "kind": "enrollment_token"}).json()
    done = {(e["action"], e["target_id"]) for e in trail}
    assert ("create", mine["id"]) in done
    assert ("update", mine["id"]) in done


def test_the_cert_manages_an_establishments_tokens_from_its_page(
    service: Service, world: dict[str, Any]
) -> None:
    with browser(service, "analyst") as client:
        page = client.get(f"/ui/establishments/{BORDEAUX}")
        assert 'action="/ui/establishments/330781196/enrollment-tokens"' in page.text
        assert f'action="/ui/agents/{world[BORDEAUX]["id"]}/revoke"' in page.text
        made = client.post(
            f"/ui/establishments/{BORDEAUX}/enrollment-tokens", data={"csrf": form_token(page.text)}
        )
        assert made.status_code == 200
        assert f'href="/ui/establishments/{BORDEAUX}#jetons"' in made.text
        out = client.post(
            f"/ui/agents/{world[BORDEAUX]['id']}/revoke", data={"csrf": form_token(page.text)}
        )
        assert out.url.path == f"/ui/establishments/{BORDEAUX}"
        assert "révoqué" in out.text
    with service.client(world["tokens"]["analyst"]) as api:
        assert len(api.get(f"/establishments/{BORDEAUX}/enrollment-tokens").json()) == 2
        assert api.get(f"/agents/{world[BORDEAUX]['id']}").json()["revoked"] is True


def test_an_establishments_page_shows_what_the_api_answers(
    service: Service, world: dict[str, Any]
) -> None:
    analyst = world["tokens"]["analyst"]
    with service.client(analyst) as api:
        alert = api.post(
            "/alerts",
            json={
                "title": "Correctifs VPN",
                "severity": "high",
                "tlp": "amber",
                "indicators": [{"type": "ip", "value": "203.0.113.66"}],
                "target": {"all": True},
                "retro_hunt_days": 0,
            },
        )
        assert alert.status_code == 201, alert.text
        incidents = api.get("/incidents", params={"establishment": PITIE}).json()
        pending = api.get("/alerts", params={"pending_for": PITIE}).json()
    for username in ("analyst", "inspector", "it_pitie"):
        with browser(service, username) as client:
            page = client.get(f"/ui/establishments/{PITIE}").text
        assert "Pitié-Salpêtrière" in page
        assert f"{incidents['total']} incidents" in page
        for item in incidents["items"]:
            assert f'href="/ui/incidents/{item["id"]}"' in page
        assert f'href="/ui/incidents?establishment={PITIE}"' in page
        assert pending["total"] == 1
        assert f'href="/ui/alerts/{alert.json()["id"]}"' in page
        assert "srv-pitie-01" in page
        assert "poste-accueil" in page
        assert (world["campaign"] in page) is False  # the page does not name campaigns
    with browser(service, "it_pitie") as client:
        token = form_token(client.get("/ui/").text)
        client.post(f"/ui/alerts/{alert.json()['id']}/acknowledge", data={"csrf": token})
        assert "Aucune alerte en attente" in client.get(f"/ui/establishments/{PITIE}").text


def test_auditors_read_every_national_page_and_get_no_forms(
    service: Service, world: dict[str, Any]
) -> None:
    with browser(service, "inspector") as client:
        for path, filters in (
            ("/ui/establishments", 2),
            (f"/ui/establishments/{PITIE}", 0),
            ("/ui/agents", 1),
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            parsed = _Scripts()
            parsed.feed(answer.text)
            assert parsed.forms == filters, path
            assert parsed.inline == [], path
            assert parsed.styled == [], path
            assert 'method="post"' not in answer.text.replace('method="post" action="/logout"', "")
        assert client.get("/ui/campaigns").status_code == 403
        assert "/ui/campaigns" not in client.get("/ui/agents").text  # not in the menu
        token = form_token(client.get("/ui/agents").text)
        for url in (
            f"/ui/agents/{world[PITIE]['id']}/revoke",
            f"/ui/establishments/{PITIE}/enrollment-tokens",
            f"/ui/campaigns/{world['campaign']}/status",
        ):
            assert client.post(url, data={"csrf": token, "status": "closed"}).status_code == 403


def test_the_new_forms_refuse_a_request_without_the_csrf_token(
    service: Service, world: dict[str, Any]
) -> None:
    with browser(service, "analyst") as client:
        token = form_token(client.get("/ui/agents").text)
        with service.client(world["tokens"]["admin"]) as api:
            theirs = api.get(f"/establishments/{PITIE}/enrollment-tokens").json()[0]["id"]
        posts = [
            (f"/ui/establishments/{PITIE}/enrollment-tokens", {}),
            (f"/ui/establishments/{PITIE}/enrollment-tokens/{theirs}/revoke", {}),
            (f"/ui/agents/{world[PITIE]['id']}/revoke", {}),
            (f"/ui/campaigns/{world['campaign']}/status", {"status": "closed"}),
        ]
        for url, data in posts:
            assert client.post(url, data=data).status_code == 403, url
            assert client.post(url, data={**data, "csrf": "x" * 43}).status_code == 403, url
            elsewhere = client.post(
                url, data={**data, "csrf": token}, headers={"Origin": "https://evil.example"}
            )
            assert elsewhere.status_code == 403, url
    with service.client(world["tokens"]["admin"]) as api:
        tokens = api.get(f"/establishments/{PITIE}/enrollment-tokens").json()
        assert len(tokens) == 2  # the world's two, none made
        assert all(t["state"] != "revoked" for t in tokens)
        assert api.get(f"/agents/{world[PITIE]['id']}").json()["revoked"] is False
        assert api.get(f"/campaigns/{world['campaign']}").json()["status"] == "open"


def test_the_campaign_pages_show_what_the_api_answers_and_change_its_status(
    service: Service, world: dict[str, Any]
) -> None:
    campaign_id = world["campaign"]
    with service.client(world["tokens"]["analyst"]) as api:
        campaign = api.get(f"/campaigns/{campaign_id}").json()
    with browser(service, "analyst") as client:
        listing = client.get("/ui/campaigns").text
        row = re.search(rf'<tr data-campaign="{campaign_id}">(.*?)</tr>', listing, re.S)
        assert row
        assert f'data-count="establishments">{len(campaign["establishments"])}<' in row.group(1)
        assert "Île-de-France (1)" in row.group(1)
        assert "Nouvelle-Aquitaine (1)" in row.group(1)
        assert MIMIKATZ in row.group(1)
        page = client.get(f"/ui/campaigns/{campaign_id}")
        assert page.status_code == 200
        for incident in campaign["incidents"]:
            assert f'href="/ui/incidents/{incident}"' in page.text
        assert f'data-count="incidents">{len(campaign["incidents"])}<' in page.text
        regions = re.search(r'id="regions-touchees">(.*?)</table>', page.text, re.S)
        assert regions
        assert regions.group(1).count("<tr><td>") == 2
        assert page.text.count("<svg") == 1
        assert f"/ui/incidents?campaign={campaign_id}&amp;region=Nouvelle-Aquitaine" in page.text
        linked = client.get(
            "/ui/incidents", params={"campaign": campaign_id, "region": "Nouvelle-Aquitaine"}
        )
        assert len(re.findall(r'href="/ui/incidents/[0-9a-f-]{36}"', linked.text)) == 1
        closed = client.post(
            f"/ui/campaigns/{campaign_id}/status",
            data={"csrf": form_token(page.text), "status": "closed"},
        )
        assert closed.url.path == f"/ui/campaigns/{campaign_id}"
        assert "Rouvrir la campagne" in closed.text
        bad = client.post(
            f"/ui/campaigns/{campaign_id}/status",
            data={"csrf": form_token(page.text), "status": "perhaps"},
        )
        assert bad.status_code == 422
        assert client.get("/ui/campaigns/no-such-campaign").status_code == 404
    with service.client(world["tokens"]["analyst"]) as api:
        assert api.get(f"/campaigns/{campaign_id}").json()["status"] == "closed"
    with browser(service, "admin", service.admin_password) as client:
        assert client.get(f"/ui/campaigns/{campaign_id}").status_code == 200
