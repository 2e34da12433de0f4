"""Single sign-on with OpenID Connect, through Authlib: settings, the sign-in flow and accounts.

The flow is the authorization code flow with PKCE (S256), ``state`` and ``nonce``: Authlib makes all three,
keeps them in the signed session cookie, and on the way back checks the state, exchanges the code and
validates the ID token (signature against the provider's JWKS, issuer, audience, expiry, nonce).

Every sign-in then brings the account in line with the identity provider (:func:`account_for`): the account is
found by its subject, else linked or created; its groups follow the groups claim; OIDC_ADMIN_GROUPS decide
its admin flag. The browser session it gets is an ordinary ``user_sessions`` record (webapp.accounts.sessions).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, current_app, session
from joserfc.errors import JoseError
from sqlalchemy import func, select

from . import audit, groups, site_settings
from .accounts import USERNAME_LENGTH, active_admin_count, create_user, find_user
from .extensions import db
from .models import Group, GroupMember, User

log = logging.getLogger(__name__)

_EXTENSION = "switchboard_sso"
CLIENT_NAME = "oidc"
HTTP_TIMEOUT = 10  # seconds, for discovery, the token exchange, JWKS and userinfo
DISCOVERY_MAX_AGE = 3600  # seconds: the discovery document (endpoints, keys) is read again after this
ALLOW_LINKING = "sso_allow_linking"  # site setting: an admin lets SSO sign-ins take over matching local accounts
DEFAULT_SCOPES = "openid email profile"


class SSOFailed(Exception):
    """The sign-in did not go through; the message says why, in words fit for the sign-in page."""


@dataclass(frozen=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str
    scopes: str
    groups_claim: str
    admin_groups: frozenset[str]
    button_label: str
    only: bool


def settings(config=None) -> Settings | None:
    """The OIDC_* settings, or None when single sign-on is not set up (no issuer or client id)."""
    config = config if config is not None else current_app.config
    issuer = (config.get("OIDC_ISSUER") or "").strip()
    client_id = (config.get("OIDC_CLIENT_ID") or "").strip()
    if not issuer or not client_id:
        return None
    admin_groups = config.get("OIDC_ADMIN_GROUPS") or ()
    if isinstance(admin_groups, str):
        admin_groups = admin_groups.split(",")
    return Settings(
        issuer=issuer.rstrip("/"),
        client_id=client_id,
        client_secret=config.get("OIDC_CLIENT_SECRET") or "",
        scopes=config.get("OIDC_SCOPES") or DEFAULT_SCOPES,
        groups_claim=config.get("OIDC_GROUPS_CLAIM") or "groups",
        admin_groups=frozenset(g.strip() for g in admin_groups if g and g.strip()),
        button_label=config.get("OIDC_BUTTON_LABEL") or "Sign in with single sign-on",
        only=bool(config.get("OIDC_ONLY")),
    )


def enabled() -> bool:
    return settings() is not None


def password_sign_in_allowed(user: User | None) -> bool:
    """With OIDC_ONLY only break-glass accounts sign in with a password (pages and API alike)."""
    conf = settings()
    if conf is None or not conf.only:
        return True
    return user is not None and bool(user.break_glass)


def local_signup_allowed() -> bool:
    conf = settings()
    return conf is None or not conf.only


def init_app(app: Flask) -> None:
    """Register the OpenID Connect client when OIDC_ISSUER and OIDC_CLIENT_ID are set.

    One Authlib registry per app, not a module-level one: a registry keeps its clients (and their
    discovery documents) once created, and each app (the tests make many) has its own provider settings.
    """
    conf = settings(app.config)
    if conf is None:
        return
    oauth = OAuth(app)
    oauth.register(
        CLIENT_NAME,
        client_id=conf.client_id,
        client_secret=conf.client_secret or None,
        server_metadata_url=f"{conf.issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": conf.scopes, "code_challenge_method": "S256", "timeout": HTTP_TIMEOUT},
    )
    app.extensions[_EXTENSION] = oauth


def _client():
    oauth = current_app.extensions.get(_EXTENSION)
    if oauth is None:
        raise SSOFailed("Single sign-on is not set up.")
    client = oauth.create_client(CLIENT_NAME)
    loaded_at = client.server_metadata.get("_loaded_at")
    if loaded_at is not None and time.time() - loaded_at > DISCOVERY_MAX_AGE:
        client.server_metadata.clear()  # endpoints and keys are read again below
    return client


def discovery_status() -> dict:
    """For the admin home: set up or not, the issuer, and when its discovery document was last read (or why not)."""
    conf = settings()
    if conf is None:
        return {"configured": False}
    status = {"configured": True, "issuer": conf.issuer, "only": conf.only, "read_at": None, "error": None}
    try:
        loaded_at = _client().load_server_metadata().get("_loaded_at")
        if loaded_at is not None:
            status["read_at"] = datetime.fromtimestamp(loaded_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (requests.RequestException, ValueError) as exc:
        status["error"] = f"The discovery document could not be read: {type(exc).__name__}."
    return status


def authorize_redirect(redirect_uri: str):
    """The redirect to the identity provider; state, nonce and the PKCE verifier go in the session.

    One sign-in in flight per browser: Authlib keeps each started one in the session cookie for an hour, so
    a dozen clicks would outgrow the cookie; an earlier one, finished after this, is refused as a wrong state.
    """
    for key in [key for key in session if key.startswith(f"_state_{CLIENT_NAME}_")]:
        session.pop(key)
    try:
        return _client().authorize_redirect(redirect_uri)
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("SSO: the identity provider could not be reached: %s", type(exc).__name__)
        raise SSOFailed("The identity provider could not be reached. Try again later.") from None


def finish() -> dict:
    """The identity provider's answer (the request's query) checked by Authlib: the validated ID token's claims.

    Raises SSOFailed for anything wrong: an error from the provider, a wrong or missing state, a code that
    was used before, a token that fails validation, or a provider that cannot be reached.
    """
    client = _client()
    try:
        issuer = client.load_server_metadata().get("issuer") or settings().issuer
        # Authlib's default checks the issuer only, and the audience through azp; this names both exactly.
        claims_options = {
            "iss": {"essential": True, "values": [issuer]},
            "aud": {"essential": True, "values": [client.client_id]},
        }
        token = client.authorize_access_token(claims_options=claims_options)
    except OAuthError as exc:
        log.info("SSO refused: %s", exc.error)
        raise SSOFailed(_oauth_error_text(exc)) from None
    except (JoseError, AuthlibBaseError) as exc:
        reason = getattr(exc, "description", None) or getattr(exc, "error", None) or type(exc).__name__
        log.warning("SSO: the ID token failed validation: %s", reason)
        raise SSOFailed(f"The identity provider's ID token is not valid ({reason}).") from None
    except (requests.RequestException, ValueError, KeyError) as exc:
        log.warning("SSO: the identity provider could not be reached: %s", type(exc).__name__)
        raise SSOFailed("The identity provider could not be reached. Try again later.") from None
    claims = token.get("userinfo")
    if not claims or not claims.get("sub"):
        raise SSOFailed("The identity provider sent no ID token.")
    return {**_userinfo(client, token, claims["sub"]), **claims}


def _userinfo(client, token: dict, subject: str) -> dict:
    """Claims the provider gives only at its userinfo endpoint (some leave groups or email out of the ID
    token); the ID token's own claims win. Nothing when there is no endpoint or it is about someone else."""
    if not client.load_server_metadata().get("userinfo_endpoint"):
        return {}
    try:
        info = dict(client.userinfo(token=token))
    except (requests.RequestException, ValueError, AuthlibBaseError) as exc:
        log.warning("SSO: the userinfo endpoint did not answer: %s", type(exc).__name__)
        return {}
    return info if info.get("sub") == subject else {}


