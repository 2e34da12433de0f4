"""The admin area: providers, models, users, usage, audit log and the queue (rq-dashboard at /admin/rq/).

Every view here, and every rq-dashboard view, passes :func:`require_admin`:
anonymous visitors are sent to sign in, signed-in non-admins get 403.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Flask, abort, jsonify, redirect, request, url_for
from flask_login import current_user
from werkzeug.exceptions import MethodNotAllowed

from ..extensions import csrf, login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")

# rq-dashboard's pages use inline scripts and underscore templates (new Function):
# this looser policy applies to its responses only, which only admins ever get.
RQ_DASHBOARD_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'; "
    "object-src 'none'"
)


RQ_DASHBOARD_PREFIX = "/admin/rq"
# rq-dashboard 0.9's views that only read (rq_dashboard/web.py). Everything else it serves changes the
# queue (delete_job_view, requeue_job_view, requeue_all, empty_queue, compact_queue; requeue_all even
# answers GET) and is exempt from our CSRF tokens, so it must be a POST from one of our own pages.
# A view a later version adds is treated as state-changing until it is listed here.
RQ_DASHBOARD_READ_ONLY = frozenset(
    {
        "favicon",
        "queues_overview",
        "workers_overview",
        "jobs_overview",
        "job_view",
        "list_queues",
        "list_jobs",
        "job_info",
        "list_workers",
        "static",
    }
)


def same_origin() -> bool:
    """The browser says this request comes from a page of ours: Origin, or (older browsers, some
    privacy settings) Referer, names this very scheme, host and port. Neither header: refused."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    parts = urlsplit(source)
    return (parts.scheme, parts.netloc) == (request.scheme, request.host)


def refuse_unsafe_dashboard_request():
    if request.endpoint is None and not isinstance(request.routing_exception, MethodNotAllowed):
        return None  # no such view: the 404 follows
    view = (request.endpoint or "").rpartition(".")[2]
    if view in RQ_DASHBOARD_READ_ONLY and request.method in ("GET", "HEAD", "OPTIONS"):
        return None
    if request.method == "POST" and same_origin():
        return None
    reason = (
        "This queue action needs a POST from the queue dashboard's own page."
        if request.method == "POST"
        else "This queue action needs a POST; nothing was changed."
    )
    return jsonify({"error": {"message": reason, "code": 403, "type": "Forbidden"}}), 403


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

    from . import groups, queue_routes, routes, teams, users  # noqa: F401  (registers the views)

    app.register_blueprint(bp)

    app.config["RQ_DASHBOARD_REDIS_URL"] = app.config["REDIS_URL"]
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 5000)
    rq_dashboard.web.setup_rq_connection(app)
    csrf.exempt(rq_dashboard.blueprint)  # its POST actions send no CSRF token; see refuse_unsafe_dashboard_request
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=RQ_DASHBOARD_PREFIX)

    @app.before_request
    def guard_rq_dashboard():
        # App-level: a blueprint-level hook would run after rq-dashboard's own connection hook.
        # A wrong method under /admin/rq/ matches no view (no blueprint) but is refused here all the same.
        if request.blueprint != "rq_dashboard" and not request.path.startswith(RQ_DASHBOARD_PREFIX + "/"):
            return None
        refused = require_admin()
        if refused is not None:
            return refused
        return refuse_unsafe_dashboard_request()

    @app.after_request
    def rq_dashboard_csp(response):
        if request.blueprint == "rq_dashboard":
            response.headers["Content-Security-Policy"] = RQ_DASHBOARD_CSP
            add_way_back(response)
        return response

    # rq-dashboard's pages ask for the app's /static/favicon.ico, which static/ does not have: give them ours.
    app.add_url_rule(
        "/static/favicon.ico",
        endpoint="favicon_for_rq_dashboard",
        view_func=lambda: redirect(url_for("static", filename="icon.svg"), code=301),
    )


# A bar above rq-dashboard's own (its templates have no place for a link): back to our admin pages.
WAY_BACK = (
    '<nav class="bg-light border-bottom px-3 py-2 small" aria-label="Switchboard">'
    '<a href="{href}" id="switchboard-admin">&larr; Switchboard admin</a></nav>'
)


def add_way_back(response) -> None:
    if response.status_code != 200 or response.mimetype != "text/html" or response.direct_passthrough:
        return
    page = response.get_data(as_text=True)
    if "<body>" in page:
        response.set_data(page.replace("<body>", "<body>" + WAY_BACK.format(href=url_for("admin.index")), 1))
