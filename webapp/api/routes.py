"""Views of ``/api/`` and ``/v1/``: validate, call one domain function, commit, respond."""

from __future__ import annotations

from flask import Response, current_app, jsonify, render_template, request, stream_with_context

from .. import attachments, signups, sso, usage_summary
from ..accounts import AwaitingApproval, LoginThrottled, authenticate_throttled, find_user
from ..accounts.throttle import client_address
from ..extensions import db
from ..llm import get_aliases
from ..message_size import body_too_large
from . import answers, api_bp, completions, intake, tokens, v1_bp
from .auth import api_login_required, current_api_user, sign_in
from .errors import ApiError
from .openapi import openapi_spec
from .validation import json_body, signup_errors, token_request_errors

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def field_errors(errors: dict[str, list[str]]) -> ApiError:
    summary = " ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
    return ApiError(400, summary, "invalid_fields", extra=errors)


# -- accounts and tokens ---------------------------------------------------------------


@api_bp.post("/signup/")
def signup():
    if not sso.local_signup_allowed():
        raise ApiError(403, "Accounts are made by signing in with single sign-on.", "signup_disabled")
    body = json_body()
    invitation = body.get("invitation") if isinstance(body.get("invitation"), str) else None
    email = body.get("email") if isinstance(body.get("email"), str) else None
    try:
        signups.check_allowed(invitation, email)  # a closed door before the fields' problems
        errors = signup_errors(body)
        if errors:
            raise field_errors(errors)
        result = signups.sign_up(body["username"], body["password"], client_address(), invitation, email)
    except signups.SignupRefused as exc:
        headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
        raise ApiError(exc.status, str(exc), exc.code, headers=headers) from None
    db.session.commit()
    answer = {"message": result.message}
    if result.awaiting_approval:
        answer["status"] = "awaiting_approval"
    return jsonify(answer), 201


@api_bp.post("/token/")
def token_obtain():
    body = json_body()
    errors = token_request_errors(body, ("username", "password"))
    if errors:
        raise field_errors(errors)
    if not sso.password_sign_in_allowed(find_user(body["username"])):
        raise ApiError(403, "Password sign-in is turned off here: use single sign-on.", "password_sign_in_disabled")
    try:  # failures count towards the same throttle as the sign-in page's
        user = authenticate_throttled(body["username"], body["password"], client_address())
    except LoginThrottled as exc:
        raise ApiError(429, str(exc), "login_throttled", headers={"Retry-After": exc.retry_after}) from None
    except AwaitingApproval as exc:
        raise ApiError(403, str(exc), "awaiting_approval") from None
    if user is None:
        raise ApiError(401, "No active account found with the given credentials.", "invalid_credentials")
    pair = tokens.issue_pair(user)
    db.session.commit()
    return jsonify(pair)


@api_bp.post("/token/refresh/")
def token_refresh():
    body = json_body()
    errors = token_request_errors(body, ("refresh",))
    if errors:
        raise field_errors(errors)
    pair = tokens.rotate(body["refresh"])  # the presented refresh token is retired
    db.session.commit()
    return jsonify(pair)


# -- models ------------------------------------------------------------------------------


@api_bp.get("/supported-models/")
@api_login_required
def supported_models():
    return jsonify({"models": completions.supported_models(current_api_user(), request.args.get("provider"))})


@api_bp.get("/usage/")
@api_login_required
def usage():
    report = usage_summary.usage_report(current_api_user())
    report.pop("_rows")
    return jsonify(report)


@v1_bp.get("/models")
@api_login_required
def list_models():
    models = completions.usable_models(current_api_user())
    data = [{"id": m.model_id, "object": "model", "created": 0, "owned_by": m.provider} for m in models]
    by_id = {m.model_id: m for m in models}
    data += [
        {"id": alias, "object": "model", "created": 0, "owned_by": by_id[target].provider, "alias_of": target}
        for alias, target in sorted(get_aliases().items())
        if target in by_id and alias not in by_id
    ]
    return jsonify({"object": "list", "data": data})


@v1_bp.get("/models/<path:model_id>")
@api_login_required
def retrieve_model(model_id):
    model = completions.resolve_model(current_api_user(), model_id, None)
    return jsonify({"id": model_id, "object": "model", "created": 0, "owned_by": model.provider})


# -- chat completions --------------------------------------------------------------------


CHAT_ENDPOINTS = {"api.chat_completions", "v1.v1_chat_completions"}


def _upload_limit(endpoint, values):
    """Chat requests may carry files (base64): their size limit follows the attachment limits, and a larger
    request is refused from its Content-Length before its body is read."""
    if endpoint not in CHAT_ENDPOINTS:
        return
    limit = attachments.request_limit()
    if request.content_length is not None and request.content_length > limit:
        message = body_too_large(limit, f"Attachments: {attachments.describe_limits()}.")  # the chat form's words
        raise ApiError(413, message, "request_too_large")
    request.max_content_length = limit


for _blueprint in (api_bp, v1_bp):
    _blueprint.url_value_preprocessor(_upload_limit)


def _chat(provider: str | None):
    # Taken in a few at a time per caller (webapp.api.intake): before any database work, released before the wait.
    with intake.in_turn(request.headers.get("Authorization", ""), current_app.config["API_CALLS_TAKEN_IN_AT_ONCE"]):
        user = sign_in()
        chat = completions.parse_request(user, json_body(), provider)
        generation = completions.start(user, chat)
    if chat.stream:
        events, headers = answers.stream_events(generation, chat.include_usage)
        return Response(stream_with_context(events), mimetype="text/event-stream", headers={**SSE_HEADERS, **headers})
    answer = answers.wait_until_finished(generation)
    return jsonify(answers.completion(answer)), 200, answer.fallback_header


@api_bp.post("/chat/completions/", strict_slashes=False)
def chat_completions():  # signed in by _chat, in its turn
    return _chat(request.args.get("provider") or None)


@v1_bp.post("/chat/completions")
def v1_chat_completions():  # signed in by _chat, in its turn
    return _chat(None)


# -- description -------------------------------------------------------------------------


@api_bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_spec())


@api_bp.get("/docs")
def docs():
    return render_template("api/docs.html", spec=openapi_spec())
