import redis
from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import audit, groups, limits, prices, signups, usage
from ..extensions import db
from ..llm import UnknownModelError, get_models
from ..models import Group, User
from ..provider_checks import start_connection_test
from . import bp, service
from .forms import (
    ActionForm,
    AliasForm,
    CreateUserForm,
    GroupNameForm,
    GroupRulesForm,
    InvitationForm,
    LimitsForm,
    MemberForm,
    ModelsForm,
    PasswordForm,
    PriceForm,
    PrimaryGroupForm,
    ProviderForm,
    RemoveAliasForm,
    RoleForm,
    SignupPolicyForm,
    StatusForm,
)

USAGE_DAY_CHOICES = (7, 30, 90)


@bp.route("/")
def index():
    return render_template(
        "admin/index.html", queue=service.queue_summary(), awaiting=signups.awaiting_count(), policy=signups.policy()
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


def _models_page(form=None, alias_form=None, status=200):
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
        current_user, form.model.data, _float(form.input_price.data), _float(form.output_price.data)
    )
    db.session.commit()
    flash(f"Saved the price of {form.model.data}.", "success")
    return redirect(url_for("admin.models") + "#prices")


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


@bp.route("/users", methods=["GET", "POST"])
def users():
    form = CreateUserForm()
    query = request.args.get("q", "").strip()[:64]
    if form.validate_on_submit():
        try:
            user = service.add_user(current_user, form.username.data, form.password.data, form.role.data)
        except service.ActionRefused as exc:
            form.username.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Created {user.username}.", "success")
            return redirect(url_for("admin.user", user_id=user.id))
    status = 400 if form.errors else 200
    return _users_page(query, form, status=status)


def _users_page(query="", form=None, limits_form=None, status=200):
    if limits_form is None:
        limits_form = LimitsForm(formdata=None, prefix="defaults", **service.default_limits())
    return render_template(
        "admin/users.html",
        users=service.search_users(query),
        query=query,
        form=form or CreateUserForm(formdata=None),
        limits_form=limits_form,
    ), status


@bp.route("/users/default-limits", methods=["POST"])
def default_limits():
    form = LimitsForm(prefix="defaults")
    if not form.validate_on_submit():
        return _users_page(limits_form=form, status=400)
    service.set_default_limits(
        current_user, form.requests_per_minute.data, form.tokens_per_day.data, _float(form.monthly_budget.data)
    )
    db.session.commit()
    flash("Saved the default limits.", "success")
    return redirect(url_for("admin.users") + "#default-limits")


def _user_or_404(user_id):
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


def _user_page(user, status=200, **forms):
    role_form = forms.get("role_form") or RoleForm(formdata=None, role=user.role)
    limits_form = forms.get("limits_form") or LimitsForm(
        formdata=None,
        requests_per_minute=user.requests_per_minute,
        tokens_per_day=user.tokens_per_day,
        monthly_budget=user.monthly_budget,
    )
    user_groups = groups.user_groups(user)
    primary_form = forms.get("primary_form") or PrimaryGroupForm(formdata=None)
    primary_form.group.choices = [("", "(the first group joined)")] + [(str(g.id), g.name) for g in user_groups]
    if "primary_form" not in forms:
        primary_form.group.data = str(user.primary_group_id or "")
    return render_template(
        "admin/user.html",
        user=user,
        role_form=role_form,
        limits_form=limits_form,
        user_groups=user_groups,
        primary_form=primary_form,
        effective=limits.effective_limits(user, user_groups),
        password_form=forms.get("password_form") or PasswordForm(formdata=None),
        status_form=StatusForm(formdata=None),
    ), status


@bp.route("/users/<int:user_id>")
def user(user_id):
    return _user_page(_user_or_404(user_id))


def _apply(user, change, done_message):
    try:
        change()
    except service.ActionRefused as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("admin.user", user_id=user.id))
    db.session.commit()
    flash(done_message, "success")
    return redirect(url_for("admin.user", user_id=user.id))


@bp.route("/users/<int:user_id>/role", methods=["POST"])
def user_role(user_id):
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _user_page(user, 400, role_form=form)
    return _apply(
        user, lambda: service.set_role(current_user, user, form.role.data), f"{user.username} is now {form.role.data}."
    )


@bp.route("/users/<int:user_id>/status", methods=["POST"])
def user_status(user_id):
    user = _user_or_404(user_id)
    form = StatusForm()
    if not form.validate_on_submit() or form.disabled.data not in ("0", "1"):
        abort(400)
    disabled = form.disabled.data == "1"
    return _apply(
        user,
        lambda: service.set_disabled(current_user, user, disabled),
        f"{user.username} is {'disabled: their sessions have ended' if disabled else 'enabled'}.",
    )


