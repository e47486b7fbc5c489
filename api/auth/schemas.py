from __future__ import annotations

from pydantic import BaseModel, Field

from api.roles import Role


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=120)
    password: str = Field(min_length=1, max_length=200)


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int


class UserCreate(BaseModel):
    username: str = Field(min_length=3, max_length=120, pattern=r"^[A-Za-z0-9._@-]+$")
    password: str = Field(min_length=12, max_length=200)
    role: Role
    establishment: str | None = Field(default=None, min_length=9, max_length=9)


class UserRead(BaseModel):
    username: str
    role: str
    establishment: str | None
