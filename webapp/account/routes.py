from flask import abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user

from .. import limits, usage, usage_summary
from ..accounts import sessions
from ..accounts.api_keys import DuplicateKeyName, create_key, list_keys, revoke_key
from ..extensions import db
from ..site_settings import decrypt_key, encrypt_key
from . import bp
from .forms import CreateApiKeyForm, EndAllSessionsForm, EndSessionForm, RevokeApiKeyForm, ThemeForm


def _page(form: CreateApiKeyForm, new_key: str | None = None, status: int = 200):
    return render_template(
        "account/api_keys.html",
        form=form,
        revoke_form=RevokeApiKeyForm(),
        keys=list_keys(current_user),
        new_key=new_key,
    ), status


# The session slot that carries a new key from the POST to the page that shows it, once.
# Signed session cookies are readable by their holder, so the key travels Fernet-encrypted.
NEW_KEY_SLOT = "new_api_key"


@bp.get("/api-keys")
@login_required
def api_keys():
    sealed = session.pop(NEW_KEY_SLOT, None)
    new_key = decrypt_key(sealed) if sealed else None
    response, status = _page(CreateApiKeyForm(), new_key=new_key)
    return response, status, {"Cache-Control": "no-store"}


@bp.post("/api-keys")
@login_required
def create_api_key():
    form = CreateApiKeyForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        _api_key, raw_key = create_key(current_user, form.name.data)
    except DuplicateKeyName as exc:
        form.name.errors.append(str(exc))
        return _page(form, status=400)
    db.session.commit()
    # Post/redirect/get: reloading the page that shows the key creates nothing. The next GET shows it once.
    session[NEW_KEY_SLOT] = encrypt_key(raw_key)
    return redirect(url_for("account.api_keys"), code=303)


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required
def revoke_api_key(key_id: int):
    if not RevokeApiKeyForm().validate_on_submit():
        abort(400)
    api_key = revoke_key(current_user, key_id)
    if api_key is None:
        abort(404)
    db.session.commit()
    flash(f"The key “{api_key.name}” is revoked; programs using it can no longer sign in.", "success")
    return redirect(url_for("account.api_keys"))


@bp.get("/sessions")
@login_required
def sessions_page():
    return render_template(
        "account/sessions.html",
        records=sessions.list_live(current_user),
        current=current_user.current_session,
        end_form=EndSessionForm(),
        end_all_form=EndAllSessionsForm(),
    )


@bp.post("/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int):
    if not EndSessionForm().validate_on_submit():
        abort(400)
    record = sessions.revoke_own(current_user, session_id)
    if record is None:
        abort(404)
    db.session.commit()
    if record.id == current_user.current_session.id:
        logout_user()
        flash("This device is signed out.", "info")
        return redirect(url_for("auth.login"))
    flash("That session is ended: it is signed out.", "success")
    return redirect(url_for("account.sessions_page"))


@bp.post("/sessions/end-all")
@login_required
def end_all_sessions():
    if not EndAllSessionsForm().validate_on_submit():
        abort(400)
    sessions.revoke_all(current_user)
    db.session.commit()
    logout_user()
    flash("Signed out everywhere: every session of yours, API tokens included, is ended.", "info")
    return redirect(url_for("auth.login"))


@bp.post("/theme")
@login_required
def set_theme():
    """Light, dark or the device's setting, remembered for the account; back to the page the switch was on."""
    form = ThemeForm()
    if not form.validate_on_submit():
        flash("That theme does not exist: choose system, light or dark.", "error")
    else:
        current_user.theme = form.theme.data
        db.session.commit()
    target = request.referrer or ""
    if not target.startswith(request.host_url):
        target = url_for("chat.index")
    return redirect(target, code=303)


@bp.get("/usage")
@login_required
def usage_page():
    report = usage_summary.usage_report(current_user)
    return render_template(
        "account/usage.html",
        report=report,
        chart=usage.daily_chart(report["_rows"], usage_summary.CHART_DAYS),
        dollars=limits.dollars,
    )
