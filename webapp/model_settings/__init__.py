"""``/settings/models``: a user's defaults for new conversations and the models they may use."""

from flask import Blueprint

bp = Blueprint("model_settings", __name__, url_prefix="/settings/models")

from . import routes  # noqa: E402,F401  (registers the views)
