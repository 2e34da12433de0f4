from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, ValidationError

from ..accounts import password_problem, username_problem, username_taken


def account_rule(problem):
    """A field validator from one of webapp.accounts' rules (``username_problem``, ``password_problem``)."""

    def validate(form, field):
        reason = problem(field.data or "")
        if reason:
            raise ValidationError(reason)

    return validate


USERNAME_RULE = account_rule(username_problem)
PASSWORD_RULE = account_rule(password_problem)


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
    submit = SubmitField("Create account")

    def validate_username(self, field):
        if username_taken(field.data):
            raise ValidationError("That username is taken.")
