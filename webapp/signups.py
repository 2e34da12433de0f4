"""Who may create an account: the sign-up policy, invitations, approval and the per-address throttle.

One place for the sign-up page, ``POST /api/signup/`` and the admin's Sign-up page:

* the policy is ``open``, ``approval`` (new accounts wait, disabled, for an admin), ``invite`` (a
  single-use invitation link is needed) or ``closed`` (admins create accounts). ``SIGNUP_POLICY`` is
  the starting value; an admin's choice, stored as a site setting, wins over it;
* while no admin exists, whoever signs up first becomes the admin, whatever the policy (a fresh
  server has nobody else to approve or invite), unless SIGNUP_FIRST_ADMIN is off;
* one client address creates at most ``SIGNUP_MAX_PER_HOUR`` accounts an hour (0: no limit). Counted
  in Redis; when Redis is unavailable the throttle is skipped (logged), as the sign-in throttle is.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import func, select, update

from . import audit
from .accounts import create_user
from .extensions import db
from .models import Invitation, User, utcnow
from .queue import get_redis
from .site_settings import get_site, set_site

log = logging.getLogger(__name__)

OPEN, APPROVAL, INVITE, CLOSED = "open", "approval", "invite", "closed"
POLICIES = (OPEN, APPROVAL, INVITE, CLOSED)
POLICY_LABELS = {
    OPEN: "Open: anyone who can reach the server signs up",
    APPROVAL: "Approval: new accounts wait, disabled, until an admin approves them",
    INVITE: "Invitation: sign-up needs a single-use link from an admin",
    CLOSED: "Closed: only admins create accounts",
}
SITE_KEY = "signup_policy"
THROTTLE_PREFIX = "switchboard:signups"
THROTTLE_WINDOW_SECONDS = 3600
INVITATION_DAYS = (1, 7, 30)


class SignupRefused(Exception):
    """Sign-up is not possible: ``status`` is the HTTP status, ``code`` a machine-readable reason."""

    def __init__(self, message: str, code: str, status: int = 403, retry_after: int | None = None):
        super().__init__(message)
        self.code, self.status, self.retry_after = code, status, retry_after


@dataclass
class SignupResult:
    user: User
    awaiting_approval: bool

    @property
    def message(self) -> str:
        if self.awaiting_approval:
            return "User created; the account awaits an admin's approval before it can sign in."
        return "User created successfully"


def policy() -> str:
    stored = get_site(SITE_KEY)
    if stored in POLICIES:
        return stored
    configured = str(current_app.config.get("SIGNUP_POLICY") or OPEN).strip().lower()
    if configured not in POLICIES:
        log.warning("SIGNUP_POLICY=%r is not one of %s; using 'closed'", configured, ", ".join(POLICIES))
        return CLOSED  # a typo must not leave sign-up open
    return configured


def set_policy(actor: User, value: str) -> None:
    if value not in POLICIES:
        raise ValueError(f"Unknown sign-up policy {value!r}.")
    before = policy()
    set_site(SITE_KEY, value)
    audit.record(actor, "signup.policy", "site", {"policy": before}, {"policy": value})


def admin_exists() -> bool:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin")) > 0


def next_signup_is_first_admin() -> bool:
    return bool(current_app.config.get("SIGNUP_FIRST_ADMIN", True)) and not admin_exists()


def awaiting_count() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.awaiting_approval.is_(True)))


def awaiting_users() -> list[User]:
    return list(db.session.scalars(select(User).where(User.awaiting_approval.is_(True)).order_by(User.id)))


def approve(actor: User, user: User) -> None:
    user.awaiting_approval = False
    user.is_disabled = False
    audit.record(actor, "user.approved", f"user:{user.username}", {"awaiting_approval": True}, {"approved": True})


def refuse(actor: User, user: User) -> None:
    """A waiting account is removed (it never signed in, so it has nothing to keep)."""
    audit.record(actor, "user.refused", f"user:{user.username}", {"awaiting_approval": True}, None)
    db.session.delete(user)


# -- invitations -------------------------------------------------------------------------


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_invitation(actor: User, email: str | None, days: int) -> str:
    """A new invitation; returns its token (shown once, in the link: only its hash is stored)."""
    token = secrets.token_urlsafe(24)
    email = (email or "").strip() or None
    invitation = Invitation(
        token_hash=_hash(token), email=email, created_by_id=actor.id, expires_at=utcnow() + timedelta(days=days)
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record(actor, "invitation.created", f"invitation:{invitation.id}", None, {"email": email, "days": days})
    return token


def open_invitations() -> list[Invitation]:
    now = utcnow()
    query = select(Invitation).where(
        Invitation.used_at.is_(None), Invitation.revoked_at.is_(None), Invitation.expires_at > now
    )
    return list(db.session.scalars(query.order_by(Invitation.id.desc())))


def revoke_invitation(actor: User, invitation_id: int) -> None:
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is not None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        audit.record(actor, "invitation.revoked", f"invitation:{invitation.id}", None, None)


def find_invitation(token: str | None) -> Invitation | None:
    """The usable invitation this token names, if any."""
    if not token:
        return None
    invitation = db.session.scalar(select(Invitation).where(Invitation.token_hash == _hash(token)))
    return invitation if invitation is not None and invitation.is_usable else None


def _redeem(invitation: Invitation, user: User) -> None:
    # Conditional: of two sign-ups racing with one link, exactly one gets it.
    claimed = db.session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=utcnow(), used_by_id=user.id)
    ).rowcount
    if claimed != 1:
        raise SignupRefused("This invitation has already been used.", "invitation_invalid")


# -- the throttle ------------------------------------------------------------------------


def _count_signup(address: str) -> None:
    """Counts this sign-up against its address; SignupRefused (429) past SIGNUP_MAX_PER_HOUR."""
    limit = int(current_app.config.get("SIGNUP_MAX_PER_HOUR") or 0)
    if limit <= 0:
        return
    key = f"{THROTTLE_PREFIX}:{address}"
    try:
        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, THROTTLE_WINDOW_SECONDS, nx=True)
        pipe.ttl(key)
        count, _, ttl = pipe.execute()
    except redis.RedisError:
        log.warning("sign-up throttle unavailable (Redis down)")
        return
    if count > limit:
        wait = max(int(ttl), 1)
        minutes = -(-wait // 60)
        raise SignupRefused(
            f"Too many accounts were created from your address. Try again in {minutes} minute{'s' * (minutes != 1)}.",
            "signup_throttled",
            status=429,
            retry_after=wait,
        )


# -- signing up --------------------------------------------------------------------------


def check_allowed(invitation_token: str | None = None, email: str | None = None) -> Invitation | None:
    """Whether a sign-up may go ahead under the policy (SignupRefused if not); the invitation it uses."""
    if next_signup_is_first_admin():
        return None  # the first account becomes the admin
    current = policy()
    if current == CLOSED:
        raise SignupRefused("Sign-up is closed on this server: ask an admin to create your account.", "signup_closed")
    invitation = find_invitation(invitation_token)
    if invitation_token and invitation is None:
        raise SignupRefused(
            "This invitation link is invalid, used or expired: ask an admin for a new one.", "invitation_invalid"
        )
    if current == INVITE and invitation is None:
        raise SignupRefused("Sign-up on this server needs an invitation link from an admin.", "invitation_required")
    if invitation is not None and invitation.email:
        if (email or "").strip().lower() != invitation.email.lower():
            raise SignupRefused("This invitation is for another email address.", "invitation_email_mismatch")
    return invitation


def sign_up(
    username: str, password: str, address: str, invitation_token: str | None = None, email: str | None = None
) -> SignupResult:
    """Creates an account as the policy allows (the caller has checked the username and password)."""
    invitation = check_allowed(invitation_token, email)
    first_admin = next_signup_is_first_admin()
    _count_signup(address)
    user = create_user(username, password, role="admin" if first_admin else "user")
    waiting = not first_admin and invitation is None and policy() == APPROVAL
    if waiting:
        user.awaiting_approval = True
        user.is_disabled = True
    if invitation is not None:
        _redeem(invitation, user)
    db.session.flush()
    return SignupResult(user, waiting)
