from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, StringField, SubmitField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp, ValidationError

from ..accounts import username_taken

USERNAME_RULE = Regexp(r"^[A-Za-z0-9_.-]+$", message="Use letters, digits, dots, dashes and underscores only.")


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])
    remember = BooleanField("Keep me signed in")
    submit = SubmitField("Sign in")


class SignupForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(min=3, max=64), USERNAME_RULE])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=256, message="Use at least 8 characters.")])
    confirm = PasswordField("Repeat password", validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")])
    submit = SubmitField("Create account")

    def validate_username(self, field):
        if username_taken(field.data):
            raise ValidationError("That username is taken.")
