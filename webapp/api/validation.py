"""Request bodies of the account endpoints: per-field messages, as Django REST Framework gives them.

Written out rather than as pydantic models: the seed's API answers every field's problems at once in
DRF's shape (``{"username": ["..."]}``) with its wording, and the rules themselves are the shared ones
of webapp.accounts; a pydantic model would only add a translation layer for its own messages.
"""

from __future__ import annotations

from flask import request

from ..accounts import password_problem, username_problem, username_taken
from ..json_input import InvalidJSON, loads
from .errors import ApiError

REQUIRED = "This field is required."


def json_body() -> dict:
    """The request's JSON object, strictly parsed (webapp.json_input); a 400 that says why otherwise."""
    if not request.is_json:
        raise ApiError(400, "Send a JSON object with 'Content-Type: application/json'.", "invalid_json")
    try:
        body = loads(request.get_data(cache=True))
    except InvalidJSON as exc:
        raise ApiError(400, str(exc), "invalid_json") from None
    except ValueError as exc:
        raise ApiError(400, f"The body is not valid JSON: {str(exc)[:200]}", "invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Send a JSON object with 'Content-Type: application/json'.", "invalid_json")
    return body


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    return value if isinstance(value, str) and value.strip() else None


def token_request_errors(body: dict, names) -> dict[str, list[str]]:
    return {name: [REQUIRED] for name in names if _text(body, name) is None}


def signup_errors(body: dict) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    username, password = _text(body, "username"), body.get("password")
    if username is None:
        errors["username"] = [REQUIRED]
    elif username_problem(username):
        errors["username"] = [username_problem(username)]
    elif username_taken(username):
        errors["username"] = ["A user with that username already exists."]
    if not isinstance(password, str) or not password:
        errors["password"] = [REQUIRED]
    elif problem := password_problem(password, username):
        errors["password"] = [problem]
    return errors
