"""The admin's Queue page: provider caps and user weights for the fair order (webapp.scheduling)."""

import redis
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DecimalField, StringField, SubmitField
from wtforms.validators import DataRequired, Length, NumberRange

from .. import audit, scheduling
from ..extensions import db
from ..llm import get_providers
from ..models import Group, User
from . import bp


class CapsForm(FlaskForm):
    """One number input per provider (cap-<provider>), read by ``parse_caps``; this carries the CSRF token."""

    submit = SubmitField("Save caps")


class GroupWeightForm(FlaskForm):
    group = StringField("Group", validators=[DataRequired(), Length(max=64)])
    weight = DecimalField(
        "Weight", places=2, validators=[DataRequired(), NumberRange(min=0.1, max=scheduling.MAX_WEIGHT)]
    )
    submit = SubmitField("Set group weight")


class WeightForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    weight = DecimalField(
        "Weight", places=2, validators=[DataRequired(), NumberRange(min=0.1, max=scheduling.MAX_WEIGHT)]
    )
    submit = SubmitField("Set weight")


def parse_caps(form, providers) -> tuple[dict[str, int], dict[str, str]]:
    caps, errors = {}, {}
    for provider in providers:
        raw = (form.get(f"cap-{provider}") or "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) > 10000:
            errors[provider] = "A whole number from 0 to 10000 (empty or 0: no cap)."
        elif int(raw) > 0:
            caps[provider] = int(raw)
    return caps, errors


def _page(caps_form=None, weight_form=None, cap_errors=None, entered=None, status=200, group_form=None):
    weights = scheduling.stored_weights()
    users = {u.id: u.username for u in db.session.scalars(select(User).where(User.id.in_(list(weights))))}
    group_weights = scheduling.stored_group_weights()
    names = {g.id: g.name for g in db.session.scalars(select(Group).where(Group.id.in_(list(group_weights))))}
    return render_template(
        "admin/queue.html",
        providers=sorted(get_providers()),
        caps=entered if entered is not None else scheduling.provider_caps(),
        cap_errors=cap_errors or {},
        weights=sorted((users.get(uid, f"#{uid}"), w) for uid, w in weights.items()),
        lines=scheduling.summary(),
        depth=scheduling.depth(),
        caps_form=caps_form or CapsForm(formdata=None),
        weight_form=weight_form or WeightForm(formdata=None),
        group_weights=sorted((names.get(gid, f"#{gid}"), w) for gid, w in group_weights.items()),
        group_form=group_form or GroupWeightForm(formdata=None),
    ), status


@bp.route("/queue")
def queue_settings():
    return _page()


@bp.route("/queue/caps", methods=["POST"])
def queue_caps():
    form = CapsForm()
    caps, errors = parse_caps(request.form, get_providers())
    if not form.validate_on_submit() or errors:
        entered = {p: request.form.get(f"cap-{p}", "") for p in get_providers()}
        return _page(caps_form=form, cap_errors=errors, entered=entered, status=400)
    before = scheduling.provider_caps()
    try:
        scheduling.set_provider_caps(caps)
    except redis.RedisError:
        db.session.rollback()
        flash("The job queue (Redis) is unavailable, so the caps were not saved.", "error")
        return redirect(url_for("admin.queue_settings"))
    audit.record(current_user, "queue.caps", "providers", {"caps": before}, {"caps": caps})
    db.session.commit()
    flash("Saved the provider caps.", "success")
    return redirect(url_for("admin.queue_settings"))


@bp.route("/queue/weights", methods=["POST"])
def queue_weight():
    form = WeightForm()
    if not form.validate_on_submit():
        return _page(weight_form=form, status=400)
    user = db.session.scalar(select(User).where(User.username == form.username.data.strip()))
    if user is None:
        form.username.errors.append("No such user.")
        return _page(weight_form=form, status=400)
    before = scheduling.user_weight(user.id)
    scheduling.set_user_weight(user.id, float(form.weight.data))
    audit.record(current_user, "queue.weight", user.username, {"weight": before}, {"weight": float(form.weight.data)})
    db.session.commit()
    flash(f"{user.username} now has weight {float(form.weight.data):g}.", "success")
    return redirect(url_for("admin.queue_settings"))


@bp.route("/queue/group-weights", methods=["POST"])
def queue_group_weight():
    form = GroupWeightForm()
    if not form.validate_on_submit():
        return _page(group_form=form, status=400)
    group = db.session.scalar(select(Group).where(Group.name == form.group.data.strip()))
    if group is None:
        form.group.errors.append("No such group.")
        return _page(group_form=form, status=400)
    weight = float(form.weight.data)
    scheduling.set_group_weight(group.id, weight)
    audit.record(current_user, "queue.group_weight", group.name, None, {"weight": weight})
    db.session.commit()
    flash(f"Group {group.name} now has weight {weight:g}.", "success")
    return redirect(url_for("admin.queue_settings"))
