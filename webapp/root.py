"""``GET /``: the welcome message for API clients, the app for browsers."""

from flask import Blueprint, jsonify, redirect, request, url_for

bp = Blueprint("root", __name__)


@bp.route("/")
def welcome():
    # curl's "Accept: */*" gets JSON; a browser prefers text/html explicitly.
    accept = request.accept_mimetypes
    if accept["text/html"] > accept["application/json"]:
        return redirect(url_for("chat.index"))
    return jsonify({"message": "Welcome to the LLM API!"})
