import redis
from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit, fallbacks, groups, prices, signups, usage
from ..extensions import db
from ..llm import UnknownModelError, get_models
from ..provider_checks import start_connection_test
from . import bp, service
from .forms import (
    ActionForm,
    AliasForm,
    FallbackForm,
    ModelsForm,
    PriceForm,
    ProviderForm,
    RemoveAliasForm,
)
from .lookups import optional_float

USAGE_DAY_CHOICES = (7, 30, 90)


@bp.route("/")
def index():
    return render_template(
        "admin/index.html",
        queue=service.queue_summary(),
        awaiting=signups.awaiting_count(),
        policy=signups.policy(),
        model_states=service.model_states(),
    )


# -- providers ---------------------------------------------------------------------------


def _provider_forms(overview):
    forms = {}
    for p in overview:
        form = ProviderForm(prefix=p["name"], formdata=None)
        form.enabled.data = p["enabled"]
        form.base_url.data = p["base_url"] or ""
        if p["name"] == "litellm":
            form.models_json.data = service.provider_models_value("litellm")
        elif p["name"] == "inhouse":
            form.model_name.data = service.provider_models_value("inhouse")
        forms[p["name"]] = form
    return forms


@bp.route("/providers")
def providers():
    overview = service.providers_overview()
    pending = any(p["test"] and p["test"]["status"] == "pending" and not p["test"]["stale"] for p in overview)
    return render_template(
        "admin/providers.html",
        providers=overview,
        forms=_provider_forms(overview),
        action=ActionForm(),
        refresh=pending,
    )


@bp.route("/providers/<name>", methods=["POST"])
def update_provider(name):
    if not service.known_provider(name):
        abort(404)
    form = ProviderForm(prefix=name)
    valid = form.validate_on_submit()
    if valid and name in ("litellm", "inhouse"):
        try:
            service.update_provider_models(
                current_user, name, form.models_json.data if name == "litellm" else form.model_name.data
            )
        except ValueError as exc:
            form.models_json.errors = [str(exc)]
            valid = False
    if not valid:
        db.session.rollback()
        overview = service.providers_overview()
        forms = _provider_forms(overview)
        forms[name] = form
        return render_template(
            "admin/providers.html", providers=overview, forms=forms, action=ActionForm(), refresh=False
        ), 400
    service.update_provider(
        current_user,
        name,
        enabled=form.enabled.data,
        base_url=form.base_url.data,
        api_key=form.api_key.data,
        clear_key=form.clear_key.data,
    )
    db.session.commit()
    flash(f"Saved the {name} provider.", "success")
    return redirect(url_for("admin.providers") + f"#provider-{name}")


@bp.route("/providers/<name>/test", methods=["POST"])
def test_provider(name):
    if not service.known_provider(name):
        abort(404)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        start_connection_test(current_user, name)
    except redis.RedisError:
        flash("The job queue is unavailable, so the test could not start.", "error")
        return redirect(url_for("admin.providers"))
    db.session.commit()
    flash(f"Testing the {name} connection…", "info")
    return redirect(url_for("admin.providers") + f"#provider-{name}")


# -- models ------------------------------------------------------------------------------


def _fallback_forms(overview, failed=None):
    """One form per model, filled from its stored chain (``failed``: the form sent back with its errors)."""
    chains = service.fallback_chains()
    forms = {}
    for model in overview["models"]:
        chain = chains.get(model.model_id) or fallbacks.Chain()
        form = FallbackForm(formdata=None)
        form.model.data = model.model_id
        form.fallbacks.data = ", ".join(chain.fallbacks)
        form.on.data = [k for k in fallbacks.KINDS if k in chain.moves_on]
        forms[model.model_id] = form
    if failed is not None:
        forms[failed.model.data] = failed
    for form in forms.values():
        form.on.choices = list(fallbacks.KINDS.items())
    return forms


def _models_page(form=None, alias_form=None, status=200, fallback_form=None):
    overview = service.models_overview()
    ids = [m.model_id for m in overview["models"]]
    if form is None:
        form = ModelsForm(formdata=None)
        form.set_choices(ids, service.default_model_choices())
        form.default_model.data = overview["default_model"] or ""
        form.enabled.data = [m for m in ids if m not in overview["disabled"]]
        for role in ("user", "admin"):
            allowed = overview["role_models"][role]
            getattr(form, f"restrict_{role}").data = allowed is not None
            getattr(form, f"{role}_models").data = list(allowed or [])
    return render_template(
        "admin/models.html",
        overview=overview,
        prices=service.model_prices(),
        price_form=PriceForm(formdata=None),
        known_price=prices.unit_prices,
        form=form,
        alias_form=alias_form or AliasForm(),
        remove_form=RemoveAliasForm(),
        fallback_forms=_fallback_forms(overview, fallback_form),
    ), status


@bp.route("/models")
def models():
    return _models_page()


