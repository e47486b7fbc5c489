"""What several subcommands share: rule paths and loading, error lines, the first login."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

REPO_RULES = Path(__file__).resolve().parent.parent / "rules"


def default_rules_dir() -> Path:
    """Vigie's own rules: `$VIGIE_RULES_DIR`, else the `rules/` folder of this checkout."""
    return Path(os.environ.get("VIGIE_RULES_DIR") or REPO_RULES)


def rule_paths(given: list[Path] | None, kind: str, others_given: bool) -> list[Path]:
    """The paths of one kind of rules: as given, else `rules/<kind>` when no rules were given."""
    if given:
        return given
    if others_given:
        return []
    default = default_rules_dir() / kind
    return [default] if default.exists() else []


def fail(message: str, status: int = 2) -> int:
    print(f"vigie: error: {message}", file=sys.stderr)
    return status


def first_login(client: Any, first_password: str) -> tuple[str, str]:
    """Log in as the first admin (an httpx client on the service) and change the password
    printed at start, as the service demands before anything else: a token and the new
    password."""
    login = {"username": "admin", "password": first_password}
    token = client.post("/auth/token", json=login).raise_for_status().json()["access_token"]
    import secrets  # here: its import (hmac, hashlib) is a tenth of `vigie netmeta`'s start-up

    password = secrets.token_urlsafe(18)
    change = {"current_password": first_password, "new_password": password}
    answer = client.post(
        "/auth/password", json=change, headers={"Authorization": f"Bearer {token}"}
    ).raise_for_status()
    return str(answer.json()["access_token"]), password
