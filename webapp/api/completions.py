"""Chat completions for the API: an OpenAI-format request becomes a generation run by the RQ worker.

The request's turns are stored on the generation (``request_messages``, system
messages merged into ``system_prompt``); ``workers.generation.run_generation``
prefers them to a conversation's history. The reply is read back from the
generation's Redis stream (``webapp.live``), as the chat page does, and turned
into OpenAI's ``chat.completion`` object or ``chat.completion.chunk`` events.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import update

from .. import attachments
from ..access import ModelNeedsSetup, ModelNotAllowed, allowed_models, check_model_usable
from ..database import write
from ..extensions import db
from ..generations import LimitReached, QueueUnavailable, enqueue, record
from ..llm import InvalidOptions, LLMError, Model, UnknownModelError, get_model, get_providers, list_provider_models
from ..llm.errors import without_addresses
from ..llm.registry import provider_configured
from ..message_size import message_too_long
from ..models import Generation, User
from ..stopping import stop
from . import content_parts
from .errors import ApiError

log = logging.getLogger(__name__)

ROLES = {"system", "developer", "user", "assistant"}
# OpenAI's sampling options, passed on when the model has an option of that name.
OPENAI_OPTIONS = ("temperature", "top_p", "max_tokens", "frequency_penalty", "presence_penalty", "stop", "seed")
# Request fields that are never model options.
RESERVED = {
    "model",
    "messages",
    "stream",
    "stream_options",
    "n",
    "user",
    "metadata",
    "store",
    "tools",
    "tool_choice",
    "response_format",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "max_completion_tokens",
    "service_tier",
    "modalities",
    "audio",
    "prediction",
    "reasoning_effort",
}


@dataclass
class ChatRequest:
    model: Model
    turns: list[dict]
    system: str | None
    options: dict = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False


# -- models and providers -----------------------------------------------------------


def provider_names() -> list[str]:
    return sorted(get_providers())


def unknown_provider(provider: str) -> ApiError:
    return ApiError(
        400,
        f"Unknown provider {provider!r}. Valid providers: {', '.join(provider_names())}.",
        "unknown_provider",
        extra={"valid_providers": provider_names()},
    )


def supported_models(user: User, provider: str | None) -> list[str]:
    """The models of a provider that ``user`` can use now (asking the provider's API for its list).

    What is offered is what works: a provider that is not set up gets the 400 its models would get in a
    chat, and a listed model passes the same checks a chat with it does (resolve_model)."""
    if not provider:
        raise ApiError(
            400,
            f"The 'provider' query parameter is required. Valid providers: {', '.join(provider_names())}.",
            "missing_provider",
            extra={"valid_providers": provider_names()},
        )
    if provider not in get_providers():
        raise unknown_provider(provider)
    if not provider_configured(provider):
        label = get_providers()[provider]["label"]
        raise ApiError(
            400,
            f"{label} ({provider}) is not set up on this server yet, so its models cannot be used. "
            "Pick another provider, or ask an administrator to set it up.",
            "model_not_configured",
        )
    try:
        return [name for name in list_provider_models(provider) if _offered(user, name, provider)]
    except UnknownModelError:
        raise unknown_provider(provider) from None
    except LLMError as exc:
        label = get_providers()[provider]["label"]
        status = 503 if exc.code in {"provider_unavailable", "provider_timeout", "missing_key"} else 502
        reason = without_addresses(str(exc))
        raise ApiError(status, f"{label} ({provider}) is unavailable right now: {reason}", exc.code) from None


def _offered(user: User, name: str, provider: str) -> bool:
    try:
        resolve_model(user, name, provider)
    except ApiError:
        return False
    return True


def usable_models(user: User) -> list[Model]:
    """The models ``user`` may call now: allowed, and their provider set up."""
    return allowed_models(user)


def resolve_model(user: User, name, provider: str | None) -> Model:
    if not isinstance(name, str) or not name.strip():
        raise ApiError(400, "'model' is required: a Switchboard model id or alias (see /v1/models).", "missing_model")
    if provider is not None and provider not in get_providers():
        raise unknown_provider(provider)
    model, error = None, None
    try:
        model = get_model(name)
    except UnknownModelError as exc:
        error = exc
    if provider is not None and (model is None or model.provider != provider):
        try:
            candidate = get_model(f"{provider}/{name}")
            model = candidate if candidate.provider == provider else None
        except UnknownModelError:
            model = None
        if model is None:
            raise ApiError(
                404,
                f"The model {name!r} is not offered by the {provider} provider "
                f"(see /api/supported-models/?provider={provider}).",
                "model_not_found",
            )
    if model is None:
        raise ApiError(404, str(error), "model_not_found")
    try:
        check_model_usable(user, model.model_id)  # the API's one check of model access
    except ModelNeedsSetup as exc:  # not temporary (a 503 would be retried by clients): a plain 400
        raise ApiError(400, str(exc), "model_not_configured") from None
    except ModelNotAllowed as exc:
        raise ApiError(403, str(exc), "model_not_allowed") from None
    return model


# -- the request ----------------------------------------------------------------------


def _turns(messages) -> tuple[list[dict], str | None]:
    if not isinstance(messages, list) or not messages:
        raise ApiError(
            400, '\'messages\' is required: a non-empty list of {"role", "content"} objects.', "missing_messages"
        )
    turns, system = [], []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise ApiError(400, f"messages[{index}] must be an object.", "invalid_message")
        role = message.get("role")
        if role not in ROLES:
            raise ApiError(
                400, f"messages[{index}].role must be one of system, user, assistant (got {role!r}).", "invalid_role"
            )
        text, files = content_parts.split(message.get("content"), index, role)
        if problem := message_too_long(text):
            raise ApiError(400, f"messages[{index}]: {problem}", "message_too_long")
        if role in ("system", "developer"):
            system.append(text)
        else:
            turns.append({"role": role, "content": text, **({"files": files} if files else {})})
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "The last message (after any system messages) must be the user's.", "invalid_messages")
    return turns, "\n\n".join(system) or None


def _options(model: Model, body: dict) -> dict:
    known = model.Options.model_fields
    raw = {name: body[name] for name in OPENAI_OPTIONS if body.get(name) is not None}
    if body.get("max_completion_tokens") is not None and "max_tokens" not in raw:
        raw["max_tokens"] = body["max_completion_tokens"]
    if isinstance(raw.get("stop"), list):
        if len(raw["stop"]) > 1:
            raise ApiError(400, "Only one stop sequence is supported.", "invalid_options")
        raw["stop"] = raw["stop"][0] if raw["stop"] else None
    # The model's own options (e.g. echo's "delay") may be given too; OpenAI options it lacks are ignored.
    raw.update(
        {
            name: value
            for name, value in body.items()
            if name in known and name not in RESERVED and name not in raw and value is not None
        }
    )
    options = {name: value for name, value in raw.items() if name in known and value is not None}
    try:
        model.validate_options(options)
    except InvalidOptions as exc:
        raise ApiError(400, str(exc), "invalid_options") from None
    return options


def parse_request(user: User, body, provider: str | None = None) -> ChatRequest:
    """The OpenAI-format request, checked field by field (each failure is OpenAI's error shape with the
    field's own code); the model's options are validated by its pydantic ``Options`` class."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.", "invalid_json")
    turns, system = _turns(body.get("messages"))
    model = resolve_model(user, body.get("model"), provider)
    turns = content_parts.load(model, turns)  # files read and checked once the model may be used
    if body.get("n") not in (None, 1):
        raise ApiError(400, "Only n=1 is supported.", "invalid_options")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "'stream' must be true or false.", "invalid_stream")
    stream_options = body.get("stream_options") or {}
    include_usage = bool(isinstance(stream_options, dict) and stream_options.get("include_usage"))
    return ChatRequest(model, turns, system, _options(model, body), stream, include_usage)


