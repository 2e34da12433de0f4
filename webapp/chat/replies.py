"""A reply's own routes: stop it, follow it by long polling (status), its finished fragment, and its files."""

from __future__ import annotations

from urllib.parse import quote

from flask import Response, abort, flash, jsonify, redirect, request, url_for
from flask_login import current_user

from .. import attachments
from .. import conversations as convs
from ..errors import json_endpoint
from ..extensions import db
from ..generations import CannotContinue, NotQueued, continue_reply
from ..reply_events import progress
from ..stopping import stop
from . import bp
from .events import reply_fragment
from .forms import progress_query
from .templating import failure_detail


@bp.route("/generations/<int:generation_id>/stop", methods=["POST"])
def stop_generation(generation_id):
    generation = convs.owned_generation(current_user, generation_id)
    conversation_id = generation.conversation_id
    try:
        status = stop(generation)
    except NotQueued as exc:
        if _wants_json():
            return jsonify({"error": {"message": str(exc), "code": 503}}), 503
        flash(str(exc), "error")
        status = None
    if _wants_json():
        return jsonify({"id": generation_id, "status": status})
    if conversation_id is None:  # an API call's reply: it is on no page, so back to the chats
        return redirect(url_for("chat.index"))
    return redirect(url_for("chat.conversation", conversation_id=conversation_id) + "#latest")


@bp.route("/generations/<int:generation_id>/continue", methods=["POST"])
def continue_generation(generation_id):
    """Continue with <fallback>: a reply that broke off after some text is continued by the fallback offered."""
    generation = convs.owned_generation(current_user, generation_id)
    conversation_id = generation.conversation_id
    if conversation_id is None:  # an API call's reply: not on any page
        abort(404)
    try:
        continue_reply(current_user, generation, request.form.get("model", ""))
    except (CannotContinue, NotQueued) as exc:
        flash(str(exc), "error")
    return redirect(url_for("chat.conversation", conversation_id=conversation_id) + "#latest")


def _wants_json():
    return request.accept_mimetypes.best == "application/json"


@bp.route("/generations/<int:generation_id>/status")
@json_endpoint
def generation_status(generation_id):
    cursor, wait_seconds = progress_query(request.args)
    generation = convs.owned_generation(current_user, generation_id)
    payload = progress(generation, cursor, int(wait_seconds * 1000))
    if payload.get("error"):
        payload["error"] = failure_detail(payload["error"])
    db.session.remove()
    return jsonify(payload)


@bp.route("/generations/<int:generation_id>/fragment")
def generation_fragment(generation_id):
    """The reply as the page renders it (sanitized Markdown, actions): the script swaps it in when done."""
    generation = convs.owned_generation(current_user, generation_id)
    if generation.message is None:
        abort(404)
    return reply_fragment(generation)


@bp.route("/attachments/<int:attachment_id>/<path:filename>")
def attachment(attachment_id, filename):
    """A file, to its owner or an admin (404 for anyone else): its real type, never sniffed, never cached
    by shared caches; anything but a raster image downloads instead of opening in the page's origin."""
    link = attachments.owned(current_user, attachment_id)
    disposition = "inline" if link.is_image else "attachment"
    plain = link.filename.encode("ascii", "replace").decode().replace("\\", "_").replace('"', "_")
    return Response(
        attachments.file_bytes(link),
        mimetype=link.file.content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=86400",
            "Content-Disposition": f"{disposition}; filename=\"{plain}\"; filename*=UTF-8''{quote(link.filename)}",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
