import math
import secrets

from flask_wtf import FlaskForm
from werkzeug.exceptions import BadRequest
from wtforms import HiddenField, MultipleFileField, StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length, ValidationError

from ..message_size import message_too_long

MAX_SYSTEM_PROMPT_LENGTH = 32_000


def _size_rule(form, field):
    """MAX_MESSAGE_CHARS, with the API's wording (webapp.message_size)."""
    problem = message_too_long(field.data or "")
    if problem:
        raise ValidationError(problem)


def _not_blank(message):
    def check(form, field):
        if field.data is not None and not field.data.strip():
            raise ValidationError(message)

    return check


class MessageForm(FlaskForm):
    content = TextAreaField(
        "Message",
        validators=[
            DataRequired(message="Write a message first."),
            _size_rule,
            _not_blank("Write a message first."),
        ],
    )
    # One-time token: a resubmitted form (double click, browser resend) maps to the same message.
    submission_token = HiddenField()
    # Images and PDFs; checked from their bytes by webapp.attachments (the accept list only helps the picker).
    attachments = MultipleFileField("Attach images or PDFs")
    submit = SubmitField("Send")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.submission_token.data:
            self.submission_token.data = secrets.token_urlsafe(24)


class EditMessageForm(MessageForm):
    """A new version of a message; its one-time token finds the version a resent form already created."""

    submit = SubmitField("Save and resend")


class RenameForm(FlaskForm):
    title = StringField(
        "Title", validators=[DataRequired(message="Give it a title."), Length(max=200), _not_blank("Give it a title.")]
    )
    submit = SubmitField("Rename")


class SettingsForm(FlaskForm):
    """Model and system prompt; the options fields come from the model's schema (webapp.model_options)."""

    model = StringField("Model", validators=[DataRequired(message="Pick a model.")])
    system_prompt = TextAreaField("System prompt", validators=[Length(max=MAX_SYSTEM_PROMPT_LENGTH)])
    submit = SubmitField("Save settings")


# -- the status endpoint's query -------------------------------------------------------
MAX_WAIT_SECONDS = 10.0
MAX_CURSOR = 50_000_000  # characters; far beyond any reply


def progress_query(args) -> tuple[int, float]:
    """``cursor`` (characters the reader has) and ``wait`` (seconds to hold the request for new text).

    Both are optional; anything that is not a number in range is a 400 that says so.
    """
    cursor = _number(args, "cursor", int, 0, MAX_CURSOR, "a whole number of characters")
    wait = _number(args, "wait", float, 0.0, MAX_WAIT_SECONDS, "a number of seconds")
    return cursor, wait


def _number(args, name, kind, low, high, meaning):
    raw = args.get(name)
    if raw is None or raw == "":
        return low
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"'{name}' must be {meaning} from {low:g} to {high:g}.")
    return value
