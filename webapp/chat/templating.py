"""What the chat templates get: model setup helpers, reply helpers, a failure's plain detail, attachment limits."""

from __future__ import annotations

from flask_login import current_user

from .. import attachments, fallbacks
from ..access import needs_setup_models, setup_problem
from ..generations import (
    failure_headline,
    retry_after_seconds,
)
from ..llm import get_model
from ..llm.errors import without_addresses
from ..markdown import render_markdown
from . import bp


@bp.app_context_processor
def model_setup_helpers():
    """For model pickers (here and on the model settings page): admins also see the models that need
    setup, greyed, with why; users never see them."""

    def models_needing_setup():
        if not getattr(current_user, "is_admin", False):
            return []
        return [(model, setup_problem(model, for_admin=True)) for model in needs_setup_models(current_user)]

    return {"models_needing_setup": models_needing_setup}


@bp.app_template_filter("failure_detail")
def failure_detail(error: str | None) -> str | None:
    """A failed reply's detail as the signed-in user may see it: admins get it whole, with the provider's
    address; everyone else the provider's name and the reason (webapp.llm.errors.without_addresses)."""
    if error is None or getattr(current_user, "is_admin", False):
        return error
    return without_addresses(error)


@bp.context_processor
def reply_helpers():
    return {
        "render_markdown": render_markdown,
        "failure_headline": failure_headline,
        "retry_after_seconds": retry_after_seconds,
        "fallback_trail": fallbacks.trail_sentence,
        "attempt_said": fallbacks.attempt_said,
        "continuation_model": lambda generation: fallbacks.continuation_model(current_user, generation),
        "model_reads_pdf": _model_reads_pdf,
        "file_size": _file_size,
        "attachment_types": attachments.allowed_types(),
    }


def _model_reads_pdf(model_id: str) -> bool:
    try:
        return get_model(model_id).capabilities()[1]
    except KeyError:
        return True  # a removed model: nothing to say about how it read the file


def _file_size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"


def attachment_limits(model, models=None) -> dict:
    """What the composer tells (and its script checks before sending): limits, types, whether the model sees."""
    return {
        "files": attachments.max_files(),
        "file_bytes": attachments.max_file_bytes(),
        "types": attachments.allowed_types(),
        "describe": attachments.describe_limits(),
        "reads_images": model.capabilities()[0] if model is not None else True,
        # For a new chat's model picker: the composer says at once when the chosen model cannot see.
        "vision_models": [m.model_id for m in models if m.capabilities()[0]] if models is not None else None,
    }
