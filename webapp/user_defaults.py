"""A user's defaults for new conversations: model, system prompt and options."""

from __future__ import annotations

from .extensions import db
from .models import User


def save_defaults(user: User, model_id: str, system_prompt: str | None, options: dict) -> None:
    user.default_model = model_id
    user.default_system_prompt = (system_prompt or "").strip() or None
    user.default_options = dict(options)
    db.session.commit()
