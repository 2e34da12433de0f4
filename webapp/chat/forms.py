import secrets

from flask_wtf import FlaskForm
from wtforms import HiddenField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

MAX_MESSAGE_LENGTH = 32_000


class MessageForm(FlaskForm):
    content = TextAreaField(
        "Message",
        validators=[DataRequired(message="Write a message first."), Length(max=MAX_MESSAGE_LENGTH)],
    )
    # One-time token: a resubmitted form (double click, browser resend) maps to the same message.
    submission_token = HiddenField()
    submit = SubmitField("Send")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if not self.submission_token.data:
            self.submission_token.data = secrets.token_urlsafe(24)

    def validate_content(self, field):
        if field.data is not None and not field.data.strip():
            from wtforms.validators import ValidationError

            raise ValidationError("Write a message first.")
