"""The CERT's national pages: establishments, campaigns, agents (and an establishment's own
agents and enrollment tokens)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/ui", include_in_schema=False)
