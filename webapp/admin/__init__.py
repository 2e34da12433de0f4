"""The admin area: providers, models, users, usage, audit log and the queue (rq-dashboard at /admin/rq/).

Every view here, and every rq-dashboard view, passes :func:`require_admin`:
anonymous visitors are sent to sign in, signed-in non-admins get 403.
"""
from __future__ import annotations

from flask import Blueprint, Flask, abort, request
from flask_login import current_user

from ..extensions import csrf, login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")

# rq-dashboard's pages use inline scripts and underscore templates (new Function):
# this looser policy applies to its responses only, which only admins ever get.
RQ_DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


def require_admin():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403, "This page is for administrators only.")
    return None


@bp.before_request
def guard_admin_pages():
    return require_admin()


def init_app(app: Flask) -> None:
    """Register the admin pages and rq-dashboard (behind the same check)."""
    import rq_dashboard

    from .. import access
    from . import routes  # noqa: F401  (registers the views)

    app.register_blueprint(bp)
    access.init_app(app)  # ModelNotAllowed from any page or endpoint becomes a plain refusal

    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"]
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 5000)
    rq_dashboard.web.setup_rq_connection(app)
    csrf.exempt(rq_dashboard.blueprint)  # its POST actions send no CSRF token; see the origin check below
    app.register_blueprint(rq_dashboard.blueprint, url_prefix="/admin/rq")

    @app.before_request
    def guard_rq_dashboard():
        # App-level: a blueprint-level hook would run after rq-dashboard's own connection hook.
        if request.blueprint != "rq_dashboard":
            return None
        refused = require_admin()
        if refused is not None:
            return refused
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            # Its actions are CSRF-exempt: accept them only from our own pages.
            origin = request.headers.get("Origin") or request.headers.get("Referer")
            if origin and not (origin + "/").startswith(request.host_url):
                abort(403, "Cross-site request refused.")
        return None

    @app.after_request
    def rq_dashboard_csp(response):
        if request.blueprint == "rq_dashboard":
            response.headers["Content-Security-Policy"] = RQ_DASHBOARD_CSP
        return response
