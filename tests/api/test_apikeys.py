"""API keys over real HTTP: created by admins (any human role) and establishments (their own),
shown once, authenticating as `key:<name>` with their role and establishment, revoked or
expired keys refused, creation and revocation audited; migration 0006 matches the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy

from tests.api.conftest import Service
from tests.api.test_service import BORDEAUX, PITIE, setup_world


def create_key(service: Service, bearer: str, **body: Any) -> dict[str, Any]:
    with service.client(bearer) as client:
        answer = client.post("/api-keys", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def me(service: Service, key: str) -> Any:
    with service.client(key) as client:
        return client.get("/auth/me")


def test_admin_keys_for_every_human_role(service: Service) -> None:
    tokens = setup_world(service)
    pitie = create_key(
        service, tokens["admin"], name="pitie-siem", role="establishment", establishment=PITIE
    )
    cert = create_key(service, tokens["admin"], name="cert-soar", role="cert", expires_in_days=30)
    auditor = create_key(service, tokens["admin"], name="ars-reports", role="auditor")
    admin = create_key(service, tokens["admin"], name="provisioning", role="admin")

    assert pitie["key"].startswith("vgk_")
    assert pitie["key"].startswith(pitie["prefix"])
    assert len({k["key"] for k in (pitie, cert, auditor, admin)}) == 4
    assert pitie["establishment"] == PITIE
    assert cert["establishment"] is None
    assert pitie["expires_at"] is None
    expires = datetime.fromisoformat(cert["expires_at"])
    assert timedelta(days=29, hours=23) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert pitie["created_by"] == "admin"
    assert pitie["state"] == "active"
    assert pitie["last_used_at"] is None

    for made, role, establishment in (
        (pitie, "establishment", PITIE),
        (cert, "cert", None),
        (auditor, "auditor", None),
        (admin, "admin", None),
    ):
        who = me(service, made["key"])
        assert who.status_code == 200, who.text
        assert who.json() == {
            "username": f"key:{made['name']}",
            "role": role,
            "establishment": establishment,
            "must_change_password": False,
        }

    # A key has its role's rights, no more: an establishment sees itself only, a CERT key
    # reads everything but creates no users, an auditor's key writes nothing.
    with service.client(pitie["key"]) as client:
        assert [e["finess"] for e in client.get("/establishments").json()["items"]] == [PITIE]
        assert client.get(f"/establishments/{BORDEAUX}").status_code == 404
    with service.client(cert["key"]) as client:
        assert client.get("/establishments").json()["total"] == 2
        user = {"username": "x-user", "password": "Granit-Rose-Ploumanac-h", "role": "cert"}
        assert client.post("/users", json=user).status_code == 403
    with service.client(auditor["key"]) as client:
        assert client.get("/audit").status_code == 200
        assert client.post(f"/establishments/{PITIE}/enrollment-tokens", json={}).status_code == 403
    with service.client(admin["key"]) as client:
        assert client.post("/users", json=user).status_code == 201

    with service.client(tokens["admin"]) as client:
        listed = {k["name"]: k for k in client.get("/api-keys").json()}
    assert set(listed) == {"pitie-siem", "cert-soar", "ars-reports", "provisioning"}
    assert all("key" not in k for k in listed.values())  # shown once, at creation
    assert listed["pitie-siem"]["last_used_at"] is not None


def test_establishments_manage_their_own_keys_only(service: Service) -> None:
    tokens = setup_world(service)
    mine = create_key(service, tokens["it_pitie"], name="pitie-backup", role="establishment")
    assert mine["establishment"] == PITIE  # its own, without saying so
    theirs = create_key(
        service, tokens["admin"], name="bx-siem", role="establishment", establishment=BORDEAUX
    )
    national = create_key(service, tokens["admin"], name="cert-bot", role="cert")

    with service.client(tokens["it_pitie"]) as client:
        other = client.post(
            "/api-keys", json={"name": "sneaky", "role": "establishment", "establishment": BORDEAUX}
        )
        assert other.status_code == 404  # as if Bordeaux did not exist
        assert other.json()["code"] == "not_found"
        higher = client.post("/api-keys", json={"name": "sneaky", "role": "cert"})
        assert higher.status_code == 403
        assert higher.json()["code"] == "forbidden"
        assert [k["id"] for k in client.get("/api-keys").json()] == [mine["id"]]
        assert client.delete(f"/api-keys/{theirs['id']}").status_code == 404
        assert client.delete(f"/api-keys/{national['id']}").status_code == 404
        gone = client.delete(f"/api-keys/{mine['id']}")
        assert gone.status_code == 200, gone.text
        assert gone.json()["state"] == "revoked"
    assert me(service, theirs["key"]).status_code == 200  # untouched
    assert me(service, national["key"]).status_code == 200

    for role in ("analyst", "inspector"):
        with service.client(tokens[role]) as client:
            assert (
                client.post("/api-keys", json={"name": "x-key", "role": "cert"}).status_code == 403
            )
            assert client.get("/api-keys").status_code == 403
            assert client.delete(f"/api-keys/{theirs['id']}").status_code == 403
    with service.client() as client:
        assert client.get("/api-keys").status_code == 401


def test_revoked_expired_and_unknown_keys_are_refused(service: Service) -> None:
    tokens = setup_world(service)
    made = create_key(service, tokens["admin"], name="short-lived", role="cert")
    assert me(service, made["key"]).status_code == 200
    with service.client(tokens["admin"]) as client:
        assert client.delete(f"/api-keys/{made['id']}").json()["revoked_at"] is not None
        again = client.delete(f"/api-keys/{made['id']}")  # revoking again changes nothing
        assert again.status_code == 200
        assert again.json()["state"] == "revoked"
        assert client.delete("/api-keys/00000000-0000-0000-0000-000000000000").status_code == 404
    refused = me(service, made["key"])
    assert refused.status_code == 401
    assert refused.json()["code"] == "api_key_revoked"

    late = create_key(service, tokens["admin"], name="late-key", role="auditor", expires_in_days=1)
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.begin() as connection:
        connection.execute(
            sqlalchemy.text("UPDATE api_keys SET expires_at = :at WHERE id = :id"),
            {"at": datetime.now(UTC) - timedelta(minutes=1), "id": late["id"]},
        )
    engine.dispose()
    expired = me(service, late["key"])
    assert expired.status_code == 401
    assert expired.json()["code"] == "api_key_expired"

    for bad in ("vgk_" + "A" * 43, late["key"][:-1], made["key"] + "x"):
        unknown = me(service, bad)
        assert unknown.status_code == 401
        assert unknown.json()["code"] == "invalid_api_key"
    with service.client(tokens["admin"]) as client:
        states = {k["name"]: k["state"] for k in client.get("/api-keys").json()}
    assert states == {"short-lived": "revoked", "late-key": "expired"}


def test_refused_key_requests(service: Service) -> None:
    tokens = setup_world(service)
    admin_key = create_key(service, tokens["admin"], name="ops-admin", role="admin")
    with service.client(admin_key["key"]) as client:
        # A leaked key must not mint others that would outlive its revocation.
        minted = client.post("/api-keys", json={"name": "minted", "role": "admin"})
        assert minted.status_code == 403
        assert "cannot create API keys" in minted.json()["detail"]
    cases = [
        ({"name": "a-agent", "role": "agent"}, 422, "agents get their keys by enrolling"),
        ({"name": "no-finess", "role": "establishment"}, 422, "needs the FINESS"),
        ({"name": "cert-x", "role": "cert", "establishment": PITIE}, 422, "takes no establishment"),
        ({"name": "ops-admin", "role": "admin"}, 409, "already exists"),
        ({"name": "bad finess", "role": "cert"}, 422, None),  # not a valid name
        ({"name": "unknown", "role": "establishment", "establishment": "123"}, 404, None),
        ({"name": "forever", "role": "cert", "expires_in_days": 0}, 422, None),
    ]
    with service.client(tokens["admin"]) as client:
        for body, status, said in cases:
            answer = client.post("/api-keys", json=body)
            assert answer.status_code == status, (body, answer.text)
            if said:
                assert said in answer.json()["detail"], answer.text
        assert [k["name"] for k in client.get("/api-keys").json()] == ["ops-admin"]


def test_key_lifecycle_and_key_actions_are_audited(service: Service) -> None:
    tokens = setup_world(service)
    made = create_key(service, tokens["it_pitie"], name="pitie-deploy", role="establishment")
    with service.client(made["key"]) as client:
        token = client.post(f"/establishments/{PITIE}/enrollment-tokens", json={})
        assert token.status_code == 201, token.text
    with service.client(tokens["it_pitie"]) as client:
        assert client.delete(f"/api-keys/{made['id']}").status_code == 200
    with service.client(tokens["inspector"]) as client:
        entries = client.get("/audit").json()
    seen = {(e["actor"], e["role"], e["action"], e["target_kind"], e["target_id"]) for e in entries}
    assert ("it_pitie", "establishment", "create", "api_key", made["id"]) in seen
    assert ("it_pitie", "establishment", "delete", "api_key", made["id"]) in seen
    token_id = token.json()["id"]
    assert ("key:pitie-deploy", "establishment", "create", "enrollment_token", token_id) in seen


def test_migration_0006_matches_the_models(service: Service) -> None:
    """What 0006 created is what the models describe (Alembic finds nothing to add or change)."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from api.db import Base
    from api.models import load_all

    load_all()
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    tables = ("api_keys", "job_locks", "job_runs", "notifications")
    ours = [d for d in differences if any(t in repr(d) for t in tables)]
    assert not ours, ours
