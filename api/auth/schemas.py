from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.roles import Role

USERNAME = r"^[A-Za-z0-9._@-]+$"


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int
    must_change_password: bool = Field(
        default=False, description="true: every route but POST /auth/password answers 403"
    )


class Me(BaseModel):
    username: str
    role: str
    establishment: str | None
    must_change_password: bool = False


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=200)
    new_password: str = Field(min_length=1, max_length=200)


class PasswordReset(BaseModel):
    password: str = Field(
        min_length=1, max_length=200, description="a temporary one: the user must change it"
    )


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=120, pattern=USERNAME)
    password: str = Field(min_length=1, max_length=200)
    role: Role
    establishment: str | None = Field(default=None, min_length=9, max_length=11)


class UserUpdate(BaseModel):
    """Absent fields are left as they are. A change of role or establishment, or a disable,
    revokes the user's login tokens and the API keys they created."""

    role: Role | None = None
    establishment: str | None = Field(default=None, min_length=9, max_length=11)
    active: bool | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    username: str
    role: str
    establishment: str | None = Field(validation_alias="establishment_finess")
    active: bool
    must_change_password: bool
    created_at: datetime | None = None
    password_changed_at: datetime | None = None


class UserPage(BaseModel):
    items: list[UserRead]
    total: int
