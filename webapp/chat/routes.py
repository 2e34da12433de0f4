from flask import Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import inspect as sa_inspect

from .. import attachments
from .. import conversations as convs
from ..access import ModelNotAllowed, model_notice
from ..extensions import db
from ..generations import (
    LimitReached,
    NotQueued,
    live_states,
)
from ..llm import get_model
from ..message_size import body_too_large
from ..model_options import (
    ModelUnavailable,
    applicable_options,
    models_by_provider,
    option_fields,
    parse_options,
    usable_model,
    usable_models,
)
from . import bp
from .forms import EditMessageForm, MessageForm, RenameForm, SettingsForm
from .templating import attachment_limits


@bp.before_request
@login_required
def require_login():
    """Every chat page and endpoint is for signed-in users only."""


# The forms that take files: their requests may be as large as the attachment limits allow.
UPLOAD_ENDPOINTS = {"chat.index", "chat.post_message", "chat.edit_message"}


@bp.url_value_preprocessor
def upload_limit(endpoint, values):
    """Before anything reads the body (the CSRF check reads the form): a request larger than the attachment
    limits allow is refused from its Content-Length, without reading it."""
    if endpoint not in UPLOAD_ENDPOINTS or request.method != "POST":
        return
    limit = attachments.request_limit()
    if request.content_length is not None and request.content_length > limit:
        abort(413, description=body_too_large(limit, f"Attachments: {attachments.describe_limits()}."))
    request.max_content_length = limit


def _conversation_url(conv, **params):
    return url_for("chat.conversation", conversation_id=conv.id, **params)


def _refresh_url(conv) -> str:
    """Where the no-JS page's meta refresh goes: this page, at its latest message.

    Chromium treats a refresh to the current URL plus a fragment as a jump within the page and never
    reloads, so the target alternates a ``r`` query parameter: it always differs from the current URL.
    """
    params = {key: request.args.getlist(key) for key in request.args if key != "r"}
    if request.args.get("r") != "1":
        params["r"] = "1"
    return _conversation_url(conv, **params) + "#latest"


def _model_or_none(model_id):
    try:
        return get_model(model_id)
    except KeyError:
        return None


def _render(
    conv,
    form,
    status=200,
    settings_form=None,
    option_errors=None,
    option_raw=None,
    composer_error=None,
    kept_files=None,
):
    query = request.args.get("q", "").strip()
    shown = {}
    show_ids = request.args.getlist("show", type=int)
    if conv is not None and show_ids:
        by_id = {g.id: g for m in conv.messages for g in m.generations}
        for generation_id in show_ids:
            generation = by_id.get(generation_id)
            if generation is not None:
                shown[generation.message_id] = generation
    model = _model_or_none(conv.model_id) if conv is not None else None
    if settings_form is None and conv is not None:
        settings_form = SettingsForm(formdata=None, model=conv.model_id, system_prompt=conv.system_prompt or "")
    rename_form = RenameForm(formdata=None, title=conv.title) if conv is not None else None
    models = usable_models(current_user)
    return render_template(
        "chat/chat.html",
        conversation=conv,
        conversations=convs.list_conversations(current_user, query),
        query=query,
        form=form,
        shown=shown,
        live=live_states(g for m in conv.messages for g in m.generations) if conv is not None else {},
        active=convs.active_reply(conv) if conv is not None else None,
        path=_path_with_files(conv),
        versions_of=convs.sibling_groups(conv) if conv is not None else {},
        refresh_url=_refresh_url(conv) if conv is not None else None,
        model=model,
        model_groups=models_by_provider(models),
        default_model_id=convs.default_model_id(current_user),
        settings_form=settings_form,
        settings_open=bool(option_errors) or (settings_form is not None and bool(settings_form.errors)),
        option_fields=option_fields(model, conv.options, option_errors, option_raw) if model is not None else [],
        option_errors=option_errors or {},
        rename_form=rename_form,
        composer_error=composer_error,
        kept_files=kept_files or [],
        attachment_limits=attachment_limits(model)
        if conv is not None
        else attachment_limits(_model_or_none(convs.default_model_id(current_user)), models),
    ), status


def _path_with_files(conv):
    if conv is None:
        return []
    path = convs.visible_path(conv)
    attachments.load_for(path)
    return path


def _draft(conv, form):
    """``?draft=<message id>``: a saved message whose reply was refused (a limit) goes back in the composer."""
    draft_id = request.args.get("draft", type=int)
    if conv is None or draft_id is None or form.content.data:
        return
    draft = next((m for m in conv.messages if m.id == draft_id), None)
    if draft is not None:
        form.content.data = draft.content


