"""Domain functions for user accounts, shared by the pages, the API and the CLI."""

from __future__ import annotations

import re

from sqlalchemy import func, or_, select
from zxcvbn import zxcvbn

from ..extensions import db
from ..models import User
from . import throttle

# The account rules, in one place: the sign-up page, the admin's forms, the API and the CLI all ask here.
USERNAME_LENGTH = (3, 64)
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
PASSWORD_LENGTH = (10, 256)
# zxcvbn's score (0-4) a password needs: 2 means about a million guesses or more, which refuses common
# passwords, keyboard walks, dates, repeats and the username (NIST SP 800-63B 5.1.1.2's list check).
PASSWORD_MIN_SCORE = 2
ZXCVBN_MAX_INPUT = 100  # zxcvbn slows down on long input; a longer password is judged by its start


def username_problem(username: str) -> str | None:
    """Why ``username`` cannot be a username (its format; whether it is taken is another question)."""
    username = (username or "").strip()
    low, high = USERNAME_LENGTH
    if not low <= len(username) <= high:
        return f"Use {low} to {high} characters."
    if not USERNAME_RE.match(username):
        return "Use letters, digits, dots, dashes and underscores only."
    return None


def password_problem(password: str, username: str | None = None) -> str | None:
    """Why ``password`` cannot be a password: too short, too long, or common or guessable
    (the same rule on the sign-up page, the API, the admin's forms and the CLI)."""
    low, high = PASSWORD_LENGTH
    if len(password or "") < low:
        return f"Use at least {low} characters."
    if len(password) > high:
        return f"Use at most {high} characters."
    context = ["switchboard", *([username.strip()] if username and username.strip() else [])]
    verdict = zxcvbn(password[:ZXCVBN_MAX_INPUT], user_inputs=context)
    if verdict["score"] < PASSWORD_MIN_SCORE:
        warning = verdict["feedback"].get("warning") or "It is too easy to guess."
        return f"Choose a less guessable password: {warning.rstrip('.')}. A few uncommon words together work well."
    return None


def find_user(username: str) -> User | None:
    return db.session.scalar(select(User).where(func.lower(User.username) == username.strip().lower()))


def username_taken(username: str) -> bool:
    return find_user(username) is not None


def create_user(username: str, password: str, role: str = "user") -> User:
    user = User(username=username.strip(), role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.flush()
    return user


def active_admin_count() -> int:
    """Admins who can still sign in: the last of them may not be demoted or disabled (by an admin or by SSO)."""
    return (
        db.session.scalar(
            select(func.count(User.id)).where(
                User.role == "admin", or_(User.is_disabled.is_(False), User.is_disabled.is_(None))
            )
        )
        or 0
    )


class AwaitingApproval(Exception):
    """The right password, for an account that an admin has not approved yet (sign-up policy "approval")."""

    def __init__(self):
        super().__init__("Your account awaits an admin's approval. You can sign in once it is approved.")


def authenticate(username: str, password: str) -> User | None:
    user = find_user(username)
    if user is None or not user.check_password(password):
        return None
    if user.awaiting_approval:
        raise AwaitingApproval()
    return None if user.is_disabled else user


def _duration(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)  # rounded up: "try again in 1 minute" must not be too early
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class LoginThrottled(Exception):
    def __init__(self, retry_after: int):
        self.retry_after = retry_after
        super().__init__(f"Too many failed sign-in attempts from your address. Try again in {_duration(retry_after)}.")


def authenticate_throttled(username: str, password: str, address: str) -> User | None:
    """``authenticate``, refused early (LoginThrottled) after too many failures from this client
    (see webapp.accounts.throttle: failures elsewhere never refuse a client that has not failed)."""
    wait = throttle.seconds_blocked(username, address)
    if wait:
        raise LoginThrottled(wait)
    user = authenticate(username, password)
    if user is None:
        throttle.record_failure(username, address)
    else:
        throttle.clear(username, address)
    return user


# A user's defaults for new conversations: model, system prompt and options.
def save_defaults(user: User, model_id: str, system_prompt: str | None, options: dict) -> None:
    user.default_model = model_id
    user.default_system_prompt = (system_prompt or "").strip() or None
    user.default_options = dict(options)
    db.session.commit()