@bp.route("/users/<int:user_id>/password", methods=["POST"])
def user_password(user_id):
    user = _user_or_404(user_id)
    form = PasswordForm()
    if not form.validate_on_submit():
        return _user_page(user, 400, password_form=form)
    return _apply(
        user,
        lambda: service.reset_password(current_user, user, form.password.data),
        f"Password of {user.username} reset; their sessions have ended.",
    )


@bp.route("/users/<int:user_id>/limits", methods=["POST"])
def user_limits(user_id):
    user = _user_or_404(user_id)
    form = LimitsForm()
    if not form.validate_on_submit():
        return _user_page(user, 400, limits_form=form)
    return _apply(
        user,
        lambda: service.set_limits(
            current_user,
            user,
            form.requests_per_minute.data,
            form.tokens_per_day.data,
            _float(form.monthly_budget.data),
        ),
        f"Limits of {user.username} saved.",
    )


@bp.route("/users/<int:user_id>/primary-group", methods=["POST"])
def user_primary_group(user_id):
    user = _user_or_404(user_id)
    form = PrimaryGroupForm()
    form.group.choices = [("", "")] + [(str(g.id), g.name) for g in groups.user_groups(user)]
    if not form.validate_on_submit():
        return _user_page(user, 400, primary_form=form)
    group = db.session.get(Group, int(form.group.data)) if form.group.data else None
    return _apply(
        user,
        lambda: _group_change(lambda: groups.set_primary(current_user, user, group)),
        f"Primary group of {user.username} saved.",
    )


def _float(value) -> float | None:
    return None if value is None else float(value)


def _group_change(change):
    """A group change that the domain refused becomes the flash message (as ActionRefused does)."""
    try:
        change()
    except groups.GroupError as exc:
        raise service.ActionRefused(str(exc)) from None


# -- groups ------------------------------------------------------------------------------


@bp.route("/groups", methods=["GET", "POST"])
def groups_page():
    form = GroupNameForm()
    if form.validate_on_submit():
        try:
            group = groups.create_group(current_user, form.name.data)
        except groups.GroupError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            db.session.commit()
            flash(f"Created the group {group.name}.", "success")
            return redirect(url_for("admin.group", group_id=group.id))
    return render_template("admin/groups.html", groups=groups.all_groups(), form=form), 400 if form.errors else 200


def _group_or_404(group_id):
    group = db.session.get(Group, group_id)
    if group is None:
        abort(404)
    return group


def _group_page(group, status=200, **forms):
    rules_form = forms.get("rules_form")
    if rules_form is None:
        rules_form = GroupRulesForm(formdata=None, obj=group)
        rules_form.models.data = list(group.models or [])
    rules_form.models.choices = [m.model_id for m in get_models()]
    return render_template(
        "admin/group.html",
        group=group,
        members=groups.members(group),
        name_form=forms.get("name_form") or GroupNameForm(formdata=None, name=group.name),
        rules_form=rules_form,
        member_form=forms.get("member_form") or MemberForm(formdata=None),
        action=ActionForm(formdata=None),
    ), status


@bp.route("/groups/<int:group_id>")
def group(group_id):
    return _group_page(_group_or_404(group_id))


def _group_done(group, message, anchor=""):
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("admin.group", group_id=group.id) + anchor)


@bp.route("/groups/<int:group_id>/rename", methods=["POST"])
def rename_group(group_id):
    group = _group_or_404(group_id)
    form = GroupNameForm()
    if form.validate_on_submit():
        try:
            groups.rename_group(current_user, group, form.name.data)
        except groups.GroupError as exc:
            db.session.rollback()
            form.name.errors.append(str(exc))
        else:
            return _group_done(group, f"Renamed to {group.name}.")
    return _group_page(_group_or_404(group_id), 400, name_form=form)


@bp.route("/groups/<int:group_id>/rules", methods=["POST"])
def group_rules(group_id):
    group = _group_or_404(group_id)
    form = GroupRulesForm()
    form.models.choices = [m.model_id for m in get_models()]
    if not form.validate_on_submit():
        return _group_page(group, 400, rules_form=form)
    values = {name: getattr(form, name).data for name in groups.LIMIT_FIELDS}
    for name in ("member_monthly_budget", "pooled_monthly_budget"):
        values[name] = _float(values[name])
    groups.set_rules(current_user, group, form.models.data or [], values)
    return _group_done(group, f"Saved the rules of {group.name}.", "#rules")


