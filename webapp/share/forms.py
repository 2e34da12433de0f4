from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SubmitField


class ShareForm(FlaskForm):
    include_system_prompt = BooleanField("Include the instructions to the model (system prompt)")
    next = HiddenField()
    submit = SubmitField("Create share link")


class LinkActionForm(FlaskForm):
    """Refresh, revoke or continue: only the CSRF token (and where to go back to)."""

    next = HiddenField()
    submit = SubmitField("Go")
