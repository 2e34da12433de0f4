"""Admin views for team features: single sign-on status and settings, public share links, break-glass accounts."""

from flask import abort, flash, redirect, url_for
from flask_login import current_user

from .. import audit, sharing, sso
from ..extensions import db
from ..models import User
from . import bp
from .forms import BreakGlassForm, TeamSettingsForm


@bp.app_context_processor
def team_admin_helpers():
    """For the admin home and user pages (pieces included from their templates)."""

    def team_settings_form():
        return TeamSettingsForm(
            formdata=None,
            sso_allow_linking=sso.linking_allowed(),
            share_public_links=sharing.public_links_allowed(),
        )

    return {
        "sso_status": sso.discovery_status,
        "team_settings_form": team_settings_form,
        "break_glass_form": lambda: BreakGlassForm(formdata=None),
    }


@bp.route("/team-settings", methods=["POST"])
def team_settings():
    form = TeamSettingsForm()
    if not form.validate_on_submit():
        abort(400)
    sso.set_allow_linking(current_user, bool(form.sso_allow_linking.data))
    sharing.set_public_links(current_user, bool(form.share_public_links.data))
    db.session.commit()
    flash("Saved the team settings.", "success")
    return redirect(url_for("admin.index") + "#teams")


@bp.route("/users/<int:user_id>/break-glass", methods=["POST"])
def user_break_glass(user_id):
    user = db.session.get(User, user_id) or abort(404)
    form = BreakGlassForm()
    if not form.validate_on_submit() or form.break_glass.data not in ("0", "1"):
        abort(400)
    marked = form.break_glass.data == "1"
    if user.break_glass != marked:
        audit.record(
            current_user,
            "user.break_glass",
            f"user:{user.username}",
            {"break_glass": user.break_glass},
            {"break_glass": marked},
        )
        user.break_glass = marked
    db.session.commit()
    flash(
        f"{user.username} {'may' if marked else 'may no longer'} sign in with a password when single sign-on is required.",
        "success",
    )
    return redirect(url_for("admin.user", user_id=user.id))
