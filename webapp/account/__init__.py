from flask import Blueprint

bp = Blueprint("account", __name__, url_prefix="/settings")

from . import agents, routes  # noqa: E402,F401  (registers the views)
