"""Liveness, readiness and Prometheus metrics for whoever runs Switchboard."""

import hmac

from flask import Response, abort, current_app, jsonify, request
from flask_login import current_user

from ..metrics import metrics_text, readiness
from . import bp


@bp.route("/healthz")
def healthz():
    """The process is alive and serving; touches nothing else."""
    return jsonify({"status": "ok"})


@bp.route("/readyz")
def readyz():
    """Database, Redis and at least one live worker."""
    checks = readiness()
    ready = all(check["ok"] for check in checks.values())
    return jsonify({"status": "ready" if ready else "not ready", "checks": checks}), 200 if ready else 503


@bp.route("/metrics")
def metrics():
    token = current_app.config.get("METRICS_TOKEN")
    offered = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    by_token = bool(token) and hmac.compare_digest(offered.encode(), str(token).encode())
    if not by_token and not (current_user.is_authenticated and current_user.is_admin):
        abort(403 if current_user.is_authenticated else 401)
    return Response(metrics_text(), mimetype="text/plain; version=0.0.4")
