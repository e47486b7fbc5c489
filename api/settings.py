"""The national service's settings: one object, read from the environment, checked at start.

VIGIE_DATA_DIR        where the SQLite files and the generated secret live (./vigie-data)
VIGIE_DATABASE_URL    relational database (default: SQLite file in the data directory)
VIGIE_SECRET_KEY      signs login tokens; required in production, generated and kept in
                      the data directory in development
VIGIE_ENVIRONMENT     production (default) | development (generated secret, API docs pages)
VIGIE_TEST_TIME_OVERRIDE  1: admins may run a job "as of" another time (tests only)
VIGIE_TOKEN_MINUTES   lifetime of a login token (30)
VIGIE_RULES_DIR       Vigie's own rules for server-side detection (rules/ of this checkout)
VIGIE_ELASTICSEARCH_URL  keep events and detections in Elasticsearch (default: SQLite file)
VIGIE_RETRO_HUNT_DAYS days of stored events a new alert is hunted over (30; 0: no hunt)
VIGIE_AGENT_SILENT_MINUTES  an agent without a heartbeat for this long is reported silent (60)
VIGIE_RETENTION_DAYS  events and detections older than this are purged (180)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """A setting is missing or wrong; the service refuses to start."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str
    environment: str = "production"
    token_minutes: int = 30
    # Vigie's own rules (rules/ of this checkout unless VIGIE_RULES_DIR says otherwise).
    rules_dir: Path = Path(__file__).resolve().parent.parent / "rules"
    elasticsearch_url: str | None = None
    retro_hunt_days: int = 30
    agent_silent_minutes: int = 60
    retention_days: int = 180
    # `POST /jobs/{name}/run?now=...`: a job run as of another time (the retention purge as of
    # 2099 erases every event). For tests only, whatever the environment.
    allow_time_override: bool = False
    # Maturity evidence gathered as events arrive (VIGIE_MATURITY_EVIDENCE=0: off, to measure
    # its cost; the maturity scores then see no network or Windows evidence).
    maturity_evidence: bool = True

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Settings:
        env = os.environ
        folder = Path(data_dir or env.get("VIGIE_DATA_DIR") or "vigie-data").resolve()
        environment = env.get("VIGIE_ENVIRONMENT", "production")
        if environment not in ("development", "production"):
            raise SettingsError(
                f"VIGIE_ENVIRONMENT must be development or production, not {environment!r}"
            )
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        url = env.get("VIGIE_DATABASE_URL") or f"sqlite:///{folder / 'vigie.db'}"
        secret = env.get("VIGIE_SECRET_KEY")
        if not secret:
            if environment == "production":
                raise SettingsError(
                    "VIGIE_SECRET_KEY is required in production (32 characters or more, e.g. "
                    "from `openssl rand -base64 48`); VIGIE_ENVIRONMENT=development generates one"
                )
            secret = _development_secret(folder)
        elif len(secret) < 32:
            raise SettingsError("VIGIE_SECRET_KEY must be at least 32 characters")
        try:
            minutes = int(env.get("VIGIE_TOKEN_MINUTES", "30"))
        except ValueError as exc:
            raise SettingsError("VIGIE_TOKEN_MINUTES must be a number of minutes") from exc
        if not 1 <= minutes <= 24 * 60:
            raise SettingsError("VIGIE_TOKEN_MINUTES must be between 1 and 1440")
        rules = Path(env["VIGIE_RULES_DIR"]) if env.get("VIGIE_RULES_DIR") else cls.rules_dir
        elastic = env.get("VIGIE_ELASTICSEARCH_URL") or None
        silent = _bounded(env, "VIGIE_AGENT_SILENT_MINUTES", 60, 5, 7 * 24 * 60, "minutes")
        retention = _bounded(env, "VIGIE_RETENTION_DAYS", 180, 1, 10 * 366, "days")
        hunt_days = _bounded(env, "VIGIE_RETRO_HUNT_DAYS", 30, 0, 365, "days")
        return cls(
            folder,
            url,
            secret,
            environment,
            minutes,
            rules,
            elastic,
            agent_silent_minutes=silent,
            retention_days=retention,
            retro_hunt_days=hunt_days,
            allow_time_override=env.get("VIGIE_TEST_TIME_OVERRIDE") == "1",
            maturity_evidence=env.get("VIGIE_MATURITY_EVIDENCE", "1") != "0",
        )


def _bounded(
    env: Mapping[str, str], name: str, default: int, low: int, high: int, unit: str
) -> int:
    """A whole number of `unit` between `low` and `high`, or `SettingsError`."""
    try:
        value = int(env.get(name, str(default)))
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number of {unit}") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high} {unit}")
    return value


def _development_secret(folder: Path) -> str:
    """A random secret kept in the data directory (readable by its owner only)."""
    path = folder / "secret.key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret, encoding="utf-8")
    return secret
