"""The Flask application factory: ``create_app()`` (``wsgi.py`` serves ``create_app()``)."""

from __future__ import annotations

from flask import Flask

from . import llm, request_body, site_settings, sso
from .account import bp as account_bp
from .admin import init_app as init_admin
from .api import init_app as init_api
from .auth import bp as auth_bp
from .chat import bp as chat_bp
from .cli import register_commands
from .config import load_config
from .database import tune_sqlite
from .errors import init_errors
from .extensions import csrf, db, login_manager, migrate
from .json_input import StrictJSONProvider
from .logs import configure_logging, init_request_ids
from .metrics import init_request_metrics
from .model_settings import bp as model_settings_bp
from .ops import bp as ops_bp
from .paths import PROJECT_ROOT, ensure_instance_path
from .root import bp as root_bp
from .security import init_security
from .share import bp as share_bp


def create_app(test_config: dict | None = None) -> Flask:
    instance = ensure_instance_path()
    app = Flask(
        "webapp",  # the package: Flask finds its root path and names the app from it
        instance_path=str(instance),
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.json = StrictJSONProvider(app)  # request bodies: no lone surrogates, NaN or runaway nesting
    app.config.update(load_config(test_config))

    db.init_app(app)
    with app.app_context():
        tune_sqlite(db.engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)

    llm.configure({**app.config, "INSTANCE_PATH": app.instance_path})

    site_settings.init_app(app)  # provider keys, base URLs and on/off stored by admins reach webapp.llm
    sso.init_app(app)  # the OpenID Connect client, when OIDC_ISSUER is set

    app.register_blueprint(root_bp)
    app.register_blueprint(auth_bp)
    app.register_blueprint(chat_bp)

    init_api(app)  # /api/ (the LLM service API, docs/api.md) and /v1/ (OpenAI-compatible): bearer tokens, no CSRF
    app.register_blueprint(account_bp)
    app.register_blueprint(share_bp)  # shared conversation links: /share/ and /s/<token>

    app.register_blueprint(model_settings_bp)

    init_admin(app)  # /admin/ pages and rq-dashboard at /admin/rq/, admins only

    app.register_blueprint(ops_bp)
    init_errors(app)
    init_security(app)
    init_request_ids(app)
    init_request_metrics(app)

    register_commands(app)
    request_body.init_app(app)  # a body cut short is a 400, never half saved

    if not app.debug and not app.testing:
        configure_logging()
    return app
