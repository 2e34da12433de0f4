"""Helpers shared by the admin tests."""

from __future__ import annotations

from sqlalchemy import select

from tests.support.forms import csrf_token
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.models import User

PASSWORD = "correct horse"


def make_user(app, username: str, role: str = "user", password: str = PASSWORD) -> int:
    with app.app_context():
        user = create_user(username, password, role=role)
        db.session.commit()
        return user.id


def get_user(app, username: str) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == username))
        db.session.expunge(user)
        return user


def post(client, action: str, data: dict | None = None, page: str = "/admin/", token_field: str = "csrf_token"):
    """POST ``data`` to ``action`` with a CSRF token fetched from ``page``."""
    token = csrf_token(client, page)
    return client.post(action, data={**(data or {}), token_field: token})


def save_provider(
    client, name: str, *, enabled: bool = True, base_url: str = "", api_key: str = "", clear_key: bool = False
):
    data = {f"{name}-base_url": base_url, f"{name}-api_key": api_key}
    if enabled:
        data[f"{name}-enabled"] = "y"
    if clear_key:
        data[f"{name}-clear_key"] = "y"
    return post(client, f"/admin/providers/{name}", data, page="/admin/providers", token_field=f"{name}-csrf_token")


def save_models(
    client,
    *,
    enabled: list[str],
    default: str = "",
    user_models: list[str] | None = None,
    admin_models: list[str] | None = None,
):
    data = {"enabled": enabled, "default_model": default}
    if user_models is not None:
        data["restrict_user"] = "y"
        data["user_models"] = user_models
    if admin_models is not None:
        data["restrict_admin"] = "y"
        data["admin_models"] = admin_models
    return post(client, "/admin/models", data, page="/admin/models")
