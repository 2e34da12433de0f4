"""Single sign-on pages: /auth/sso/ sends the browser to the identity provider, /auth/sso/callback brings it back."""

from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user

from .. import sso
from ..extensions import db
from . import bp
from .forms import LoginForm
from .routes import safe_next, sign_in

NEXT_KEY = "sso_next"


@bp.route("/sso/")
def sso_start():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    if not sso.enabled():
        abort(404)  # single sign-on is not set up here
    session[NEXT_KEY] = safe_next(request.args.get("next"))
    try:
        return sso.authorize_redirect(url_for("auth.sso_callback", _external=True))
    except sso.SSOFailed as exc:
        return _failed(exc, 503)


@bp.route("/sso/callback")
def sso_callback():
    if not sso.enabled():
        abort(404)
    try:
        claims = sso.finish()
        user = sso.account_for(claims)
    except sso.SSOFailed as exc:
        db.session.rollback()
        return _failed(exc, 403 if "disabled" in str(exc) else 400)
    db.session.flush()
    sign_in(user, remember=False)  # an ordinary user_sessions record: listed, revocable, ended everywhere
    return redirect(session.pop(NEXT_KEY, None) or url_for("chat.index"))


def _failed(exc, status):
    flash(f"Single sign-on failed: {exc}", "error")
    return render_template("auth/login.html", form=LoginForm(formdata=None)), status


@bp.app_context_processor
def sso_helpers():
    def password_hidden() -> bool:
        conf = sso.settings()
        return bool(conf and conf.only and not request.args.get("local"))

    return {
        "sso_settings": sso.settings,
        "sso_password_hidden": password_hidden,
        "sso_signup_allowed": sso.local_signup_allowed,
    }
