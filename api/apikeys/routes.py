"""API keys for automation."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from api.apikeys import service
from api.apikeys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from api.audit.service import record_request
from api.deps import CurrentUser, Principal, SessionDep, allow
from api.roles import Role

router = APIRouter(prefix="/api-keys", tags=["api keys"])
MANAGERS = (Role.ESTABLISHMENT, Role.ADMIN)  # an establishment: its own, establishment role only


def _audit(request: Request, session: Session, who: Principal, action: str, key_id: str) -> None:
    record_request(request, session, who, action, "api_key", key_id)


@router.post("", status_code=201, **allow(*MANAGERS))
def create_api_key(
    body: ApiKeyCreate, request: Request, session: SessionDep, who: CurrentUser
) -> ApiKeyCreated:
    key, secret = service.create(session=session, who=who, data=body)
    _audit(request, session, who, "create", key.id)
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)


@router.get("", **allow(*MANAGERS))
def list_api_keys(session: SessionDep, who: CurrentUser) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(k) for k in service.listing(session=session, who=who)]


@router.delete("/{key_id}", **allow(*MANAGERS))
def revoke_api_key(
    key_id: str, request: Request, session: SessionDep, who: CurrentUser
) -> ApiKeyRead:
    """Revoke (the key stays listed, refused from now on)."""
    key = service.revoke(session=session, who=who, key_id=key_id)
    _audit(request, session, who, "delete", key.id)
    return ApiKeyRead.model_validate(key)
