"""Admin pages for groups: create, rename, delete, members, model allow-list and limits."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from .. import groups
from ..extensions import db
from ..llm import get_models
from ..models import Group
from . import bp
from .forms import (
    ActionForm,
    GroupNameForm,
    GroupRulesForm,
    MemberForm,
)
from .lookups import optional_float, user_or_404


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
        values[name] = optional_float(values[name])
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
    member = user_or_404(user_id)
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
