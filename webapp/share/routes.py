"""Shared links: made, refreshed and revoked by the conversation's owner; opened at /s/<token>."""

from flask import abort, flash, g, make_response, redirect, render_template, url_for
from flask_login import current_user, login_required

from .. import conversations as convs
from .. import sharing
from ..access import ModelNotAllowed
from ..auth.routes import safe_next
from ..extensions import db, login_manager
from ..markdown import render_markdown
from . import bp
from .forms import LinkActionForm, ShareForm


@bp.app_context_processor
def share_helpers():
    """For the chat page's pieces (chat/_share.html, chat/_shared_marker.html)."""

    def is_shared(conversation_id) -> bool:
        if not current_user.is_authenticated:
            return False
        if "shared_conversation_ids" not in g:
            g.shared_conversation_ids = sharing.shared_conversation_ids(current_user)
        return conversation_id in g.shared_conversation_ids

    def share_link_for(conversation):
        # Most conversations have no link: the page's list of shared ones (read once) says so without a query.
        return sharing.live_link_for(conversation) if is_shared(conversation.id) else None

    return {
        "is_shared": is_shared,
        "share_link_for": share_link_for,
        "share_public": sharing.public_links_allowed,
    }


def _back(form, default):
    return redirect(safe_next(form.next.data) if form.next.data else default)


@bp.get("/share/")
@login_required
def links():
    return render_template("share/links.html", links=sharing.links_of(current_user), action=LinkActionForm())


@bp.post("/share/conversations/<int:conversation_id>")
@login_required
def create(conversation_id):
    conversation = convs.owned_conversation(current_user, conversation_id)
    form = ShareForm()
    if not form.validate_on_submit():
        abort(400)
    link = sharing.share(current_user, conversation, bool(form.include_system_prompt.data))
    db.session.commit()
    flash("Share link ready: " + url_for("share.view", token=link.token, _external=True), "success")
    return redirect(url_for("chat.conversation", conversation_id=conversation.id) + "#share")


@bp.post("/share/<int:link_id>/refresh")
@login_required
def refresh(link_id):
    link = sharing.owned_link(current_user, link_id)
    form = LinkActionForm()
    if not form.validate_on_submit():
        abort(400)
    sharing.refresh(current_user, link)
    db.session.commit()
    flash(f"The share link of “{link.title}” now shows the conversation as it is.", "success")
    return _back(form, url_for("share.links"))


@bp.post("/share/<int:link_id>/revoke")
@login_required
def revoke(link_id):
    link = sharing.owned_link(current_user, link_id)
    form = LinkActionForm()
    if not form.validate_on_submit():
        abort(400)
    sharing.revoke(current_user, link)
    db.session.commit()
    flash(f"The share link of “{link.title}” is revoked: it no longer opens.", "success")
    return _back(form, url_for("share.links"))


@bp.get("/s/<token>")
def view(token):
    # Before the lookup: an anonymous visitor learns nothing about which links exist.
    if not current_user.is_authenticated and not sharing.public_links_allowed():
        return login_manager.unauthorized()
    link = sharing.open_link(token)
    response = make_response(
        render_template("share/view.html", link=link, render_markdown=render_markdown, action=LinkActionForm())
    )
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/s/<token>/continue")
@login_required
def continue_chat(token):
    link = sharing.open_link(token)
    if not LinkActionForm().validate_on_submit():
        abort(400)
    try:
        conversation = sharing.continue_in_new_chat(current_user, link)
    except ModelNotAllowed as exc:
        db.session.rollback()
        flash(f"Could not continue: {exc}", "error")
        return redirect(url_for("share.view", token=token))
    flash("A copy of the shared conversation is now yours: continue it below.", "success")
    return redirect(url_for("chat.conversation", conversation_id=conversation.id) + "#latest")
