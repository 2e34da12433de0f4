from flask import Blueprint

bp = Blueprint("chat", __name__, url_prefix="/chat")

from . import events, replies, routes, sidebar, templating  # noqa: E402,F401  (registers the views)
