"""A model's options as form fields, built from and validated by its pydantic ``Options`` schema.

Used by the conversation settings and the model settings page:

    fields = option_fields(model, {"temperature": 0.2})      # what to render
    options, errors = parse_options(model, request.form)      # {"temperature": 0.2}, {} or {}, {"temperature": "..."}

An empty field means "not set" (the provider's default). Values are checked by the
schema (types, ranges, unknown names) and finally by ``model.validate_options``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError

from . import access
from .access import allowed_models
from .llm import InvalidOptions, Model, get_model, get_providers

FIELD_PREFIX = "option-"


@dataclass
class OptionField:
    name: str
    label: str
    kind: str  # "number", "integer", "boolean" or "text"
    description: str
    value: str  # as shown in the form ("" = not set)
    minimum: float | None = None
    maximum: float | None = None
    error: str | None = None

    @property
    def input_name(self) -> str:
        return FIELD_PREFIX + self.name

    @property
    def step(self) -> str:
        return "1" if self.kind == "integer" else "any"


def _kind(annotation) -> str:
    args = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else ()
    )
    candidates = [a for a in args if a is not type(None)] or [annotation]
    base = candidates[0]
    if base is bool:
        return "boolean"
    if base is int:
        return "integer"
    if base is float:
        return "number"
    return "text"


def _bounds(info) -> tuple[float | None, float | None]:
    minimum = maximum = None
    for item in info.metadata:
        for name in ("ge", "gt"):
            if getattr(item, name, None) is not None:
                minimum = getattr(item, name)
        for name in ("le", "lt"):
            if getattr(item, name, None) is not None:
                maximum = getattr(item, name)
    return minimum, maximum


def _shown(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def option_fields(
    model: Model, values: Mapping | None = None, errors: Mapping | None = None, raw: Mapping | None = None
) -> list[OptionField]:
    """One field per option the model's schema declares, filled from ``values`` (or the submitted ``raw`` form)."""
    values = values or {}
    errors = errors or {}
    fields = []
    for name, info in model.Options.model_fields.items():
        minimum, maximum = _bounds(info)
        shown = raw.get(FIELD_PREFIX + name, "") if raw is not None else _shown(values.get(name))
        fields.append(
            OptionField(
                name=name,
                label=name.replace("_", " ").capitalize(),
                kind=_kind(info.annotation),
                description=info.description or "",
                value=shown,
                minimum=minimum,
                maximum=maximum,
                error=errors.get(name),
            )
        )
    return fields


def parse_options(model: Model, form: Mapping) -> tuple[dict, dict[str, str]]:
    """Read ``option-<name>`` fields; returns (options to store, {name: error}). Empty fields are left unset."""
    raw = {}
    for name in model.Options.model_fields:
        value = (form.get(FIELD_PREFIX + name) or "").strip()
        if value:
            raw[name] = value
    try:
        validated = model.Options.model_validate(raw)
    except ValidationError as exc:
        errors = {}
        for error in exc.errors():
            where = str(error["loc"][0]) if error.get("loc") else "options"
            errors.setdefault(where, error.get("msg", "invalid value"))
        return {}, errors
    options = validated.model_dump(exclude_unset=True, exclude_none=True)
    try:
        model.validate_options(options)  # the same check the Python API makes
    except InvalidOptions as exc:
        return {}, {"options": str(exc)}
    return options, {}


def applicable_options(model: Model, options: Mapping | None) -> dict:
    """The subset of ``options`` the model declares (what survives switching models)."""
    known = model.Options.model_fields
    kept = {name: value for name, value in (options or {}).items() if name in known}
    try:
        model.validate_options(kept)
    except InvalidOptions:
        return {}
    return kept


def usable_models(user) -> list[Model]:
    """The models ``user`` may pick: allowed by the admins' rules, and their provider set up."""
    return allowed_models(user)


def models_by_provider(models: list[Model]) -> list[tuple[str, list[Model]]]:
    """``[(provider label, [models])]`` in registry order, for ``<optgroup>`` pickers."""
    labels = {name: info.get("label") or name for name, info in get_providers().items()}
    groups: dict[str, list[Model]] = {}
    for model in models:
        groups.setdefault(model.provider, []).append(model)
    return [(labels.get(provider, provider), group) for provider, group in groups.items()]


class ModelUnavailable(ValueError):
    """The chosen model does not exist or the user may not use it; ``str(exc)`` says which."""


def usable_model(user, model_id: str) -> Model:
    try:
        return access.usable_model(user, model_id)  # one check, shared by the rest of the request
    except KeyError as exc:
        raise ModelUnavailable(str(exc).strip("'\"")) from None
    except access.ModelNotAllowed:
        raise ModelUnavailable(f"The model {get_model(model_id).model_id} is not available to your account.") from None
