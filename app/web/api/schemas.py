"""The bodies the API takes and gives, as pydantic models: the OpenAPI page shows them, and a request body with
an unknown field, a wrong type or a missing field is refused (400) before any route runs.

Records are :class:`~app.core.records.ModelRecord` as ``model_dump(mode="json")`` writes them (the replica's
dicts, sent as they are: the list is never validated again on its way out).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from app.core.records import ModelRecord
from app.web.auth.roles import Role


class RequestBody(BaseModel):
    """A request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class DownloadRequest(RequestBody):
    model: str = Field(description="org/name, or org/name@revision", examples=["Qwen/Qwen2.5-0.5B-Instruct"])
    revision: str | None = Field(default=None, description="A branch, tag or commit (or give it after @)")
    include: list[str] | None = Field(default=None, description="Glob patterns of the files to fetch",
                                      examples=[["*.safetensors", "*.json"]])
    exclude: list[str] | None = Field(default=None, description="Glob patterns of the files to skip")


class PruneRequest(RequestBody):
    dry_run: bool = Field(default=False, description="Only say what a prune would remove")


class TokenRequest(RequestBody):
    label: str | None = Field(default=None, description="Unique among your tokens; default token-<prefix>",
                              examples=["ci"])
    role: Role | None = Field(default=None, description="At most your own role (the default)")
    expires_s: int | None = Field(default=None, description="Seconds until it stops working; none: never",
                                  examples=[90 * 86400])


class Action(StrEnum):
    """What ``POST /api/v1/models/{org}/{name}/{action}`` does to a model."""

    CANCEL = "cancel"
    RETRY = "retry"
    VERIFY = "verify"
    PAUSE = "pause"
    RESUME = "resume"
    UPDATE = "update"
    PIN = "pin"
    UNPIN = "unpin"
    CHECK = "check"


class Outcome(BaseModel):
    name: str
    job_id: str | None
    message: str
    changed: bool
    version: int = Field(description="This worker's state version after the change: pass it as ?version= to "
                                     "another worker's read to see the change there too")


class Removal(Outcome):
    freed_bytes: int = Field(description="The bytes the removal frees on the models volume")


class ModelList(BaseModel):
    models: list[ModelRecord]


class Victim(BaseModel):
    name: str
    size_bytes: int
    idle_since: float


class Pruned(BaseModel):
    dry_run: bool
    removing: list[str]
    victims: list[Victim]
    message: str


class Logs(BaseModel):
    logs: list[str]


class Me(BaseModel):
    user: str
    role: Role
    via: str = Field(description="token, session, header (SSO) or open (sign-in is off)")


class Token(BaseModel):
    label: str
    user: str
    role: Role
    prefix: str = Field(description="The characters after mdp_ that name it in lists (never enough to use it)")
    created_at: float
    last_used_at: float | None
    expires_at: float | None


class NewToken(Token):
    token: str = Field(description="The token itself: shown this once, stored only as a hash")


class Tokens(BaseModel):
    tokens: list[Token]


class ErrorDetail(BaseModel):
    code: str
    message: str


class Error(BaseModel):
    error: ErrorDetail
