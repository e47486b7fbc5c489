"""Pages that act: declaring an incident, the maturity score and questionnaire, publishing
and withdrawing alerts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/ui", include_in_schema=False)