@bp.route("/", methods=["GET", "POST"])
def index():
    form = MessageForm()
    if form.validate_on_submit():
        chosen = request.form.get("model", "").strip()
        model = None
        if chosen:
            try:
                model = usable_model(current_user, chosen)
            except ModelUnavailable as exc:
                return _render(None, form, 400, composer_error=f"Not sent: {exc}")
        uploads = []
        try:
            uploads = _uploads()
            message = convs.start_chat(
                current_user, form.content.data.strip(), form.submission_token.data or None, model, uploads
            )
        except (ModelNotAllowed, attachments.AttachmentRefused) as exc:
            return _refused(None, form, exc, uploads)
        except NotQueued as exc:
            return _not_queued(exc)
        return redirect(url_for("chat.conversation", conversation_id=message.conversation_id) + "#latest")
    return _render(None, form, 400 if form.errors else 200)


@bp.route("/<int:conversation_id>", methods=["GET"])
def conversation(conversation_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    notice = model_notice(current_user, conv.model_id)  # its model is no longer usable: say so at the top
    if notice:
        flash(notice, "error")
    form = MessageForm()
    _draft(conv, form)
    return _render(conv, form)


@bp.route("/<int:conversation_id>/messages", methods=["POST"])
def post_message(conversation_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    form = MessageForm()
    if not form.validate_on_submit():
        if _wants_fragments():
            problems = [error for errors in form.errors.values() for error in errors]
            return _composer_error(f"Not sent: {problems[0] if problems else 'the form was not complete.'}", 400)
        return _render(conv, form, 400)
    return _send(conv, form)


def _wants_fragments() -> bool:
    """The page's script posted the composer (static/composer.js): it takes the new message and its reply
    as HTML to append, and errors as JSON, instead of a redirect or a whole page."""
    return request.headers.get("X-Composer") == "fetch"


def _composer_error(message: str, status: int):
    """Nothing was saved: the script shows why beside the composer, whose text stays."""
    return jsonify({"error": {"message": message, "code": status}}), status


def _posted(conversation_id: int, message):
    """The new message and its reply as the page shows them (the conversation is not loaded again: the
    message, its reply and its versions are read by themselves), the reply's id for its event stream,
    and a fresh one-time token for the next message."""
    conversation = convs.ConversationRef(conversation_id)
    reply = message.reply
    context = {"message": message, "conversation": conversation, "shown": {}}
    return jsonify(
        {
            "message_html": render_template("chat/_user_message.html", siblings=convs.versions_of(message), **context),
            "reply_html": render_template("chat/_reply.html", g=reply, is_last=True, live={}, **context)
            if reply is not None
            else "",
            "generation_id": reply.id if reply is not None else None,
            "submission_token": MessageForm(formdata=None).submission_token.data,
        }
    )


def _uploads():
    """The composer's files, and those kept from a refused try (their signed tokens)."""
    return attachments.read_uploads(
        request.files.getlist("attachments"), current_user.id, request.form.getlist("kept_file")
    )


def _refused(conv, form, exc, uploads=()):
    """Nothing was saved: the same page again, the typed text still in the composer (and the files that
    were fine, kept for the next try), and why."""
    db.session.rollback()
    if conv is not None and not sa_inspect(conv).persistent:
        conv = None  # a new chat: it was never saved
    kept = getattr(exc, "kept", None)
    if kept is None and uploads:
        kept = attachments.keep(current_user.id, uploads)
    status = 400 if isinstance(exc, attachments.AttachmentRefused) else 403
    return _render(conv, form, status, composer_error=f"Not sent: {exc}", kept_files=kept)


def _send(conv, form):
    conversation_id = conv.id
    uploads = []
    try:
        uploads = _uploads()
        message = convs.send_message(conv, form.content.data.strip(), form.submission_token.data or None, uploads)
        conversation_id = message.conversation_id
    except (ModelNotAllowed, attachments.AttachmentRefused) as exc:
        if _wants_fragments() and not uploads:
            db.session.rollback()
            return _composer_error(f"Not sent: {exc}", 400 if isinstance(exc, attachments.AttachmentRefused) else 403)
        return _refused(conv, form, exc, uploads)
    except NotQueued as exc:
        return _not_queued(exc)
    if _wants_fragments():
        return _posted(conversation_id, message)
    return redirect(url_for("chat.conversation", conversation_id=conversation_id) + "#latest")


def _not_queued(exc):
    """The message is saved. Over a limit its reply was refused: its text goes back in the composer.
    With the queue down it waits for the queue (and is answered then): nothing to send again."""
    flash(str(exc), "error")
    if isinstance(exc, LimitReached) and getattr(exc, "message_id", None):
        target = url_for("chat.conversation", conversation_id=exc.conversation_id, draft=exc.message_id) + "#composer"
    else:
        target = url_for("chat.conversation", conversation_id=exc.conversation_id) + "#latest"
    if _wants_fragments():  # the script goes there itself: the page says why (and puts the text back)
        return jsonify({"redirect": target})
    return redirect(target)


@bp.route("/<int:conversation_id>/rename", methods=["GET", "POST"])
def rename(conversation_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    form = RenameForm()
    if form.validate_on_submit():
        convs.rename(conv, form.title.data)
        flash("Conversation renamed.", "success")
        return redirect(_conversation_url(conv))
    if request.method == "GET":
        form = RenameForm(formdata=None, title=conv.title)
    return render_template("chat/rename.html", conversation=conv, form=form), 400 if form.errors else 200


@bp.route("/<int:conversation_id>/settings", methods=["POST"])
def settings(conversation_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    form = SettingsForm()
    if not form.validate_on_submit():
        return _render(conv, MessageForm(formdata=None), 400, settings_form=form)
    try:
        model = usable_model(current_user, form.model.data)
    except ModelUnavailable as exc:
        form.model.errors = [str(exc)]
        return _render(conv, MessageForm(formdata=None), 400, settings_form=form)
    if model.model_id != conv.model_id:
        # The options on the form belong to the previous model: keep the ones the new model also takes.
        options = applicable_options(model, conv.options)
        message = f"Now using {model.model_id}. Its options are below."
    else:
        options, errors = parse_options(model, request.form)
        if errors:
            return _render(
                conv, MessageForm(formdata=None), 400, settings_form=form, option_errors=errors, option_raw=request.form
            )
        message = "Settings saved."
    convs.update_settings(conv, current_user, model.model_id, form.system_prompt.data, options)
    flash(message, "success")
    return redirect(_conversation_url(conv))


@bp.route("/<int:conversation_id>/delete", methods=["GET", "POST"])
def delete(conversation_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    if request.method == "POST":  # CSRF-checked by CSRFProtect
        title = conv.title
        convs.delete_conversation(conv)
        flash(f"Deleted “{title}”.", "success")
        return redirect(url_for("chat.index"))
    return render_template("chat/delete.html", conversation=conv)


@bp.route("/<int:conversation_id>/export.<any(md, json):fmt>")
def export(conversation_id, fmt):
    conv = convs.owned_conversation(current_user, conversation_id)
    if fmt == "md":
        body, content_type = convs.export_markdown(conv), "text/markdown; charset=utf-8"
    else:
        body, content_type = convs.export_json(conv), "application/json"
    filename = f"conversation-{conv.id}.{fmt}"
    return Response(
        body,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.route("/<int:conversation_id>/messages/<int:message_id>/edit", methods=["GET", "POST"])
def edit_message(conversation_id, message_id):
    """The page for editing a message without JavaScript (with it, the chat page edits in place and posts here)."""
    conv = convs.owned_conversation(current_user, conversation_id)
    message = convs.owned_message(conv, message_id)
    if message not in convs.visible_path(conv):
        abort(404)
    form = EditMessageForm()
    if form.validate_on_submit():
        keep = {int(i) for i in request.form.getlist("keep_attachment") if i.isdigit()}
        try:
            uploads = attachments.read_uploads(request.files.getlist("attachments"))
            edited = convs.edit_message(
                conv, message, form.content.data.strip(), form.submission_token.data or None, uploads, keep
            )
        except (ModelNotAllowed, attachments.AttachmentRefused) as exc:
            db.session.rollback()
            form.content.errors = [f"Not sent: {exc}"]
            status = 400 if isinstance(exc, attachments.AttachmentRefused) else 403
            return render_template("chat/edit.html", conversation=conv, message=message, form=form), status
        except convs.ReplyInProgress as exc:
            flash(str(exc), "error")
            return redirect(_conversation_url(conv) + f"#m{message.id}")
        except NotQueued as exc:
            flash(str(exc), "error")
            return redirect(_conversation_url(conv) + f"#m{exc.message_id}")
        return redirect(_conversation_url(conv) + f"#m{edited.id}")
    if request.method == "GET":
        form = EditMessageForm(formdata=None, content=message.content)
    return render_template("chat/edit.html", conversation=conv, message=message, form=form), 400 if form.errors else 200


@bp.route("/<int:conversation_id>/messages/<int:message_id>/select", methods=["POST"])
def select_version(conversation_id, message_id):
    """Show this version of a message (and its branch) instead of its siblings; a form, so it works without JS."""
    conv = convs.owned_conversation(current_user, conversation_id)
    message = convs.owned_message(conv, message_id)
    convs.select_version(conv, message)
    return redirect(_conversation_url(conv) + f"#m{message.id}", code=303)


@bp.route("/<int:conversation_id>/messages/<int:message_id>/regenerate", methods=["POST"])
def regenerate(conversation_id, message_id):
    conv = convs.owned_conversation(current_user, conversation_id)
    message = convs.owned_message(conv, message_id)
    expected = request.form.get("of", type=int)
    try:
        convs.regenerate_reply(conv, message, expected)
    except (ValueError, convs.ReplyInProgress, NotQueued) as exc:
        flash(str(exc), "error")
    return redirect(_conversation_url(conv) + "#latest")