@bp.route("/models", methods=["POST"])
def update_models():
    form = ModelsForm()
    form.set_choices([m.model_id for m in get_models()], service.default_model_choices())
    if not form.validate_on_submit():
        return _models_page(form=form, status=400)
    service.update_models(
        current_user,
        enabled=form.enabled.data or [],
        default_model=form.default_model.data or None,
        role_models={
            "user": (form.user_models.data or []) if form.restrict_user.data else None,
            "admin": (form.admin_models.data or []) if form.restrict_admin.data else None,
        },
    )
    if request.form.get("capabilities_shown"):  # the table's sight columns were on the page that was sent
        service.update_capabilities(
            current_user, images=request.form.getlist("reads_images"), pdf=request.form.getlist("reads_pdf")
        )
    db.session.commit()
    flash("Saved the model settings.", "success")
    return redirect(url_for("admin.models"))


@bp.route("/models/prices", methods=["POST"])
def set_model_price():
    form = PriceForm()
    known = {m.model_id for m in get_models()}
    if not form.validate_on_submit() or form.model.data not in known:
        errors = [e for field in (form.input_price, form.output_price) for e in field.errors]
        flash(f"{form.model.data}: " + (errors[0] if errors else "enter prices in dollars, such as 2.5."), "error")
        return _models_page(status=400)
    service.set_model_price(
        current_user, form.model.data, optional_float(form.input_price.data), optional_float(form.output_price.data)
    )
    db.session.commit()
    flash(f"Saved the price of {form.model.data}.", "success")
    return redirect(url_for("admin.models") + "#prices")


@bp.route("/models/fallbacks", methods=["POST"])
def set_fallbacks():
    form = FallbackForm()
    form.on.choices = list(fallbacks.KINDS.items())
    known = {m.model_id for m in get_models()}
    if not form.validate_on_submit() or form.model.data not in known:
        if form.model.data not in known:
            abort(400)
        return _models_page(status=400, fallback_form=form)
    try:
        service.set_fallbacks(current_user, form.model.data, form.fallbacks.data or "", form.on.data or [])
    except ValueError as exc:
        form.fallbacks.errors = [str(exc)]
        return _models_page(status=400, fallback_form=form)
    db.session.commit()
    flash(f"Saved the fallbacks of {form.model.data}.", "success")
    return redirect(url_for("admin.models") + "#fallbacks")


@bp.route("/models/aliases", methods=["POST"])
def add_alias():
    form = AliasForm()
    if not form.validate_on_submit():
        return _models_page(alias_form=form, status=400)
    try:
        service.add_alias(current_user, form.alias.data.strip(), form.model.data.strip())
    except UnknownModelError as exc:
        form.model.errors.append(str(exc).strip("'\""))
        return _models_page(alias_form=form, status=400)
    db.session.commit()
    flash(f"Alias {form.alias.data} saved.", "success")
    return redirect(url_for("admin.models") + "#aliases")


@bp.route("/models/aliases/remove", methods=["POST"])
def remove_alias():
    form = RemoveAliasForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        service.delete_alias(current_user, form.alias.data)
    except KeyError:
        flash(f"{form.alias.data} is not a stored alias (built-in aliases cannot be removed).", "error")
        return redirect(url_for("admin.models") + "#aliases")
    db.session.commit()
    flash(f"Alias {form.alias.data} removed.", "success")
    return redirect(url_for("admin.models") + "#aliases")


# -- users -------------------------------------------------------------------------------


# -- groups ------------------------------------------------------------------------------


# -- usage and audit ---------------------------------------------------------------------


def _usage_args():
    days = request.args.get("days", 30, type=int)
    days = days if days in USAGE_DAY_CHOICES else 30
    group_id = request.args.get("group", type=int)
    return days, request.args.get("user", "").strip()[:64] or None, group_id


@bp.route("/usage")
def usage_page():
    days, username, group_id = _usage_args()
    rows = usage.usage_rows(days, username, group_id=group_id)
    return render_template(
        "admin/usage.html",
        rows=rows,
        totals=usage.totals(rows),
        chart=usage.daily_chart(rows, days),
        days=days,
        day_choices=USAGE_DAY_CHOICES,
        username=username or "",
        groups=[g for g, _count in groups.all_groups()],
        group_id=group_id,
        by_group=usage.by_group(rows),
    )


def _csv(body: str, filename: str) -> Response:
    return Response(body, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.route("/usage.csv")
def usage_csv():
    days, username, group_id = _usage_args()
    return _csv(usage.to_csv(usage.usage_rows(days, username, group_id=group_id)), f"switchboard-usage-{days}d.csv")


@bp.route("/usage-by-group.csv")
def usage_groups_csv():
    days, username, group_id = _usage_args()
    rows = usage.usage_rows(days, username, group_id=group_id)
    return _csv(usage.groups_csv(rows), f"switchboard-usage-by-group-{days}d.csv")


@bp.route("/audit")
def audit_log():
    query = request.args.get("q", "").strip()[:100]
    events, pages = audit.events(request.args.get("page", 1, type=int), query)
    return render_template(
        "admin/audit.html", events=events, pages=pages, page=request.args.get("page", 1, type=int), query=query
    )


# -- sign-up -----------------------------------------------------------------------------
