from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from ..accounts import password_problem, username_problem, username_taken


def account_rule(problem):
    """A field validator from one of webapp.accounts' rules (``username_problem``, ``password_problem``)."""

    def validate(form, field):
        reason = problem(field.data or "")
        if reason:
            raise ValidationError(reason)

    return validate


def PASSWORD_RULE(form, field):  # noqa: N802 - used like the other validator constants
    """webapp.accounts' password rule, with the form's username (if it has one) as context."""
    username = form.username.data if "username" in form else None
    reason = password_problem(field.data or "", username)
    if reason:
        raise ValidationError(reason)


USERNAME_RULE = account_rule(username_problem)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Sign in")


class SignupForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), USERNAME_RULE])
    password = PasswordField("Password", validators=[DataRequired(), PASSWORD_RULE])
    confirm = PasswordField(
        "Repeat password", validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")]
    )
    # Sign-up by invitation: the link's token, and the address an invitation may be tied to.
    invitation = HiddenField()
    email = EmailField("Email (the one your invitation was sent to)", validators=[Optional(), Length(max=254)])
    submit = SubmitField("Create account")

    def validate_username(self, field):
        if username_taken(field.data):
            raise ValidationError("That username is taken.")
