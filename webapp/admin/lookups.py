"""What several admin views share: a user or a 404, a refused group change as the flash message, and an optional
number from a form."""

from __future__ import annotations

from flask import abort

from .. import groups
from ..extensions import db
from ..models import User
from . import service


def user_or_404(user_id):
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def group_change(change):
    """A group change that the domain refused becomes the flash message (as ActionRefused does)."""
    try:
        change()
    except groups.GroupError as exc:
        raise service.ActionRefused(str(exc)) from None


def optional_float(value) -> float | None:
    return None if value is None else float(value)
