"""The dashboard's forms over real HTTP: declaring an incident, the maturity score, the
questionnaire and the profile, publishing and withdrawing alerts. What a form writes is read
back through the JSON API, which must answer the same; what a page shows is compared with
what the API answers to the same person."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from html import unescape
from typing import Any

import httpx
import pytest

from api.agents.models import as_utc
from api.maturity.framework import default
from api.web.render import number
from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, PITIE, setup_world
from tests.web.test_pages import _Scripts, browser, form_token


@pytest.fixture
def tokens(service: Service) -> dict[str, str]:
    return setup_world(service)


def moment(text: str) -> datetime:
    """A time the API answered (SQLite's come back without their zone: UTC)."""
    return as_utc(datetime.fromisoformat(text))


def audit_trail(service: Service, actor: str) -> list[dict[str, Any]]:
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as api:
        answer = api.get("/audit", params={"actor": actor, "limit": 1000})
    assert answer.status_code == 200, answer.text
    return list(answer.json())


def post_forms(html: str) -> list[str]:
    """The actions of a page's POST forms, the header's logout form left out."""
    actions = re.findall(r'<form method="post" action="([^"]+)"', html)
    return [a for a in actions if a != "/logout"]


def declaration(**changes: str) -> dict[str, str]:
    fields = {
        "title": "Messagerie compromise <urgent>",
        "category": "phishing",
        "severity": "high",
        "care_impact": "degraded",
        "personal_data": "oui",
        "aware_at": "2026-07-14T10:30",
        "started_at": "2026-07-14T09:05",
        "affected_systems": "messagerie\n\nPACS-01\nmessagerie\n",
        "description": "Des courriels d'hameçonnage\nenvoyés depuis deux boîtes.",
        "notifiable": "on",
    }
    fields.update(changes)
    return {k: v for k, v in fields.items() if v != "-"}


def declare(client: httpx.Client, **changes: str) -> httpx.Response:
    token = form_token(client.get("/ui/incidents/new").text)
    return client.post("/ui/incidents/new", data={**declaration(**changes), "csrf": token})


# --- declaring an incident ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "utc"),
    [
        ("2026-07-14T10:30", datetime(2026, 7, 14, 8, 30, tzinfo=UTC)),  # summer time: UTC+2
        ("2026-01-15T10:30", datetime(2026, 1, 15, 9, 30, tzinfo=UTC)),  # winter time: UTC+1
        ("2026-10-25T02:30", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # repeated: the first
    ],
)
def test_a_declared_incident_is_the_apis_with_paris_times_in_utc(
    service: Service, tokens: dict[str, str], typed: str, utc: datetime
) -> None:
    with browser(service, "it_pitie") as client:
        listing = client.get("/ui/incidents").text
        assert 'href="/ui/incidents/new"' in listing
        done = declare(client, aware_at=typed, started_at="-")
        assert done.status_code == 200, done.text
        found = re.fullmatch(r"/ui/incidents/([0-9a-f-]{36})", done.url.path)
        assert found, done.url
        assert "Messagerie compromise &lt;urgent&gt;" in done.text
    incident_id = found.group(1)
    with service.client(tokens["it_pitie"]) as api:
        read = api.get(f"/incidents/{incident_id}").json()
    assert read["establishment"] == PITIE
    assert read["origin"] == "declared"
    assert read["created_by"] == "it_pitie"
    assert read["title"] == "Messagerie compromise <urgent>"
    assert (read["category"], read["severity"]) == ("phishing", "high")
    assert (read["care_impact"], read["personal_data"]) == ("degraded", True)
    assert moment(read["aware_at"]) == utc
    assert read["started_at"] is None
    assert read["affected_systems"] == ["messagerie", "PACS-01"]
    assert read["description"] == "Des courriels d'hameçonnage\nenvoyés depuis deux boîtes."
    assert read["notifiable"] is True
    assert [d["kind"] for d in read["deadlines"]] == ["early_warning", "notification",
                                                       "final_report"]  # fmt: skip
    trail = audit_trail(service, "it_pitie")
    assert ("create", "incident", incident_id) in {
        (e["action"], e["target_kind"], e["target_id"]) for e in trail
    }


def test_the_cert_declares_for_any_establishment(service: Service, tokens: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        form = client.get("/ui/incidents/new").text
        assert 'name="establishment"' in form  # national roles say for whom
        done = declare(client, establishment=BORDEAUX, notifiable="-", personal_data="non",
                       started_at="2026-01-15T08:00", aware_at="2026-01-15T10:30")  # fmt: skip
        assert done.status_code == 200, done.text
        incident_id = done.url.path.rsplit("/", 1)[1]
        unknown = declare(client, establishment="2A0000000")
        assert unknown.status_code == 422
        assert "Aucun établissement suivi n&#39;a le FINESS « 2A0000000 »" in unknown.text
    with service.client(tokens["analyst"]) as api:
        read = api.get(f"/incidents/{incident_id}").json()
    assert read["establishment"] == BORDEAUX
    assert read["notifiable"] is False
    assert read["personal_data"] is False
    assert moment(read["started_at"]) == datetime(2026, 1, 15, 7, 0, tzinfo=UTC)
    assert moment(read["aware_at"]) == datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def test_a_refused_declaration_comes_back_filled_in_french(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "it_pitie") as client:
        bad = declare(client, title="ab", personal_data="-", category="-", aware_at="demain")
        assert bad.status_code == 422
        assert "Rien n'a été enregistré" in bad.text
        assert "Titre : au moins 3 caractère(s)" in bad.text
        assert "Données personnelles : à remplir" in bad.text
        assert "Catégorie : à remplir" in bad.text
        assert "Prise de connaissance : date et heure attendues" in bad.text
        assert "Prise de connaissance : à remplir" not in bad.text  # said once
        assert 'value="ab"' in bad.text  # the form comes back as typed
        assert "PACS-01" in bad.text
        future = declare(client, aware_at="2027-03-01T10:00", started_at="-")
        assert future.status_code == 422
        assert "Prise de connaissance : cette heure est dans le futur." in future.text
        after = declare(client, started_at="2026-07-14T11:00")
        assert after.status_code == 422
        assert "Début : il précède forcément la prise de connaissance" in after.text
        skipped = declare(client, aware_at="2026-03-29T02:30", started_at="-")
        assert skipped.status_code == 422
        assert "02:30 n&#39;existe pas ce jour-là à Paris" in skipped.text
        nul = declare(client, title="titre \x00 nul")
        assert nul.status_code == 422
        assert "Titre : caractère NUL" in nul.text
    with service.client(tokens["it_pitie"]) as api:
        assert api.get("/incidents").json()["total"] == 0  # nothing was declared


def test_an_establishment_cannot_declare_for_another(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "it_pitie") as client:
        assert 'name="establishment"' not in client.get("/ui/incidents/new").text
        forged = declare(client, establishment=BORDEAUX)
        assert forged.status_code == 404  # another's answers as an absent one
    with service.client(tokens["analyst"]) as api:
        assert api.get("/incidents", params={"establishment": BORDEAUX}).json()["total"] == 0
        assert api.get("/incidents").json()["total"] == 0
    denied = [e for e in audit_trail(service, "it_pitie") if e["action"] == "denied"]
    assert [(e["target_kind"], e["target_id"]) for e in denied] == [("establishment", BORDEAUX)]


# --- the maturity score -------------------------------------------------------------------------


def run_maturity(service: Service, tokens: dict[str, str], now: str | None = None) -> None:
    with service.client(tokens["admin"]) as api:
        done = api.post("/jobs/maturity/run", params={"now": now} if now else None)
    assert done.status_code == 200, done.text
    assert done.json()["outcome"] == "ok", done.json()


def fixes_shown(html: str) -> list[tuple[str, str]]:
    """(control, gain) of each row of the fixes table, in its order."""
    table = html.split('id="t-corrections"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<a href="#m-([A-Z]+-\d+)">.*?<td class="n">\+([^<]+)</td>', table, re.S)
    return [(control, unescape(gain)) for control, gain in rows]


def test_the_maturity_page_shows_the_apis_snapshot(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "it_pitie") as client:
        empty = client.get("/ui/maturity")
        assert empty.status_code == 200
        assert '<p class="unavailable">Données indisponibles' in empty.text
    run_maturity(service, tokens, "2026-11-20T10:00:00Z")
    run_maturity(service, tokens)
    with service.client(tokens["it_pitie"]) as api:
        doc = api.get(f"/establishments/{PITIE}/maturity").json()
        history = api.get(f"/establishments/{PITIE}/maturity/history").json()
    assert len(history) == 2
    with browser(service, "it_pitie") as client:
        html = client.get("/ui/maturity").text
        assert client.get(f"/ui/maturity/{PITIE}").status_code == 200
        assert client.get(f"/ui/maturity/{BORDEAUX}").status_code == 404
    assert f'<span class="big">{number(doc["score"])}</span> / 100' in html
    assert f'<span class="big">{doc["level"]}</span> / 5 · {doc["level_name"]}' in html
    assert f"{round(doc['coverage'] * 100)} % du poids" in html
    assert f"{round(doc['proof_ratio'] * 100)} % du poids" in html
    percentile = doc["percentile"]
    assert percentile["value"] is None  # two establishments: no peers to rank among
    assert f"pas de rang : {percentile['label']}" in html
    assert fixes_shown(html) == [(f["control"], number(f["gain"])) for f in doc["fixes"]]
    assert len(doc["fixes"]) > 3
    for control in doc["controls"]:
        row = html.split(f'<tr id="m-{control["id"]}">', 1)[1].split("</tr>", 1)[0]
        assert f'class="status st-{control["status"]}"' in row
        assert f"{round(control['score'] * 100)} %" in row
        assert unescape(row).count(control["explanation"]) == 1, control["id"]
    for domain in doc["domains"]:
        if domain["score"] is not None:
            assert f'<meter class="bar" min="0" max="100" low="50" high="75" optimum="100" ' \
                   f'value="{domain["score"]}"' in html  # fmt: skip
    block = re.search(r'<script type="application/json" id="serie-maturite">(.*?)</script>',
                      html, re.S)  # fmt: skip
    assert block
    chart = json.loads(block.group(1))
    assert chart["series"][0]["values"] == [p["score"] for p in history]
    assert len(chart["x"]) == 2
    assert chart["x"][0] < chart["x"][1]
    assert "Bordeaux" not in html
    assert BORDEAUX not in html
    # The CERT reads the same page for any establishment; an auditor too, without forms.
    with browser(service, "analyst") as client:
        pick = client.get("/ui/maturity")
        assert 'name="finess"' in pick.text
        theirs = client.get("/ui/maturity", params={"finess": PITIE})
        assert theirs.url.path == f"/ui/maturity/{PITIE}"
        assert fixes_shown(theirs.text) == fixes_shown(html)
    with browser(service, "inspector") as client:
        page = client.get(f"/ui/maturity/{PITIE}")
        assert page.status_code == 200
        assert post_forms(page.text) == []
    reads = {(e["action"], e["target_kind"], e["target_id"], e["detail"])
             for e in audit_trail(service, "it_pitie")}  # fmt: skip
    assert ("read", "maturity", PITIE, f"snapshot {doc['snapshot']}") in reads
    assert ("read", "maturity_history", PITIE, None) in reads


# --- the questionnaire and the profile ---------------------------------------------------------


def asked(kind: str) -> str:
    """A control the questionnaire asks, answered with `kind` (scale, date, number)."""
    return next(
        c.id
        for c in default().controls
        if c.evidence.question is not None and c.evidence.question.type == kind
    )


def answer(client: httpx.Client, control: str, **fields: str) -> httpx.Response:
    token = form_token(client.get("/ui/maturity/questionnaire").text)
    return client.post(f"/ui/maturity/questionnaire/{control}", data={**fields, "csrf": token})


def test_answers_through_the_form_are_the_apis_and_audited(
    service: Service, tokens: dict[str, str]
) -> None:
    scale, when, count = asked("scale"), asked("date"), asked("number")
    with browser(service, "it_pitie") as client:
        page = client.get("/ui/maturity/questionnaire")
        assert page.status_code == 200
        questions = [c for c in default().controls if c.evidence.kind in ("questionnaire", "both")]
        for control in questions:
            assert f'action="/ui/maturity/questionnaire/{control.id}"' in page.text
        assert 'action="/ui/maturity/questionnaire/EXP-01"' not in page.text  # automatic only
        done = answer(client, scale, choice="largement", comment="procédure écrite, à diffuser")
        assert done.status_code == 200
        assert done.url.path == "/ui/maturity/questionnaire"
        assert "Réponse enregistrée." in done.text
        assert answer(client, scale, choice="oui").status_code == 200
        assert answer(client, when, date="2026-09-30").status_code == 200
        assert answer(client, count, number="7,5").status_code == 200  # a French decimal comma
        bad = answer(client, scale, choice="peut-être")
        assert bad.status_code == 422
        assert "Choisissez une réponse de l&#39;échelle." in bad.text
        future = answer(client, when, date="2999-01-01")
        assert future.status_code == 422
        assert "La date ne peut pas être dans le futur." in future.text
        assert 'value="2999-01-01"' in future.text  # the form comes back as typed
        empty = answer(client, count, number="")
        assert empty.status_code == 422
        assert "Valeur : à remplir." in empty.text
        shown = client.get("/ui/maturity/questionnaire").text
    section = shown.split(f'id="c-{scale}"', 1)[1].split("</article>", 1)[0]
    assert "Historique des réponses (2)" in section
    assert "procédure écrite, à diffuser" in section
    base = f"/establishments/{PITIE}/maturity/answers"
    with service.client(tokens["it_pitie"]) as api:
        scale_answers = api.get(f"{base}/{scale}").json()
        date_answers = api.get(f"{base}/{when}").json()
        number_answers = api.get(f"{base}/{count}").json()
    assert [a["value"] for a in scale_answers] == [{"choice": "largement"}, {"choice": "oui"}]
    assert scale_answers[0]["comment"] == "procédure écrite, à diffuser"
    assert {a["declared_by"] for a in scale_answers} == {"it_pitie"}
    assert [a["value"] for a in date_answers] == [{"date": "2026-09-30"}]
    assert [a["value"] for a in number_answers] == [{"number": 7.5}]
    trail = {(e["action"], e["target_kind"], e["target_id"], e["detail"])
             for e in audit_trail(service, "it_pitie")}  # fmt: skip
    assert ("answer", "maturity_answer", PITIE, f"{scale} {{'choice': 'oui'}} proof None") in trail
    assert ("answer", "maturity_answer", PITIE, f"{count} {{'number': 7.5}} proof None") in trail
    assert any(a == "read" and k == "maturity_answer" and t == PITIE and scale in (d or "")
               for a, k, t, d in trail)  # fmt: skip


def test_an_establishment_answers_only_for_itself(service: Service, tokens: dict[str, str]) -> None:
    scale = asked("scale")
    with browser(service, "it_pitie") as client:
        assert answer(client, scale, choice="oui").status_code == 200
        token = form_token(client.get("/ui/maturity/questionnaire").text)
        # No form names another establishment: the path has none, a forged field is ignored.
        forged = client.post(f"/ui/maturity/questionnaire/{scale}",
                             data={"choice": "non", "finess": BORDEAUX, "csrf": token})  # fmt: skip
        assert forged.status_code == 200
    with browser(service, "analyst") as client:
        token = form_token(client.get("/ui/incidents").text)
        assert client.get("/ui/maturity/questionnaire").status_code == 403
        refused = client.post(f"/ui/maturity/questionnaire/{scale}",
                              data={"choice": "oui", "csrf": token})  # fmt: skip
        assert refused.status_code == 403
    with service.client(tokens["admin"]) as api:
        theirs = api.get(f"/establishments/{BORDEAUX}/maturity/answers/{scale}").json()
        mine = api.get(f"/establishments/{PITIE}/maturity/answers/{scale}").json()
    assert theirs == []
    assert [a["value"]["choice"] for a in mine] == ["oui", "non"]


def test_the_profile_form_declares_what_the_api_reads(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "it_pitie") as client:
        page = client.get("/ui/maturity/profile")
        assert page.status_code == 200
        assert "Aucune déclaration" in page.text
        fields = {
            "flag-has_dicom": "oui",
            "flag-has_hl7": "non",
            "flag-ght_member": "",
            "expected_sources": ["network", "windows"],
            "sites": "Pitié\nSalpêtrière\n",
            "server_hosts": "10.1.0.10\n",
            "admin_hosts": "",
            "resolvers": "10.1.0.53",
        }
        token = form_token(page.text)
        missing = client.post("/ui/maturity/profile", data={**fields, "reason": "", "csrf": token})
        assert missing.status_code == 422
        assert "Motif : au moins 3 caractère(s)" in missing.text
        assert "Salpêtrière" in missing.text  # filled again as typed
        done = client.post(
            "/ui/maturity/profile", data={**fields, "reason": "inventaire 2026", "csrf": token}
        )
        assert done.status_code == 200
        assert "Profil enregistré." in done.text
    with service.client(tokens["it_pitie"]) as api:
        (declared,) = api.get(f"/establishments/{PITIE}/maturity/profile").json()
    assert declared["flags"] == {"has_dicom": True, "has_hl7": False}
    assert declared["expected_sources"] == ["network", "windows"]
    assert declared["sites"] == ["Pitié", "Salpêtrière"]
    assert declared["server_hosts"] == ["10.1.0.10"]
    assert declared["resolvers"] == ["10.1.0.53"]
    assert declared["reason"] == "inventaire 2026"
    trail = [e for e in audit_trail(service, "it_pitie") if e["action"] == "declare"]
    assert len(trail) == 1
    assert trail[0]["target_kind"] == "maturity_profile"
    assert "(reason: inventaire 2026)" in trail[0]["detail"]


# --- the CERT's alerts --------------------------------------------------------------------------

SHA256 = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"


def alert_form(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "title": "Vague d'hameçonnage <Qakbot>",
        "description": "Courriels piégés visant les services RH.",
        "severity": "critical",
        "tlp": "amber+strict",
        "indicators": f"ip 203.0.113.7\n\ndomain Mal.Example.test.\nsha256 {SHA256}\n",
        "cves": "cve-2024-3400",
        "products": "Palo Alto PAN-OS",
        "target": "some",
        "regions": ["Île-de-France"],
        "kinds": ["CHU"],
        "retro_hunt_days": "2",
    }
    fields.update(changes)
    return fields


def test_an_alert_published_with_the_form_is_the_apis_and_is_withdrawn(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "analyst") as client:
        assert 'href="/ui/alerts/new"' in client.get("/ui/alerts").text
        token = form_token(client.get("/ui/alerts/new").text)
        done = client.post("/ui/alerts/new", data={**alert_form(), "csrf": token})
        assert done.status_code == 200, done.text
        found = re.fullmatch(r"/ui/alerts/([0-9a-f-]{36})", done.url.path)
        assert found, done.url
        alert_id = found.group(1)
        assert f'action="/ui/alerts/{alert_id}/withdraw"' in done.text
    with service.client(tokens["analyst"]) as api:
        listed = {a["id"]: a for a in api.get("/alerts").json()["items"]}
        hunt = api.get(f"/alerts/{alert_id}/retro-hunt").json()
    read = listed[alert_id]
    assert read["title"] == "Vague d'hameçonnage <Qakbot>"
    assert (read["severity"], read["tlp"], read["status"]) == ("critical", "amber+strict",
                                                               "published")  # fmt: skip
    assert read["indicators"] == [
        {"type": "ip", "value": "203.0.113.7"},
        {"type": "domain", "value": "mal.example.test"},
        {"type": "sha256", "value": SHA256.lower()},
    ]
    assert read["cves"] == ["CVE-2024-3400"]
    assert read["target"] == {"all": False, "regions": ["Île-de-France"], "kinds": ["CHU"]}
    assert hunt["status"] != "none"  # the retro-hunt was scheduled, as by POST /alerts
    with browser(service, "it_pitie") as client:  # Pitié is a CHU in Île-de-France
        assert alert_id in client.get("/ui/alerts").text
        page = client.get(f"/ui/alerts/{alert_id}").text
        assert "/withdraw" not in page
    with browser(service, "analyst") as client:
        token = form_token(client.get(f"/ui/alerts/{alert_id}").text)
        gone = client.post(f"/ui/alerts/{alert_id}/withdraw", data={"csrf": token})
        assert gone.status_code == 200
        assert gone.url.path == f"/ui/alerts/{alert_id}"
        assert "retirée" in gone.text
        assert "/withdraw" not in gone.text
    with service.client(tokens["analyst"]) as api:
        assert api.get(f"/alerts/{alert_id}").json()["status"] == "withdrawn"
    trail = [(e["action"], e["target_id"]) for e in audit_trail(service, "analyst")
             if e["target_kind"] == "alert"]  # fmt: skip
    assert ("create", alert_id) in trail
    assert ("update", alert_id) in trail


def test_a_refused_alert_comes_back_filled_in_french(
    service: Service, tokens: dict[str, str]
) -> None:
    with browser(service, "analyst") as client:
        token = form_token(client.get("/ui/alerts/new").text)
        bad = client.post(
            "/ui/alerts/new",
            data={**alert_form(indicators="ip 203.0.113.7\nip 999.1.1.1\nhash abc",
                               cves="CVE-24", regions=[], kinds=[], title="x"),
                  "csrf": token},
        )  # fmt: skip
        assert bad.status_code == 422
        assert "Indicateurs, ligne 2 : « 999.1.1.1 » n&#39;est pas une adresse IP." in bad.text
        assert "Indicateurs, ligne 3 : « type valeur »" in bad.text
        assert "CVE : « CVE-24 » n&#39;est pas un identifiant" in bad.text
        assert "Destinataires : tous les établissements, ou au moins une région" in bad.text
        assert "ip 999.1.1.1" in bad.text  # the indicators come back as typed
        assert "Titre : au moins 3 caractère(s)" in bad.text  # every reason at once
    with service.client(tokens["analyst"]) as api:
        assert api.get("/alerts").json()["total"] == 0


# --- who gets which form ------------------------------------------------------------------------


def test_auditors_get_no_forms_and_cannot_post(service: Service, tokens: dict[str, str]) -> None:
    with service.client(tokens["analyst"]) as api:
        alert_id = api.post(
            "/alerts",
            json={"title": "Test", "severity": "low", "tlp": "clear", "retro_hunt_days": 0,
                  "target": {"all": True}},
        ).json()["id"]  # fmt: skip
    run_maturity(service, tokens)
    with browser(service, "inspector") as client:
        for path in ("/ui/incidents/new", "/ui/alerts/new", "/ui/maturity/questionnaire",
                     "/ui/maturity/profile"):  # fmt: skip
            assert client.get(path).status_code == 403, path
        for path in (f"/ui/maturity/{PITIE}", f"/ui/alerts/{alert_id}", "/ui/incidents",
                     "/ui/alerts", "/ui/maturity"):  # fmt: skip
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert post_forms(answer.text) == [], path
            parsed = _Scripts()
            parsed.feed(answer.text)
            assert parsed.inline == [], path
            assert parsed.styled == [], path
        assert "/ui/incidents/new" not in client.get("/ui/incidents").text
        assert "/ui/alerts/new" not in client.get("/ui/alerts").text
        token = form_token(client.get("/ui/incidents").text)
        for path, data in (
            ("/ui/incidents/new", declaration()),
            ("/ui/alerts/new", alert_form()),
            (f"/ui/alerts/{alert_id}/withdraw", {}),
            (f"/ui/maturity/questionnaire/{asked('scale')}", {"choice": "oui"}),
            ("/ui/maturity/profile", {"reason": "audit"}),
        ):
            assert client.post(path, data={**data, "csrf": token}).status_code == 403, path
    with browser(service, "it_pitie") as client:
        token = form_token(client.get("/ui/incidents").text)
        assert client.get("/ui/alerts/new").status_code == 403
        assert client.post(f"/ui/alerts/{alert_id}/withdraw",
                           data={"csrf": token}).status_code == 403  # fmt: skip
    with service.client(tokens["analyst"]) as api:
        assert api.get(f"/alerts/{alert_id}").json()["status"] == "published"
        assert api.get("/incidents").json()["total"] == 0


def test_forms_without_the_csrf_token_are_refused(service: Service, tokens: dict[str, str]) -> None:
    scale = asked("scale")
    with browser(service, "it_pitie") as client:
        token = form_token(client.get("/ui/incidents/new").text)
        for path, data in (
            ("/ui/incidents/new", declaration()),
            (f"/ui/maturity/questionnaire/{scale}", {"choice": "oui"}),
            ("/ui/maturity/profile", {"reason": "sans jeton"}),
        ):
            assert client.post(path, data=data).status_code == 403, path
            assert client.post(path, data={**data, "csrf": "x" * 43}).status_code == 403, path
            elsewhere = client.post(path, data={**data, "csrf": token},
                                    headers={"Origin": "https://evil.example"})  # fmt: skip
            assert elsewhere.status_code == 403, path
    with browser(service, "analyst") as client:
        token = form_token(client.get("/ui/alerts/new").text)
        assert client.post("/ui/alerts/new", data=alert_form()).status_code == 403
        other_site = client.post("/ui/alerts/new", data={**alert_form(), "csrf": token},
                                 headers={"Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert other_site.status_code == 403
    with service.client(tokens["admin"]) as api:
        assert api.get("/incidents").json()["total"] == 0
        assert api.get("/alerts").json()["total"] == 0
        assert api.get(f"/establishments/{PITIE}/maturity/answers/{scale}").json() == []
        assert api.get(f"/establishments/{PITIE}/maturity/profile").json() == []


def test_national_pages_need_a_known_finess(service: Service, tokens: dict[str, str]) -> None:
    with browser(service, "analyst") as client:
        assert client.get("/ui/maturity/000000000").status_code == 404
        assert client.get("/ui/maturity/12").status_code == 422
