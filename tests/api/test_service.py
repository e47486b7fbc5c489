"""The national service over real HTTP: start, roles in OpenAPI, registry, access, audit."""

from __future__ import annotations

import pytest

from tests.api.conftest import Service

PITIE = "750100125"  # Pitié-Salpêtrière (AP-HP), FINESS géographique
BORDEAUX = "330781196"  # CHU de Bordeaux
CORTE = "2B0004246"  # CH de Corte
PASSWORD = "correct horse battery"


def setup_world(service: Service) -> dict[str, str]:
    """Two establishments and one user per role; returns a token per role."""
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as client:
        for finess, name, kind in (
            (PITIE, "Pitié-Salpêtrière", "CHU"),
            (BORDEAUX, "CHU de Bordeaux", "CHU"),
        ):
            answer = client.post(
                "/establishments", json={"finess": finess, "name": name, "kind": kind}
            )
            assert answer.status_code == 201, answer.text
        users = {
            "it_pitie": {"role": "establishment", "establishment": PITIE},
            "analyst": {"role": "cert"},
            "inspector": {"role": "auditor"},
        }
        for username, extra in users.items():
            answer = client.post(
                "/users", json={"username": username, "password": PASSWORD, **extra}
            )
            assert answer.status_code == 201, answer.text
    tokens = {name: service.login(name, PASSWORD) for name in users}
    tokens["admin"] = admin
    return tokens


def test_first_start_and_openapi_roles(service: Service) -> None:
    assert service.admin_password
    with service.client() as client:
        assert client.get("/health").json() == {"status": "ok"}
        spec = client.get("/openapi.json").json()
    operations = [
        (path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()
    ]
    assert len(operations) >= 8
    for path, method, op in operations:
        assert op.get("x-roles"), f"{method.upper()} {path} does not say who may call it"


def test_login_refuses_bad_credentials(service: Service) -> None:
    with service.client() as client:
        bad = client.post("/auth/token", json={"username": "admin", "password": "nope"})
        assert bad.status_code == 401
        assert bad.json()["code"] == "unauthorized"
        assert client.get("/establishments").status_code == 401
    with service.client("not-a-token") as client:
        assert client.get("/establishments").status_code == 401


def test_registry_validates_finess_and_derives_region(service: Service) -> None:
    admin = service.login("admin", service.admin_password)
    with service.client(admin) as client:
        made = client.post(
            "/establishments", json={"finess": "2b 000 4246", "name": "CH de Corte", "kind": "CH"}
        )
        assert made.status_code == 201, made.text
        assert made.json()["finess"] == CORTE
        assert made.json()["region"] == "Corse"
        again = client.post("/establishments", json={"finess": CORTE, "name": "x y", "kind": "CH"})
        assert again.status_code == 409
        typo = client.post(
            "/establishments", json={"finess": "750100126", "name": "Typo", "kind": "CH"}
        )
        assert typo.status_code == 422
        assert typo.json()["code"] == "invalid"
        assert "check key" in typo.json()["detail"]
        ghost = client.post(
            "/users",
            json={
                "username": "it_ghost",
                "password": PASSWORD,
                "role": "establishment",
                "establishment": "690000000",
            },
        )
        assert ghost.status_code == 422
        assert "no establishment" in ghost.json()["detail"]
        renamed = client.patch(f"/establishments/{CORTE}", json={"beds": 120})
        assert renamed.json()["beds"] == 120
        # The legal status the statistics are cut by: absent until said, then kept.
        assert renamed.json()["legal_status"] is None
        public = client.patch(f"/establishments/{CORTE}", json={"legal_status": "public"})
        assert public.json()["legal_status"] == "public"
        assert client.get(f"/establishments/{CORTE}").json()["legal_status"] == "public"
        wrong = client.patch(f"/establishments/{CORTE}", json={"legal_status": "mutualiste"})
        assert wrong.status_code == 422
        assert "private_nonprofit" in wrong.text


# (method, path, body) x role -> expected status; "own"/"other" paths for establishment data.
MATRIX = [
    (
        "GET",
        "/establishments",
        None,
        {"it_pitie": 200, "analyst": 200, "inspector": 200, "admin": 200},
    ),
    (
        "GET",
        f"/establishments/{PITIE}",
        None,
        {"it_pitie": 200, "analyst": 200, "inspector": 200, "admin": 200},
    ),
    (
        "GET",
        f"/establishments/{BORDEAUX}",
        None,
        {"it_pitie": 404, "analyst": 200, "inspector": 200, "admin": 200},
    ),
    (
        "PATCH",
        f"/establishments/{PITIE}",
        {"beds": 1700},
        {"it_pitie": 403, "analyst": 200, "inspector": 403, "admin": 200},
    ),
    (
        "PATCH",
        f"/establishments/{BORDEAUX}",
        {"beds": 3000},
        {"it_pitie": 403, "analyst": 200, "inspector": 403, "admin": 200},
    ),
    (
        "POST",
        "/establishments",
        {"finess": CORTE, "name": "CH de Corte", "kind": "CH"},
        {"it_pitie": 403, "inspector": 403},
    ),
    (
        "POST",
        "/users",
        {"username": "x_user", "password": PASSWORD, "role": "cert"},
        {"it_pitie": 403, "analyst": 403, "inspector": 403},
    ),
    ("GET", "/audit", None, {"it_pitie": 403, "analyst": 403, "inspector": 200, "admin": 200}),
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_access_matrix(service: Service) -> None:
    tokens = setup_world(service)
    failures = []
    for method, path, body, expected in MATRIX:
        for role, status in expected.items():
            with service.client(tokens[role]) as client:
                answer = client.request(method, path, json=body)
            if answer.status_code != status:
                failures.append(f"{role} {method} {path}: {answer.status_code}, expected {status}")
    assert not failures, "\n".join(failures)
    # An establishment's listing holds itself only.
    with service.client(tokens["it_pitie"]) as client:
        listing = client.get("/establishments").json()
    assert [e["finess"] for e in listing["items"]] == [PITIE]


def test_human_reads_and_writes_are_audited(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        assert client.get(f"/establishments/{PITIE}").status_code == 200
    with service.client(tokens["inspector"]) as client:
        entries = client.get("/audit").json()
    reads = [e for e in entries if e["actor"] == "it_pitie" and e["action"] == "read"]
    assert reads
    assert reads[0]["target_id"] == PITIE
    assert reads[0]["client"] == "127.0.0.1"
    creates = {e["target_id"] for e in entries if e["action"] == "create"}
    assert {PITIE, BORDEAUX} <= creates