def start(user: User, chat: ChatRequest) -> Generation:
    """Record the generation (committed first, through the one recorder), then queue its job."""
    has_files = any(turn.get("uploads") for turn in chat.turns)

    def save() -> Generation:
        generation = record(
            user_id=user.id,
            source="api",
            model_id=chat.model.model_id,
            provider=chat.model.provider,
            system_prompt=chat.system,
            options=chat.options,
            request_messages=None if has_files else chat.turns,
            streams=chat.stream,
        )
        if has_files:  # its files name the generation: stored once it has its id
            generation.request_messages = _with_attachment_ids(user, chat.turns, generation)
            db.session.execute(
                update(Generation)
                .where(Generation.id == generation.id)
                .values(request_messages=generation.request_messages)
                .execution_options(synchronize_session=False)
            )
        return generation

    generation = write(save, keep_loaded=True)  # the user is read again at once to take from their limits
    try:
        enqueue(generation, user=user)
    except LimitReached as exc:
        raise ApiError(
            429,
            str(exc),
            exc.code,
            headers={"Retry-After": str(exc.retry_after)},
            type="insufficient_quota" if exc.code == "insufficient_quota" else None,
        ) from None
    except QueueUnavailable as exc:
        raise ApiError(503, str(exc).replace(" Your message is saved;", ""), "queue_unavailable") from None
    return generation


def _with_attachment_ids(user: User, turns: list[dict], generation: Generation) -> list[dict]:
    """The turns as stored: each turn's files stored (once per content) and named by their ids."""
    stored = []
    for turn in turns:
        uploads = turn.get("uploads")
        turn = {"role": turn["role"], "content": turn["content"]}
        if uploads:
            links = attachments.attach(user.id, uploads, generation=generation)
            db.session.flush()
            turn["attachments"] = [link.id for link in links]
        stored.append(turn)
    return stored


# -- cancelling -----------------------------------------------------------------------


def cancel(generation_id: int) -> None:
    """Cancel a generation nobody is waiting for: the same stop as the chat's Stop button
    (a queued one never runs; a running one closes its provider stream and keeps its text)."""
    db.session.rollback()
    generation = db.session.get(Generation, generation_id)
    if generation is None:
        return
    try:
        stop(generation)
    except QueueUnavailable:
        log.warning("could not cancel generation %s: Redis is unavailable", generation_id)
