"""Scheduled jobs over real HTTP: the admin's view, run-now, the database lock between
processes (SQLite file and PostgreSQL), silent agents notified once per silence and seen by
their establishment and the CERT only, the retention purge of the SQLite event store."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy

from api.app import create_app
from api.db import make_engine, session_factory, transaction
from api.events.sqlite_store import SQLiteEventStore
from api.jobs import lock
from api.jobs import service as job_service
from api.jobs.scheduler import jobs_of, start, stop
from api.settings import Settings
from tests.api.conftest import Service
from tests.api.test_agents import enrolled, new_token
from tests.api.test_apikeys import create_key
from tests.api.test_incidents import form
from tests.api.test_ingest import post
from tests.api.test_service import BORDEAUX, PASSWORD, PITIE, setup_world

REPO = Path(__file__).resolve().parents[2]
JOBS = {"nis2_deadlines", "agent_silent", "agent_dropped", "maturity", "retention_purge",
        "report_maturity", "report_stats"}  # fmt: skip


def run_job(service: Service, bearer: str, name: str, **params: str) -> dict[str, Any]:
    with service.client(bearer) as client:
        answer = client.post(f"/jobs/{name}/run", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def execute(service: Service, statement: str, **values: Any) -> None:
    engine = sqlalchemy.create_engine(service.settings.database_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(statement), values)
    engine.dispose()


def silence(service: Service, agent_id: str, hours: float = 2) -> None:
    """The agent's last heartbeat moved `hours` back, in the database."""
    execute(
        service,
        "UPDATE agents SET last_heartbeat = :at WHERE id = :id",
        at=datetime.now(UTC) - timedelta(hours=hours),
        id=agent_id,
    )


