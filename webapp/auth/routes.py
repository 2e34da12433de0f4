from urllib.parse import urlsplit

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..accounts import LoginThrottled, authenticate_throttled, create_user
from ..extensions import db
from . import bp
from .forms import LoginForm, SignupForm


def safe_next(target: str | None) -> str:
    """Only a local path: no scheme, no host, no protocol-relative or backslash tricks."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith(("//", "/\\")) and "\\" not in target:
            return target
    return url_for("chat.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = authenticate_throttled(form.username.data, form.password.data, request.remote_addr or "-")
        except LoginThrottled as exc:
            flash(str(exc), "error")
            response = make_response(render_template("auth/login.html", form=form), 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if user is None:
            flash("Wrong username or password.", "error")
        else:
            login_user(user, remember=form.remember.data)
            return redirect(safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = SignupForm()
    if form.validate_on_submit():
        user = create_user(form.username.data, form.password.data)
        db.session.commit()
        login_user(user)
        flash("Welcome to Switchboard.", "success")
        return redirect(url_for("chat.index"))
    return render_template("auth/signup.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    logout_user()
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))