def _oauth_error_text(exc: OAuthError) -> str:
    if exc.error == "mismatching_state":
        return "The sign-in could not be matched to this browser (it expired or was started elsewhere). Try again."
    if exc.error == "invalid_grant":
        return "The identity provider refused the sign-in code (it was used already or has expired). Try again."
    if exc.error == "access_denied":
        return "The sign-in was cancelled at the identity provider."
    return f"The identity provider refused the sign-in ({exc.error})."


# -- accounts --------------------------------------------------------------------------------------------


def subject_of(claims: dict) -> str:
    return f"{claims.get('iss') or settings().issuer} {claims['sub']}"[:400]


def _name_from(claims: dict) -> str:
    preferred = (claims.get("preferred_username") or "").strip()
    email = (claims.get("email") or "").strip()
    base = preferred or email.split("@", 1)[0] or str(claims["sub"])
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", base).strip("-.") or "user"
    low, high = USERNAME_LENGTH
    return base[: high - 8].ljust(low, "0")


def _unique_name(base: str) -> str:
    if find_user(base) is None:
        return base
    for number in range(2, 1000):
        candidate = f"{base}-{number}"
        if find_user(candidate) is None:
            return candidate
    return f"{base}-{secrets.token_hex(4)}"


def groups_in(claims: dict) -> list[str]:
    """The groups named in the configured claim: a list of names (or one name); anything else counts as none."""
    value = claims.get(settings().groups_claim)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return []
    names = {" ".join(str(item).split())[: groups.NAME_MAX] for item in value if isinstance(item, (str, int))}
    return sorted(name for name in names if name)