def notifications(service: Service, bearer: str, **params: str) -> Any:
    with service.client(bearer) as client:
        answer = client.get("/notifications", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_admins_see_and_run_jobs(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as client:
        listed = client.get("/jobs").json()
    assert {j["name"] for j in listed} == JOBS
    for job in listed:
        assert job["schedule"]
        assert job["last_run"] is None
        assert job["locked_by"] is None
        # The scheduler started with the service: each job has its next run ahead.
        assert datetime.fromisoformat(job["next_run_at"]) > datetime.now(UTC)

    done = run_job(service, tokens["admin"], "agent_silent")
    assert done["outcome"] == "ok"
    assert done["trigger"] == "manual:admin"
    assert done["counts"] == {"silent": 0, "raised": 0, "resolved": 0}
    with service.client(tokens["admin"]) as client:
        job = {j["name"]: j for j in client.get("/jobs").json()}["agent_silent"]
        assert job["last_run"]["id"] == done["id"]
        assert job["last_run"]["outcome"] == "ok"
        assert job["locked_by"] is None  # given back after the run
        history = client.get("/jobs/agent_silent/runs").json()
        assert [r["id"] for r in history] == [done["id"]]
        unknown = client.post("/jobs/coffee/run")
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "unknown_job"
        assert "agent_silent" in unknown.json()["detail"]
        naive = client.post("/jobs/agent_silent/run", params={"now": "2030-01-01T00:00:00"})
        assert naive.status_code == 422
        assert naive.json()["code"] == "invalid"

    for role in ("it_pitie", "analyst", "inspector"):
        with service.client(tokens[role]) as client:
            assert client.get("/jobs").status_code == 403
            assert client.post("/jobs/agent_silent/run").status_code == 403
            assert client.get("/jobs/agent_silent/runs").status_code == 403
    with service.client() as client:
        assert client.get("/jobs").status_code == 401

    # A script with an admin key runs jobs too (its request holds no write the job waits on).
    key = create_key(service, tokens["admin"], name="ops-cron", role="admin")["key"]
    assert run_job(service, key, "retention_purge")["outcome"] == "ok"
    with service.client(tokens["inspector"]) as client:
        audit = client.get("/audit").json()
    seen = {(e["actor"], e["action"], e["target_kind"], e["target_id"]) for e in audit}
    assert ("admin", "update", "job", "agent_silent") in seen
    assert ("key:ops-cron", "update", "job", "retention_purge") in seen


def test_lock_has_one_holder_among_contenders(service: Service) -> None:
    """Threads with connections of their own race for one lease at the same instant, on the
    service's own database (SQLite file, PostgreSQL): first for a row that does not exist yet
    (INSERT race), then for an expired one (UPDATE race). Exactly one wins each time."""
    engine = make_engine(service.settings.database_url)
    sessions = session_factory(engine)
    contenders = 8
    try:
        for round_ in ("insert", "update"):
            barrier = threading.Barrier(contenders)
            won: list[str] = []

            def contend(
                holder: str, barrier: threading.Barrier = barrier, won: list[str] = won
            ) -> None:
                barrier.wait()
                if lock.acquire(sessions, "contended", holder, lease=timedelta(minutes=5)):
                    won.append(holder)

            threads = [
                threading.Thread(target=contend, args=(f"{round_}-{n}",)) for n in range(contenders)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert len(won) == 1, won
            winner = won[0]
            # The holder renews its own lease; the others still cannot take it.
            assert lock.acquire(sessions, "contended", winner, lease=timedelta(minutes=5))
            assert not lock.acquire(sessions, "contended", f"{round_}-late", lease=timedelta(1))
            lock.release(sessions, "contended", winner)
        assert lock.acquire(sessions, "contended", "after", lease=timedelta(minutes=5))
    finally:
        engine.dispose()


HOLD = """
import sys
from datetime import timedelta
from api.db import make_engine, session_factory
from api.jobs import lock
engine = make_engine(sys.argv[1])
sessions = session_factory(engine)
taken = lock.acquire(sessions, sys.argv[2], "other-process", lease=timedelta(hours=1))
print("taken" if taken else "refused")
"""


def hold_in_another_process(service: Service, name: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", HOLD, service.settings.database_url, name],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_job_held_by_another_process_is_skipped(service: Service) -> None:
    tokens = setup_world(service)
    assert hold_in_another_process(service, "agent_silent") == "taken"
    skipped = run_job(service, tokens["admin"], "agent_silent")
    assert skipped["outcome"] == "skipped-locked"
    assert "other-process" in skipped["detail"]
    assert skipped["counts"] == {}
    with service.client(tokens["admin"]) as client:
        jobs = {j["name"]: j for j in client.get("/jobs").json()}
    assert jobs["agent_silent"]["locked_by"] == "other-process"
    assert jobs["agent_silent"]["last_run"]["outcome"] == "skipped-locked"
    # Other jobs have locks of their own.
    assert run_job(service, tokens["admin"], "retention_purge")["outcome"] == "ok"
    # And a process holding a lease cannot take it twice either.
    assert hold_in_another_process(service, "agent_silent") == "taken"  # its own: renewed
    execute(service, "UPDATE job_locks SET holder = 'someone' WHERE name = 'agent_silent'")
    assert hold_in_another_process(service, "agent_silent") == "refused"

    # Once the other process's lease has run out, the job runs here again.
    execute(
        service,
        "UPDATE job_locks SET expires_at = :at WHERE name = 'agent_silent'",
        at=datetime.now(UTC) - timedelta(seconds=1),
    )
    assert run_job(service, tokens["admin"], "agent_silent")["outcome"] == "ok"


def test_silent_agent_notified_once_per_silence(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["admin"]) as client:
        user = {"username": "it_bordeaux", "password": PASSWORD, "role": "establishment"}
        made = client.post("/users", json={**user, "establishment": BORDEAUX})
        assert made.status_code == 201, made.text
    tokens["it_bordeaux"] = service.login("it_bordeaux", PASSWORD)
    admin = tokens["admin"]
    pitie = enrolled(service, new_token(service, admin, PITIE)["token"], "pitie-collect")
    bordeaux = enrolled(service, new_token(service, admin, BORDEAUX)["token"], "bx-collect")
    revoked = enrolled(service, new_token(service, admin, PITIE)["token"], "pitie-old")
    with service.client(admin) as client:
        assert client.post(f"/agents/{revoked['id']}/revoke").status_code == 200
    with service.client(pitie["agent_key"]) as client:
        assert client.post("/agents/heartbeat", json={"version": "1.0"}).status_code == 200

    assert run_job(service, admin, "agent_silent")["counts"]["raised"] == 0
    silence(service, pitie["id"])
    silence(service, revoked["id"], hours=5)  # revoked: its silence is expected
    first = run_job(service, admin, "agent_silent")
    assert first["counts"] == {"silent": 1, "raised": 1, "resolved": 0}
    again = run_job(service, admin, "agent_silent")
    assert again["counts"] == {"silent": 1, "raised": 0, "resolved": 0}  # not said twice

    for reader in ("it_pitie", "analyst", "inspector", "admin"):
        page = notifications(service, tokens[reader])
        assert page["total"] == 1, reader
        (item,) = page["items"]
        assert item["kind"] == "agent_silent"
        assert item["subject"] == pitie["id"]
        assert item["establishment"] == PITIE
        assert "pitie-collect" in item["message"]
        assert "last heartbeat" in item["message"]
        assert item["resolved_at"] is None
    assert notifications(service, tokens["it_bordeaux"]) == {"items": [], "total": 0}
    with service.client(bordeaux["agent_key"]) as client:
        assert client.get("/notifications").status_code == 403
    with service.client() as client:
        assert client.get("/notifications").status_code == 401

    # It speaks again: the notification is resolved; a new silence is a new notification.
    with service.client(pitie["agent_key"]) as client:
        assert client.post("/agents/heartbeat", json={"version": "1.0"}).status_code == 200
    back = run_job(service, admin, "agent_silent")
    assert back["counts"] == {"silent": 0, "raised": 0, "resolved": 1}
    assert notifications(service, tokens["it_pitie"], open="true")["total"] == 0
    (resolved,) = notifications(service, tokens["it_pitie"], open="false")["items"]
    assert resolved["resolved_at"] is not None
    silence(service, pitie["id"])
    assert run_job(service, admin, "agent_silent")["counts"]["raised"] == 1
    assert notifications(service, tokens["analyst"])["total"] == 2
    assert notifications(service, tokens["analyst"], open="true")["total"] == 1

    # Two hours from now Bordeaux's agent, never heard since it enrolled, is silent too.
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    ahead = run_job(service, admin, "agent_silent", now=later)
    assert ahead["counts"] == {"silent": 2, "raised": 1, "resolved": 0}
    assert datetime.fromisoformat(ahead["as_of"]) == datetime.fromisoformat(later)
    (theirs,) = notifications(service, tokens["it_bordeaux"])["items"]
    assert theirs["subject"] == bordeaux["id"]
    assert "since it enrolled" in theirs["message"]
    mine = notifications(service, tokens["it_pitie"], open="true")["items"]
    assert [n["subject"] for n in mine] == [pitie["id"]]
    assert notifications(service, tokens["analyst"], open="true")["total"] == 2


def test_nis2_deadlines_flagged_as_they_pass(service: Service) -> None:
    tokens = setup_world(service)
    with service.client(tokens["it_pitie"]) as client:
        made = client.post("/incidents", json=form())  # aware 30 hours ago
        assert made.status_code == 201, made.text
    incident = made.json()["id"]

    def deadline_entries() -> list[str]:
        with service.client(tokens["analyst"]) as client:
            timeline = client.get(f"/incidents/{incident}").json()["timeline"]
        return [t["text"] for t in timeline if t["kind"] == "deadline"]

    assert deadline_entries() == []
    first = run_job(service, tokens["admin"], "nis2_deadlines")
    assert first["outcome"] == "ok", first["detail"]
    assert first["counts"] == {"flagged": 1}  # the 24-hour early warning
    (entry,) = deadline_entries()
    assert "early warning" in entry
    assert run_job(service, tokens["admin"], "nis2_deadlines")["counts"] == {"flagged": 0}
    # Three days on, the 72-hour notification has passed too: flagged once, as it passes.
    later = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    assert run_job(service, tokens["admin"], "nis2_deadlines", now=later)["counts"] == {
        "flagged": 1
    }
    assert len(deadline_entries()) == 2


def _event(when: datetime, n: int) -> dict[str, Any]:
    return {
        "@timestamp": when.isoformat().replace("+00:00", "Z"),
        "message": f"routine line {n}",
        "event": {"kind": "event", "category": ["process"]},
        "host": {"name": "ward-pc"},
    }


def test_retention_purge_removes_old_events(service: Service) -> None:
    tokens = setup_world(service)
    key = str(enrolled(service, new_token(service, tokens["admin"], PITIE)["token"])["agent_key"])
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=200), now - timedelta(days=10)
    detection = {
        "engine": "sigma",
        "rule_id": "r-old",
        "rule_title": "an old hit",
        "level": "low",
        "timestamp": old.isoformat(),
        "source": "x",
    }
    batch = {
        "batch_id": "retention-0001",
        "events": [_event(old, 1), _event(old, 2), _event(recent, 3)],
        "detections": [detection],
    }
    answer = post(service, key, batch)
    assert answer.status_code == 200, answer.text
    assert answer.json()["events_accepted"] == 3

    store = SQLiteEventStore.in_data_dir(service.settings.data_dir)
    try:
        assert store.count("events", establishment=PITIE) == 3
        assert store.count("detections", establishment=PITIE) >= 1
        done = run_job(service, tokens["admin"], "retention_purge")
        assert done["outcome"] == "ok"
        assert done["counts"]["purged"] >= 3  # two events and the detection, at least
        left = store.search_events(establishment=PITIE)
        assert [e["message"] for e in left] == ["routine line 3"]
        assert store.count("detections", establishment=PITIE, until=now - timedelta(days=180)) == 0

        # 180 days on, the recent one goes too.
        later = (now + timedelta(days=180)).isoformat()
        assert (
            run_job(service, tokens["admin"], "retention_purge", now=later)["counts"]["purged"] >= 1
        )
        assert store.count("events", establishment=PITIE) == 0
    finally:
        store.close()


def test_openapi_states_who_runs_jobs(service: Service) -> None:
    with service.client() as client:
        spec = client.get("/openapi.json").json()
    assert spec["paths"]["/jobs"]["get"]["x-roles"] == ["admin"]
    assert spec["paths"]["/jobs/{name}/run"]["post"]["x-roles"] == ["admin"]
    assert set(spec["paths"]["/notifications"]["get"]["x-roles"]) == {
        "establishment",
        "cert",
        "auditor",
        "admin",
    }


def test_one_process_runs_the_schedule(database_url: str, tmp_path: Path) -> None:
    """Two service processes' worth of applications on one database: only the holder of the
    scheduler's lease runs scheduled jobs; when it stops, the other takes over."""
    apps = []
    for n in (1, 2):
        settings = Settings(tmp_path / f"data-{n}", database_url, secrets.token_urlsafe(40))
        settings.data_dir.mkdir()
        apps.append(create_app(settings))
    first, second = (jobs_of(app) for app in apps)
    try:
        assert first.instance != second.instance
        assert first.leads()
        assert not second.leads()
        assert first.leads()  # renewed by its holder
        second.run_scheduled("agent_silent")  # not the leader: nothing runs
        first.run_scheduled("agent_silent")
        with transaction(apps[0].state.sessions) as session:
            runs = job_service.runs(session=session, name="agent_silent", limit=10)
            assert [(r.trigger, r.outcome) for r in runs] == [("schedule", "ok")]
            assert runs[0].holder.startswith(first.instance)

        start(apps[0])
        assert first.next_run("agent_silent") is not None
        stop(apps[0])  # gives the scheduler's lease back
        assert second.leads()
        assert not first.leads()
        second.run_scheduled("retention_purge")
        with transaction(apps[1].state.sessions) as session:
            (run,) = job_service.runs(session=session, name="retention_purge", limit=10)
            assert run.holder.startswith(second.instance)
    finally:
        for app in apps:
            app.state.event_store.close()
            app.state.engine.dispose()
