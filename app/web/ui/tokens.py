"""The page's "API tokens" panel: a signed-in user makes, lists and revokes their own tokens (shown once).

Only there when sign-in is on. The callbacks parse the form and call :class:`~app.web.auth.tokens.TokenStore`,
which holds every rule (a token's role is at most its user's, unique labels, expiry).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from app.core.errors import InvalidInputError, PermissionDeniedError
from app.web.auth.roles import Role, User, parse_role
from app.web.auth.tokens import TokenInfo, TokenStore
from app.web.ui.access import Access, inline_errors, notice
from app.web.ui.format import timestamp

DAY = 86400
EXPIRIES: dict[str, int | None] = {"30 days": 30 * DAY, "90 days": 90 * DAY, "1 year": 365 * DAY, "never": None}
DEFAULT_EXPIRY = "90 days"
SECRET_LABEL = "Your new token: copy it now, it is not shown again"

STATUS_CSS = """
.md-ok { margin: .2em 0; color: #15803d; }
.md-fail { margin: .2em 0; color: #b91c1c; font-weight: 600; }
"""
TOKENS_CSS = """
.md-tokens { border-collapse: collapse; width: 100%; font-size: .92em; }
.md-tokens th, .md-tokens td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #e5e7eb; }
"""


@dataclass
class TokenParts:
    """The panel's components."""

    box: gr.Accordion
    label: gr.Textbox
    role: gr.Dropdown
    expiry: gr.Dropdown
    create: gr.Button
    secret: gr.Textbox
    listing: gr.HTML
    target: gr.Textbox
    revoke: gr.Button
    status: gr.HTML


def token_panel() -> TokenParts:
    """Create the (hidden, closed) panel in the current ``gr.Blocks``; the page's load shows it when sign-in is on."""
    with gr.Accordion("API tokens", open=False, visible=False, elem_id="md-tokens") as box:
        gr.Markdown("Personal tokens for scripts, CI and `modeldepot` over HTTP: send "
                    "`Authorization: Bearer mdp_…`, or set `MODELDEPOT_TOKEN`. A token acts as you, with at most "
                    "your role.")
        with gr.Row(equal_height=True):
            label = gr.Textbox(label="Label (optional)", placeholder="e.g. ci or laptop", elem_id="md-token-label")
            role = gr.Dropdown([r.value for r in Role], value=Role.VIEWER.value, label="Role",
                               elem_id="md-token-role")
            expiry = gr.Dropdown(list(EXPIRIES), value=DEFAULT_EXPIRY, label="Expires after",
                                 elem_id="md-token-expiry")
            create = gr.Button("Create token", variant="primary", scale=0, min_width=140, elem_id="md-token-create")
        secret = gr.Textbox(label=SECRET_LABEL, visible=False, interactive=False, buttons=["copy"],
                            elem_id="md-token-secret")
        listing = gr.HTML("", elem_id="md-token-list", css_template=TOKENS_CSS, js_on_load=None)
        with gr.Row(equal_height=True):
            target = gr.Textbox(label="Revoke a token", placeholder="its label or prefix", scale=2,
                                elem_id="md-token-target")
            revoke = gr.Button("Revoke", variant="stop", scale=0, min_width=140, elem_id="md-token-revoke")
        status = gr.HTML("", elem_id="md-token-status", css_template=STATUS_CSS, js_on_load=None)
    return TokenParts(box, label, role, expiry, create, secret, listing, target, revoke, status)


def render_tokens(infos: Sequence[TokenInfo]) -> str:
    """The user's tokens as a table (never the tokens themselves)."""
    if not infos:
        return "<p>You have no API tokens yet.</p>"
    rows = "".join(
        f"<tr><td>{html.escape(i.label)}</td><td>{i.role.value}</td><td><code>{html.escape(i.shown)}</code></td>"
        f"<td>{timestamp(i.created_at)}</td><td>{timestamp(i.last_used_at) or 'never'}</td>"
        f"<td>{timestamp(i.expires_at) or 'never'}</td></tr>"
        for i in infos)
    return ('<table class="md-tokens"><thead><tr><th>label</th><th>role</th><th>prefix</th><th>created</th>'
            f"<th>last used</th><th>expires</th></tr></thead><tbody>{rows}</tbody></table>")


def expiry_seconds(choice: str | None) -> int | None:
    """Raises: InvalidInputError: not one of :data:`EXPIRIES`."""
    if choice not in EXPIRIES:
        raise InvalidInputError(f"Pick an expiry: {', '.join(EXPIRIES)}.")
    return EXPIRIES[choice]


class TokenPanel:
    """The panel's callbacks, bound to the token store and the access policy.

    Named unlike the API endpoints (:mod:`app.web.ui.api`), for the reason :class:`~app.web.ui.actions.Actions` gives.
    """

    def __init__(self, tokens: TokenStore, access: Access) -> None:
        self.tokens = tokens
        self.access = access

    def _signed_in(self, request: gr.Request | None) -> User:
        if not self.access.enabled:
            raise PermissionDeniedError("Sign-in is off here, so the API is open to everyone and needs no token.")
        return self.access.user(request)

    @inline_errors(extra_outputs=2)
    def create_token(self, label: str | None, role: str | None, expiry: str | None,
                     request: gr.Request) -> tuple[str, Any, str]:
        """Make a token for the signed-in user; the secret box shows it this once."""
        user = self._signed_in(request)
        token, info = self.tokens.create(user.name, parse_role(role or "", where="Role"),
                                         label=(label or "").strip() or None, expires_s=expiry_seconds(expiry),
                                         max_role=user.role)
        until = f"it expires {timestamp(info.expires_at)}" if info.expires_at else "it never expires"
        said = notice(f"Created {info.role.value} token {info.label} ({info.shown}); {until}. Copy it now.")
        return said, gr.update(value=token, visible=True), render_tokens(self.tokens.list(user.name))

    @inline_errors(extra_outputs=2)
    def revoke_token(self, target: str | None, request: gr.Request) -> tuple[str, Any, str]:
        """Revoke one of the signed-in user's tokens by its label or prefix."""
        user = self._signed_in(request)
        if not target or not target.strip():
            raise InvalidInputError("Type the label or the prefix of the token to revoke (see the list).")
        info = self.tokens.revoke(target, user=user.name)
        said = notice(f"Revoked {info.label} ({info.shown}); it stopped working everywhere.")
        return said, gr.update(value="", visible=False), render_tokens(self.tokens.list(user.name))

    @inline_errors(extra_outputs=1)
    def show_tokens(self, request: gr.Request) -> tuple[str, str]:
        """The status line (empty) and the signed-in user's tokens."""
        user = self._signed_in(request)
        return "", render_tokens(self.tokens.list(user.name))


def wire_tokens(parts: TokenParts, panel: TokenPanel, options: dict[str, Any]) -> None:
    """Register the panel's events with the page's event ``options``."""
    results = [parts.status, parts.secret, parts.listing]
    parts.create.click(panel.create_token, [parts.label, parts.role, parts.expiry], results, **options)
    parts.revoke.click(panel.revoke_token, parts.target, results, **options)
    parts.target.submit(panel.revoke_token, parts.target, results, **options)
    parts.box.expand(panel.show_tokens, None, [parts.status, parts.listing], **options)
