"""Admin pages for users: search, create, role, status, password, limits, primary group, approval; and the sign-up
policy with its invitations."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from .. import groups, limits, signups
from ..extensions import db
from ..models import Group
from . import bp, service
from .forms import (
    ActionForm,
    CreateUserForm,
    InvitationForm,
    LimitsForm,
    PasswordForm,
    PrimaryGroupForm,
    RoleForm,
    SignupPolicyForm,
    StatusForm,
)
from .lookups import group_change, optional_float, user_or_404


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
        current_user, form.requests_per_minute.data, form.tokens_per_day.data, optional_float(form.monthly_budget.data)
    )
    db.session.commit()
    flash("Saved the default limits.", "success")
    return redirect(url_for("admin.users") + "#default-limits")


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
    return _user_page(user_or_404(user_id))


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
    user = user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        return _user_page(user, 400, role_form=form)
    return _apply(
        user, lambda: service.set_role(current_user, user, form.role.data), f"{user.username} is now {form.role.data}."
    )


@bp.route("/users/<int:user_id>/status", methods=["POST"])
def user_status(user_id):
    user = user_or_404(user_id)
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
    user = user_or_404(user_id)
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
    user = user_or_404(user_id)
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
            optional_float(form.monthly_budget.data),
        ),
        f"Limits of {user.username} saved.",
    )


@bp.route("/users/<int:user_id>/primary-group", methods=["POST"])
def user_primary_group(user_id):
    user = user_or_404(user_id)
    form = PrimaryGroupForm()
    form.group.choices = [("", "")] + [(str(g.id), g.name) for g in groups.user_groups(user)]
    if not form.validate_on_submit():
        return _user_page(user, 400, primary_form=form)
    group = db.session.get(Group, int(form.group.data)) if form.group.data else None
    return _apply(
        user,
        lambda: group_change(lambda: groups.set_primary(current_user, user, group)),
        f"Primary group of {user.username} saved.",
    )


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
    user = user_or_404(user_id)
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