@bp.route("/groups/<int:group_id>/members", methods=["POST"])
def add_group_member(group_id):
    group = _group_or_404(group_id)
    form = MemberForm()
    if form.validate_on_submit():
        member = groups.find_user(form.username.data)
        if member is None:
            form.username.errors.append(f"There is no user named {form.username.data.strip()}.")
        else:
            try:
                groups.add_member(current_user, group, member)
            except groups.GroupError as exc:
                db.session.rollback()
                form.username.errors.append(str(exc))
            else:
                return _group_done(group, f"Added {member.username} to {group.name}.", "#members")
    return _group_page(_group_or_404(group_id), 400, member_form=form)


@bp.route("/groups/<int:group_id>/members/<int:user_id>/remove", methods=["POST"])
def remove_group_member(group_id, user_id):
    group = _group_or_404(group_id)
    member = _user_or_404(user_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        groups.remove_member(current_user, group, member)
    except groups.GroupError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.group", group_id=group.id) + "#members")
    return _group_done(group, f"Removed {member.username} from {group.name}.", "#members")


@bp.route("/groups/<int:group_id>/delete", methods=["POST"])
def delete_group(group_id):
    group = _group_or_404(group_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    name = group.name
    groups.delete_group(current_user, group)
    db.session.commit()
    flash(f"Deleted the group {name}; its members keep their accounts.", "success")
    return redirect(url_for("admin.groups_page"))


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


def _signup_forms(policy_form=None, invitation_form=None):
    if policy_form is None:
        policy_form = SignupPolicyForm(formdata=None, policy=signups.policy())
    policy_form.policy.choices = [(p, signups.POLICY_LABELS[p]) for p in signups.POLICIES]
    if invitation_form is None:
        invitation_form = InvitationForm(formdata=None, days=7)
    invitation_form.days.choices = [(d, f"{d} day{'s' * (d != 1)}") for d in signups.INVITATION_DAYS]
    return policy_form, invitation_form


def _signup_page(status=200, new_link=None, **forms):
    policy_form, invitation_form = _signup_forms(forms.get("policy_form"), forms.get("invitation_form"))
    return render_template(
        "admin/signup.html",
        policy=signups.policy(),
        policy_form=policy_form,
        invitation_form=invitation_form,
        invitations=signups.open_invitations(),
        waiting=signups.awaiting_users(),
        action=ActionForm(),
        new_link=new_link,
    ), status


@bp.route("/signup")
def signup_page():
    return _signup_page()


@bp.route("/signup/policy", methods=["POST"])
def signup_policy():
    form, _ = _signup_forms(SignupPolicyForm())
    if not form.validate_on_submit():
        return _signup_page(400, policy_form=form)
    signups.set_policy(current_user, form.policy.data)
    db.session.commit()
    flash(f"Sign-up is now {form.policy.data}.", "success")
    return redirect(url_for("admin.signup_page"))


@bp.route("/signup/invitations", methods=["POST"])
def create_invitation():
    _, form = _signup_forms(invitation_form=InvitationForm())
    if not form.validate_on_submit():
        return _signup_page(400, invitation_form=form)
    token = signups.create_invitation(current_user, form.email.data, form.days.data)
    db.session.commit()
    # Shown once, on this answer: only the token's hash is stored.
    return _signup_page(new_link=url_for("auth.signup", invite=token, _external=True))


@bp.route("/signup/invitations/<int:invitation_id>/revoke", methods=["POST"])
def revoke_invitation(invitation_id):
    if not ActionForm().validate_on_submit():
        abort(400)
    signups.revoke_invitation(current_user, invitation_id)
    db.session.commit()
    flash("Invitation revoked.", "success")
    return redirect(url_for("admin.signup_page"))


@bp.route("/users/<int:user_id>/approval", methods=["POST"])
def user_approval(user_id):
    user = _user_or_404(user_id)
    decision = request.form.get("decision")
    if not ActionForm().validate_on_submit() or decision not in ("approve", "refuse") or not user.awaiting_approval:
        abort(400, "Only an account that awaits approval can be approved or refused.")
    name = user.username
    if decision == "approve":
        signups.approve(current_user, user)
        message = f"{name} is approved and can sign in."
    else:
        signups.refuse(current_user, user)
        message = f"The account {name} was refused and removed."
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("admin.signup_page"))
