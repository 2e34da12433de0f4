from flask import flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..conversations import list_conversations, owned_conversation, owned_generation, send_message, start_conversation
from ..extensions import db
from ..generations import QueueUnavailable, progress
from . import bp
from .forms import MessageForm

MAX_WAIT_SECONDS = 10.0


@bp.before_request
@login_required
def require_login():
    """Every chat page and endpoint is for signed-in users only."""


@bp.route("/", methods=["GET", "POST"])
def index():
    form = MessageForm()
    if form.validate_on_submit():
        conversation = start_conversation(current_user)
        return _send(conversation, form)
    return render_template("chat/chat.html", conversation=None, conversations=list_conversations(current_user), form=form)


@bp.route("/<int:conversation_id>", methods=["GET"])
def conversation(conversation_id):
    conv = owned_conversation(current_user, conversation_id)
    return render_template(
        "chat/chat.html", conversation=conv, conversations=list_conversations(current_user), form=MessageForm()
    )


@bp.route("/<int:conversation_id>/messages", methods=["POST"])
def post_message(conversation_id):
    conv = owned_conversation(current_user, conversation_id)
    form = MessageForm()
    if not form.validate_on_submit():
        return render_template("chat/chat.html", conversation=conv, conversations=list_conversations(current_user), form=form), 400
    return _send(conv, form)


def _send(conv, form):
    try:
        send_message(conv, form.content.data.strip(), form.submission_token.data or None)
    except QueueUnavailable as exc:
        flash(str(exc), "error")
    return redirect(url_for("chat.conversation", conversation_id=conv.id) + "#latest")


@bp.route("/generations/<int:generation_id>/status")
def generation_status(generation_id):
    generation = owned_generation(current_user, generation_id)
    cursor = request.args.get("cursor", 0, type=int)
    # ?wait=S holds the request until new text arrives or S seconds pass (long polling).
    wait_seconds = min(max(request.args.get("wait", 0.0, type=float), 0.0), MAX_WAIT_SECONDS)
    payload = progress(generation, cursor, int(wait_seconds * 1000))
    db.session.remove()
    return jsonify(payload)
