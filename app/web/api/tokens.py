"""``/api/v1/tokens``: a signed-in user's own API tokens (list, create, revoke), on
:class:`~app.web.auth.tokens.TokenStore`.

A token is in the answer of the call that created it and nowhere else: lists show its label and prefix. A
token's role is at most its creator's role at the moment (a viewer makes viewer tokens). Any signed-in user may
manage their own tokens, viewers included; with sign-in off there is nobody to own one. A token may list and
revoke its user's tokens but not make new ones, so a leaked token cannot outlive its revocation.
"""

from __future__ import annotations

from fastapi import APIRouter

from app.web.api import schemas
from app.web.api.callers import Caller, CallerDep, Via
from app.web.api.errors import ApiError
from app.web.auth.roles import User
from app.web.auth.tokens import TokenInfo, TokenStore

_NOT_BY_TOKEN = ("A token cannot make tokens (a leaked one could then outlive its revocation): sign in on the page "
                 "and make it there, or ask an admin to run `modeldepot token create`.")
_OPEN = ("Sign-in is off on this server, so the API needs no token and nobody owns one. An admin can still make "
         "tokens with `modeldepot token create --user NAME --role ROLE`.")


def _token(info: TokenInfo) -> schemas.Token:
    return schemas.Token(label=info.label, user=info.user, role=info.role, prefix=info.prefix,
                         created_at=info.created_at, last_used_at=info.last_used_at, expires_at=info.expires_at)


def _owner(caller: Caller) -> User:
    """Raises: ApiError: 403 with sign-in off."""
    if caller.via is Via.OPEN:
        raise ApiError(403, _OPEN)
    return caller.user


def tokens_router(tokens: TokenStore) -> APIRouter:
    router = APIRouter(tags=["tokens"])

    @router.get("/tokens", response_model=schemas.Tokens)
    def list_tokens(caller: CallerDep) -> schemas.Tokens:
        """Your tokens, oldest first (never the tokens themselves)."""
        return schemas.Tokens(tokens=[_token(info) for info in tokens.list(_owner(caller).name)])

    @router.post("/tokens", status_code=201, response_model=schemas.NewToken)
    def create_token(body: schemas.TokenRequest, caller: CallerDep) -> schemas.NewToken:
        """A new token of yours, shown in this answer only: keep it somewhere safe."""
        user = _owner(caller)
        if caller.via is Via.TOKEN:
            raise ApiError(403, _NOT_BY_TOKEN)
        token, info = tokens.create(user.name, body.role or user.role, label=body.label, expires_s=body.expires_s,
                                    max_role=user.role)
        return schemas.NewToken(**_token(info).model_dump(), token=token)

    @router.delete("/tokens/{label_or_prefix}", response_model=schemas.Token)
    def revoke_token(label_or_prefix: str, caller: CallerDep) -> schemas.Token:
        """Revoke one of your tokens by its label or prefix; it fails at once on every worker."""
        return _token(tokens.revoke(label_or_prefix, user=_owner(caller).name))

    return router