def account_for(claims: dict) -> User:
    """The account this identity-provider account signs in as, created or linked on first use and brought in
    line with the claims (groups, admin flag). Raises SSOFailed for a disabled account. Not committed."""
    subject = subject_of(claims)
    user = db.session.scalar(select(User).where(User.sso_subject == subject))
    if user is None:
        user = _link_or_create(claims, subject)
    if user.is_disabled:
        raise SSOFailed("This account is disabled. Ask an administrator.")
    names = groups_in(claims)
    _sync_groups(user, names)
    _sync_admin(user, names)
    return user


def _link_or_create(claims: dict, subject: str) -> User:
    name = _name_from(claims)
    existing = find_user(name)
    if (
        existing is not None
        and existing.sso_subject is None
        and claims.get("email_verified") is True
        and site_settings.get_site(ALLOW_LINKING, False)
    ):
        existing.sso_subject = subject
        audit.record(None, "sso.link", f"user:{existing.username}", None, {"subject": subject})
        return existing
    user = create_user(_unique_name(name), secrets.token_urlsafe(32))  # a password nobody knows
    user.sso_subject = subject
    audit.record(None, "sso.create", f"user:{user.username}", None, {"subject": subject})
    return user


def _sync_groups(user: User, names: list[str]) -> None:
    """Memberships match the claim: groups named there are created when missing and joined, the others left
    (through webapp.groups, each change audited with the system as actor)."""
    current = {
        g.name.lower(): g
        for g in db.session.scalars(
            select(Group).join(GroupMember, GroupMember.group_id == Group.id).where(GroupMember.user_id == user.id)
        )
    }
    wanted = {name.lower(): name for name in names}
    for key in sorted(set(wanted) - set(current)):
        group = db.session.scalar(select(Group).where(func.lower(Group.name) == key))
        if group is None:
            group = groups.create_group(None, wanted[key])
        groups.add_member(None, group, user)
    for key in sorted(set(current) - set(wanted)):
        groups.remove_member(None, current[key], user)


def _sync_admin(user: User, groups: list[str]) -> None:
    admin_groups = settings().admin_groups
    if not admin_groups:
        return  # admin rights are not managed by the identity provider
    should_be_admin = bool(admin_groups & set(groups))
    if should_be_admin and not user.is_admin:
        user.role = "admin"
        audit.record(None, "sso.admin_granted", f"user:{user.username}", {"role": "user"}, {"role": "admin"})
    elif not should_be_admin and user.is_admin:
        if active_admin_count() <= 1:
            log.warning("SSO: %s left the admin groups but stays admin: the last active admin", user.username)
            return
        user.role = "user"
        audit.record(None, "sso.admin_removed", f"user:{user.username}", {"role": "admin"}, {"role": "user"})


def set_allow_linking(actor: User, allowed: bool) -> None:
    before = bool(site_settings.get_site(ALLOW_LINKING, False))
    if before != allowed:
        site_settings.set_site(ALLOW_LINKING, allowed)
        audit.record(actor, "sso.linking", "sso", {"allow_linking": before}, {"allow_linking": allowed})


def linking_allowed() -> bool:
    return bool(site_settings.get_site(ALLOW_LINKING, False))
