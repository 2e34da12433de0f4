"""The LLM service API (``/api/``, described in docs/api.md) and the OpenAI-compatible API (``/v1/``).

Both authenticate with ``Authorization: Bearer`` (an access token from
``/api/token/`` or a personal ``sb-`` API key), never with the session cookie,
so both are exempt from CSRF. Every error is answered in OpenAI's shape.
"""

from flask import Blueprint, Flask

from ..extensions import csrf
from .errors import handle_error

api_bp = Blueprint("api", __name__, url_prefix="/api")
v1_bp = Blueprint("v1", __name__, url_prefix="/v1")
for _bp in (api_bp, v1_bp):
    _bp.register_error_handler(Exception, handle_error)

from . import routes  # noqa: E402,F401  (registers the views)


def init_app(app: Flask) -> None:
    for bp in (api_bp, v1_bp):
        csrf.exempt(bp)
        app.register_blueprint(bp)
