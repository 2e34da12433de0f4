from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from .. import signups, sso
from ..accounts import AwaitingApproval, LoginThrottled, authenticate_throttled, find_user, sessions
from ..accounts.throttle import client_address
from ..extensions import db
from . import bp
from .forms import LoginForm, SignupForm


def safe_next(target: str | None) -> str:
    """Only a local path: no scheme, no host, no protocol-relative or backslash tricks."""
    if target:
        parts = urlsplit(target)
        if (
            not parts.scheme
            and not parts.netloc
            and target.startswith("/")
            and not target.startswith(("//", "/\\"))
            and "\\" not in target
        ):
            return target
    return url_for("chat.index")


def sign_in(user, remember: bool) -> None:
    """A server-side session record for this browser, then flask-login's cookies naming it."""
    config = current_app.config
    lifetime = (
        config.get("REMEMBER_COOKIE_DURATION", timedelta(days=365))
        if remember
        else config["PERMANENT_SESSION_LIFETIME"]
    )
    if not isinstance(lifetime, timedelta):  # Flask and flask-login also accept seconds
        lifetime = timedelta(seconds=int(lifetime))
    sessions.start(user, sessions.WEB, lifetime, client_address(), request.user_agent.string)
    db.session.commit()
    login_user(user, remember=remember)


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = LoginForm()
    if form.validate_on_submit():
        if not sso.password_sign_in_allowed(find_user(form.username.data)):
            flash("Password sign-in is turned off here: use single sign-on.", "error")
            return render_template("auth/login.html", form=form), 403
        try:
            user = authenticate_throttled(form.username.data, form.password.data, client_address())
        except LoginThrottled as exc:
            flash(str(exc), "error")
            response = make_response(render_template("auth/login.html", form=form), 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except AwaitingApproval as exc:
            flash(str(exc), "info")
            return render_template("auth/login.html", form=form), 403
        if user is None:
            flash("Wrong username or password.", "error")
        else:
            sign_in(user, remember=form.remember.data)
            return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    if not sso.local_signup_allowed():
        flash("Accounts are made by signing in with single sign-on.", "info")
        return redirect(url_for("auth.login"))
    form = SignupForm()
    if request.method == "GET":
        form.invitation.data = request.args.get("invite", "")
    invitation_token = form.invitation.data or None
    try:
        invitation = signups.check_allowed(invitation_token, form.email.data if request.method == "POST" else None)
    except signups.SignupRefused as exc:
        if exc.code != "invitation_email_mismatch":  # a form to correct, not a page to leave
            return render_template("auth/signup_refused.html", reason=str(exc)), exc.status
        invitation = signups.find_invitation(invitation_token)
        if request.method == "GET":  # the form asks for the address
            return render_template("auth/signup.html", form=form, invitation=invitation)
        form.validate()
        form.email.errors = [*form.email.errors, str(exc)]
        return render_template("auth/signup.html", form=form, invitation=invitation), 400
    if form.validate_on_submit():
        try:
            result = signups.sign_up(
                form.username.data, form.password.data, client_address(), invitation_token, form.email.data
            )
        except signups.SignupRefused as exc:
            db.session.rollback()
            response = make_response(render_template("auth/signup_refused.html", reason=str(exc)), exc.status)
            if exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if result.awaiting_approval:
            db.session.commit()
            return render_template("auth/signup_waiting.html", username=result.user.username)
        sign_in(result.user, remember=False)
        flash("Welcome to Switchboard." + (" You are its admin." if result.user.is_admin else ""), "success")
        return redirect(url_for("chat.index"))
    return render_template("auth/signup.html", form=form, invitation=invitation)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    # Revoked on the server first: a copy of the session or remember-me cookie is worthless afterwards.
    sessions.revoke(current_user.current_session)
    db.session.commit()
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
