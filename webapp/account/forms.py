from flask_wtf import FlaskForm
from wtforms import HiddenField, StringField, SubmitField
from wtforms.validators import AnyOf, DataRequired, Length

THEMES = ("system", "light", "dark")


class CreateApiKeyForm(FlaskForm):
    name = StringField(
        "Name", validators=[DataRequired(message="Name the key (e.g. the tool that will use it)."), Length(max=100)]
    )
    submit = SubmitField("Create key")


class RevokeApiKeyForm(FlaskForm):
    submit = SubmitField("Revoke")


class EndSessionForm(FlaskForm):
    submit = SubmitField("End")


class EndAllSessionsForm(FlaskForm):
    submit = SubmitField("Sign out everywhere")


class ThemeForm(FlaskForm):
    theme = HiddenField(validators=[AnyOf(THEMES)])
