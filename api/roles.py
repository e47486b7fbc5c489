"""Who may call the service."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"  # one credential per collector agent, issued at enrollment
    ESTABLISHMENT = "establishment"  # IT staff of one establishment
    CERT = "cert"  # national analysts
    AUDITOR = "auditor"  # read-only: reports, registry, audit log
    ADMIN = "admin"


HUMANS = (Role.ESTABLISHMENT, Role.CERT, Role.AUDITOR, Role.ADMIN)
