from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField, SubmitField, TextAreaField
from wtforms.validators import DataRequired, Length

from ..accounts import save_defaults
from ..conversations import default_model_id
from ..llm import get_model
from ..model_options import (
    ModelUnavailable,
    applicable_options,
    models_by_provider,
    option_fields,
    parse_options,
    usable_model,
    usable_models,
)
from . import bp


class DefaultsForm(FlaskForm):
    model = StringField("Default model", validators=[DataRequired(message="Pick a model.")])
    system_prompt = TextAreaField("Default system prompt", validators=[Length(max=32_000)])
    submit = SubmitField("Save defaults")


@bp.before_request
@login_required
def require_login():
    """For signed-in users only."""


def _render(form, option_errors=None, option_raw=None, status=200):
    model_id = default_model_id(current_user)
    model = get_model(model_id)
    models = usable_models(current_user)
    return render_template(
        "model_settings/index.html",
        form=form,
        model=model,
        model_groups=models_by_provider(models),
        option_fields=option_fields(model, current_user.default_options, option_errors, option_raw),
        option_errors=option_errors or {},
        default_model_id=model_id,
    ), status


@bp.route("/", methods=["GET", "POST"])
def index():
    if request.method == "GET":
        form = DefaultsForm(
            formdata=None, model=default_model_id(current_user), system_prompt=current_user.default_system_prompt or ""
        )
        return _render(form)
    form = DefaultsForm()
    if not form.validate_on_submit():
        return _render(form, status=400)
    try:
        model = usable_model(current_user, form.model.data)
    except ModelUnavailable as exc:
        form.model.errors = [str(exc)]
        return _render(form, status=400)
    if model.model_id != default_model_id(current_user):
        options = applicable_options(model, current_user.default_options)
        message = f"New conversations now use {model.model_id}. Its options are below."
    else:
        options, errors = parse_options(model, request.form)
        if errors:
            return _render(form, errors, request.form, status=400)
        message = "Defaults saved. They apply to new conversations."
    save_defaults(current_user, model.model_id, form.system_prompt.data, options)
    flash(message, "success")
    return redirect(url_for("model_settings.index"))
