"""What several subcommands share: rule paths and loading, error lines."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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
