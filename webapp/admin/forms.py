from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import URL, DataRequired, Email, EqualTo, Length, NumberRange, Optional, Regexp

from ..auth.forms import PASSWORD_RULE, USERNAME_RULE

ROLE_CHOICES = ["user", "admin"]


class ProviderForm(FlaskForm):
    enabled = BooleanField("Enabled")
    base_url = StringField(
        "Base URL",
        validators=[Optional(), Length(max=500), URL(require_tld=False, message="Enter a full URL (http://…).")],
    )
    # Never pre-filled: a stored key is not sent back to the browser.
    api_key = PasswordField("New API key", validators=[Optional(), Length(max=500)])
    clear_key = BooleanField("Remove the stored key")
    # litellm: the LLM_MODELS dict as JSON (secrets shown masked); inhouse: the model name to use.
    models_json = TextAreaField(
        "Models (JSON: model name → litellm arguments)",
        validators=[Optional(), Length(max=20000)],
        render_kw={"rows": 6},
    )
    model_name = StringField(
        "Model name (default: the first the server lists)", validators=[Optional(), Length(max=200)]
    )
    submit = SubmitField("Save")


class ActionForm(FlaskForm):
    """A button that only needs the CSRF token (test connection, remove alias, …)."""

    submit = SubmitField("Go")


class ModelsForm(FlaskForm):
    default_model = SelectField("Default model", choices=[], validate_choice=True)
    enabled = SelectMultipleField("Enabled", choices=[], validate_choice=True)
    restrict_user = BooleanField("Limit the user role to the models ticked")
    user_models = SelectMultipleField("user", choices=[], validate_choice=True)
    restrict_admin = BooleanField("Limit the admin role to the models ticked")
    admin_models = SelectMultipleField("admin", choices=[], validate_choice=True)
    submit = SubmitField("Save models")

    def set_choices(self, model_ids: list[str], default_ids: list[str] | None = None) -> None:
        """``default_ids``: the models that can be the default (their provider is on and set up)."""
        choices = list(model_ids)
        defaults = choices if default_ids is None else list(default_ids)
        self.default_model.choices = [SelectChoice("", "(configuration default)")] + [SelectChoice(m) for m in defaults]
        for field in (self.enabled, self.user_models, self.admin_models):
            field.choices = choices


class AliasForm(FlaskForm):
    alias = StringField(
        "Alias",
        validators=[
            DataRequired(),
            Length(max=100),
            Regexp(r"^[A-Za-z0-9_.:/-]+$", message="No spaces or odd characters."),
        ],
    )
    model = StringField("Model id or alias", validators=[DataRequired(), Length(max=200)])
    submit = SubmitField("Add alias")


class RemoveAliasForm(FlaskForm):
    alias = HiddenField(validators=[DataRequired()])
    submit = SubmitField("Remove")


class CreateUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), USERNAME_RULE])
    password = PasswordField("Password", validators=[DataRequired(), PASSWORD_RULE])
    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Create user")


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)
    submit = SubmitField("Change role")


class StatusForm(FlaskForm):
    disabled = HiddenField()  # "1" to disable, "0" to enable
    submit = SubmitField("Apply")


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[DataRequired(), PASSWORD_RULE])
    confirm = PasswordField(
        "Repeat", validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")]
    )
    submit = SubmitField("Reset password")


MAX_DOLLARS = 10**7


def _rpm(label):
    return IntegerField(label, validators=[Optional(), NumberRange(min=0, max=100000)])


def _tpd(label):
    return IntegerField(label, validators=[Optional(), NumberRange(min=0, max=10**12)])


def _dollars(label):
    return DecimalField(
        label,
        places=None,
        validators=[Optional(), NumberRange(min=0, max=MAX_DOLLARS, message="Enter an amount from 0 to 10,000,000.")],
    )


class LimitsForm(FlaskForm):
    requests_per_minute = _rpm("Requests per minute")
    tokens_per_day = _tpd("Tokens per day")
    monthly_budget = _dollars("Dollars per month (UTC)")
    submit = SubmitField("Save limits")


class TeamSettingsForm(FlaskForm):
    """Site-wide team settings on the admin home (docs/teams.md)."""

    sso_allow_linking = BooleanField("Single sign-on may take over a local account of the same name (verified email)")
    share_public_links = BooleanField("Shared conversation links open for anyone with the link, signed in or not")
    submit = SubmitField("Save")


class BreakGlassForm(FlaskForm):
    break_glass = HiddenField()  # "1" to mark, "0" to unmark
    submit = SubmitField("Apply")


class GroupNameForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    submit = SubmitField("Save")


class GroupRulesForm(FlaskForm):
    models = SelectMultipleField("Models its members may use (besides their role's)", choices=[], validate_choice=True)
    member_requests_per_minute = _rpm("Requests per minute, each member")
    member_tokens_per_day = _tpd("Tokens per day, each member")
    member_monthly_budget = _dollars("Dollars per month, each member")
    pooled_requests_per_minute = _rpm("Requests per minute, the whole group")
    pooled_tokens_per_day = _tpd("Tokens per day, the whole group")
    pooled_monthly_budget = _dollars("Dollars per month, the whole group")
    submit = SubmitField("Save rules")


class MemberForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    submit = SubmitField("Add member")


class PrimaryGroupForm(FlaskForm):
    group = SelectField("Primary group (charged for pooled limits)", choices=[], validate_choice=True)
    submit = SubmitField("Set primary group")


class PriceForm(FlaskForm):
    model = HiddenField(validators=[DataRequired(), Length(max=200)])
    input_price = _dollars("Input, $ per million tokens")
    output_price = _dollars("Output, $ per million tokens")
    submit = SubmitField("Save price")


class FallbackForm(FlaskForm):
    """One model's fallback chain: the models in order, and the failures that move on to the next."""

    model = HiddenField(validators=[DataRequired(), Length(max=200)])
    fallbacks = StringField("Fallbacks, in order (comma separated)", validators=[Optional(), Length(max=2000)])
    on = SelectMultipleField("Move on when", choices=[], validate_choice=True)
    submit = SubmitField("Save fallbacks")


class SignupPolicyForm(FlaskForm):
    policy = SelectField("Sign-up policy", choices=[])
    submit = SubmitField("Save policy")


class InvitationForm(FlaskForm):
    email = StringField(
        "Only for this email (optional)",
        validators=[Optional(), Length(max=254), Email(message="Enter an email address.")],
    )
    days = SelectField("Valid for", choices=[], coerce=int)
    submit = SubmitField("Create invitation")
