"""Attachments: images and PDFs on users' messages and API requests.

The bytes live in the database (``StoredFile``), once per content (SHA-256), so every web
process and worker on any host reads them with no shared disk; an ``Attachment`` row links
a file to one message or API request, with the name it was given. A file no link uses is
deleted with the last conversation (or request) that used it.

The type is read from the bytes (``webapp.llm.attachments.inspect_bytes``), never from the
name or the browser's word; the limits (per file, per message, types) are settings.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

from flask import abort, current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from .database import write
from .extensions import db
from .llm import Attachment as LLMAttachment
from .llm.attachments import ALL_TYPES, MIB, SHORT_NAMES, AttachmentError, FileInfo, fetch_url, inspect_bytes
from .models import Attachment, Message, StoredFile, User, utcnow

MAX_FILENAME = 255
KEPT_FOR = timedelta(days=1)  # files kept from a refused try, never sent, are deleted after this


class AttachmentRefused(ValueError):
    """A file that cannot be attached; ``code`` is the API's error code, ``str()`` says why."""

    def __init__(self, message: str, code: str = "invalid_attachment"):
        super().__init__(message)
        self.code = code


@dataclass
class Upload:
    """A checked file, not yet stored: its bytes, the name it came with, and what its bytes are."""

    data: bytes
    filename: str
    info: FileInfo

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


# -- limits ------------------------------------------------------------------------------


def max_file_bytes() -> int:
    return int(float(current_app.config["ATTACHMENT_MAX_FILE_MB"]) * MIB)


def max_files() -> int:
    return int(current_app.config["ATTACHMENT_MAX_FILES"])


def max_total_bytes() -> int:
    return int(float(current_app.config["ATTACHMENT_MAX_TOTAL_MB"]) * MIB)


def allowed_types() -> tuple[str, ...]:
    configured = current_app.config["ATTACHMENT_TYPES"]
    if isinstance(configured, str):
        configured = [t.strip() for t in configured.split(",")]
    return tuple(t for t in configured if t in ALL_TYPES)


def request_limit() -> int:
    """The largest request body a form or API call with attachments may send: every file, plus room for
    its text (base64 in JSON is a third larger). Larger requests are refused from their Content-Length."""
    return max_total_bytes() * 4 // 3 + 2 * MIB


def describe_limits() -> str:
    kinds = ", ".join(SHORT_NAMES[t] for t in allowed_types())
    return f"{kinds}; up to {max_files()} files of {current_app.config['ATTACHMENT_MAX_FILE_MB']:g} MB each"


# -- checking ----------------------------------------------------------------------------


def _clean_name(filename: str | None, info: FileInfo) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:MAX_FILENAME]
    return name or ("image" if info.is_image else "document.pdf")


def check(data: bytes, filename: str | None) -> Upload:
    """The file as an Upload, or AttachmentRefused (too large, or its bytes are not an allowed type)."""
    if len(data) > max_file_bytes():
        raise AttachmentRefused(
            f"{filename or 'The file'} is larger than the limit of {current_app.config['ATTACHMENT_MAX_FILE_MB']:g} MB.",
            "file_too_large",
        )
    if not data:
        raise AttachmentRefused(f"{filename or 'The file'} is empty.", "invalid_attachment")
    try:
        info = inspect_bytes(data, allowed_types())
    except AttachmentError as exc:
        raise AttachmentRefused(f"{filename or 'The file'}: {exc}", exc.code) from None
    return Upload(data, _clean_name(filename, info), info)


def check_count(uploads: list) -> None:
    if len(uploads) > max_files():
        raise AttachmentRefused(f"At most {max_files()} files can be attached to one message.", "too_many_files")
    if sum(len(u.data) for u in uploads if isinstance(u, Upload)) > max_total_bytes():
        raise AttachmentRefused(
            f"The files together are larger than the limit of {current_app.config['ATTACHMENT_MAX_TOTAL_MB']:g} MB.",
            "file_too_large",
        )


def read_upload(storage) -> Upload:
    """A werkzeug FileStorage read at most one byte past the limit (the request's size was checked before)."""
    data = storage.stream.read(max_file_bytes() + 1)
    return check(data, storage.filename)


def read_uploads(storages, user_id: int | None = None, kept_tokens=()) -> list[Upload]:
    """The form's files (and the files kept from a refused try, by their signed tokens), checked.

    With ``user_id``, a refusal keeps the files that were fine: they are stored (unlinked) and the
    AttachmentRefused carries ``kept``, one ``KeptFile`` each, for the page to offer again.
    """
    storages = [s for s in storages if s is not None and (s.filename or "").strip()]
    uploads, problems = kept_uploads(user_id, kept_tokens) if user_id is not None else [], []
    for storage in storages:
        try:
            uploads.append(read_upload(storage))
        except AttachmentRefused as exc:
            problems.append(exc)
    try:
        if problems:
            raise problems[0]
        check_count(uploads)
    except AttachmentRefused as exc:
        if user_id is not None:
            exc.kept = keep(user_id, uploads)
        raise
    return uploads


# -- files kept across a refused try -----------------------------------------------------


@dataclass
class KeptFile:
    token: str  # signed: names the stored file, its name and its owner
    filename: str
    size: int


def _signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="kept-attachment")


def keep(user_id: int, uploads: list[Upload]) -> list[KeptFile]:
    """Store the files that were fine (committed, not linked yet) and sign a token for each."""
    kept = []
    for upload in uploads:
        row = write(lambda upload=upload: _stored_file(upload))
        token = _signer().dumps({"u": user_id, "f": row.id, "n": upload.filename})
        kept.append(KeptFile(token, upload.filename, len(upload.data)))
    return kept


def kept_uploads(user_id: int, tokens) -> list[Upload]:
    """The files a refused try kept, from their tokens (another user's token, or a forged one, is ignored)."""
    uploads = []
    for token in tokens:
        try:
            payload = _signer().loads(token)
        except BadSignature:
            continue
        if payload.get("u") != user_id:
            continue
        row = db.session.execute(
            select(
                StoredFile.data, StoredFile.content_type, StoredFile.width, StoredFile.height, StoredFile.pages
            ).where(StoredFile.id == payload.get("f"))
        ).first()
        if row is not None:
            info = FileInfo(row.content_type, row.width, row.height, row.pages)
            uploads.append(Upload(row.data, payload.get("n") or "file", info))
    return uploads


def fetch(url: str) -> Upload:
    """A file from an http(s) URL, fetched within the limits (see webapp.llm.attachments.fetch_url)."""
    try:
        data, final_url = fetch_url(url, limit=max_file_bytes())
    except AttachmentError as exc:
        raise AttachmentRefused(str(exc), exc.code) from None
    return check(data, final_url.rsplit("/", 1)[-1].split("?", 1)[0] or "file")


def check_model(model, uploads) -> None:
    """Refused (``model_not_multimodal``) when an image goes to a model that cannot read images; before
    anything is saved or queued."""
    if any(u.info.is_image for u in uploads) and not model.capabilities()[0]:
        raise AttachmentRefused(
            f"The model {model.model_id} cannot read images: pick a model that can, or remove the image.",
            "model_not_multimodal",
        )


# -- storing -----------------------------------------------------------------------------


def _stored_file(upload: Upload) -> StoredFile:
    """The file's row, added once per content: the same bytes sent again (by anyone) reuse it."""
    digest = upload.sha256
    existing = db.session.scalar(select(StoredFile).where(StoredFile.sha256 == digest))
    if existing is not None:
        return existing
    row = StoredFile(
        sha256=digest,
        content_type=upload.info.content_type,
        size=len(upload.data),
        width=upload.info.width,
        height=upload.info.height,
        pages=upload.info.pages,
        data=upload.data,
    )
    try:
        with db.session.begin_nested():  # the same file stored by another request at this moment
            db.session.add(row)
    except IntegrityError:
        return db.session.scalar(select(StoredFile).where(StoredFile.sha256 == digest))
    return row


def attach(user_id: int, uploads: list[Upload], message: Message | None = None, generation=None) -> list[Attachment]:
    """Link each upload to ``message`` (or an API request's ``generation``), in the session (not committed)."""
    links = []
    for position, upload in enumerate(uploads):
        link = Attachment(
            file=_stored_file(upload),
            user_id=user_id,
            filename=upload.filename,
            position=position,
            message_id=message.id if message is not None else None,
            generation_id=generation.id if generation is not None else None,
        )
        db.session.add(link)
        links.append(link)
    if message is not None and links:
        message.has_files = True
    return links


def copy_links(source: Message, target: Message, keep_ids: set[int] | None = None) -> int:
    """An edited message keeps the files of the version it replaces (those in ``keep_ids``, if given);
    returns how many."""
    kept = [a for a in source.attachments if keep_ids is None or a.id in keep_ids]
    for position, link in enumerate(kept):
        db.session.add(
            Attachment(
                file_id=link.file_id,
                user_id=link.user_id,
                filename=link.filename,
                position=position,
                message_id=target.id,
            )
        )
    if kept:
        target.has_files = True
    return len(kept)


def load_for(messages) -> None:
    """Fill ``message.attachments`` for these messages with one query (a page or an export shows them; a turn
    that only sends a message never pays for it)."""
    messages = [m for m in messages if "attachments" not in m.__dict__]
    for message in messages:
        if not message.has_files:
            set_committed_value(message, "attachments", [])
    messages = [m for m in messages if m.has_files]
    if not messages:
        return
    found: dict[int, list[Attachment]] = {m.id: [] for m in messages}
    query = select(Attachment).where(Attachment.message_id.in_(list(found))).order_by(Attachment.position)
    for link in db.session.scalars(query):
        found[link.message_id].append(link)
    for message in messages:
        set_committed_value(message, "attachments", found[message.id])


def owned(user: User, attachment_id: int) -> Attachment:
    """An attachment its owner (or an admin) may see; 404 for anyone else (other users' ids are not confirmed)."""
    link = db.session.get(Attachment, attachment_id)
    if link is None or (link.user_id != user.id and not user.is_admin):
        abort(404)
    return link


def file_bytes(link: Attachment) -> bytes:
    return db.session.scalar(select(StoredFile.data).where(StoredFile.id == link.file_id))


def delete_links(message_ids=(), generation_ids=()) -> None:
    """Delete the links of these messages/requests and then every file no link uses (in the session)."""
    conditions = []
    if message_ids:
        conditions.append(Attachment.message_id.in_(list(message_ids)))
    if generation_ids:
        conditions.append(Attachment.generation_id.in_(list(generation_ids)))
    if not conditions:
        return
    file_ids = set()
    for condition in conditions:
        file_ids.update(db.session.scalars(select(Attachment.file_id).where(condition)))
        db.session.execute(delete(Attachment).where(condition).execution_options(synchronize_session=False))
    unused = ~exists().where(Attachment.file_id == StoredFile.id)
    if file_ids:
        db.session.execute(
            delete(StoredFile).where(StoredFile.id.in_(file_ids), unused).execution_options(synchronize_session=False)
        )
    # Files kept from a refused try and never sent: gone a day later.
    db.session.execute(
        delete(StoredFile)
        .where(StoredFile.created_at < utcnow() - KEPT_FOR, unused)
        .execution_options(synchronize_session=False)
    )


# -- for the model -----------------------------------------------------------------------


def for_prompt(attachment_ids) -> dict[int, LLMAttachment]:
    """The LLM layer's attachments for these ids (bytes loaded in one query), by id."""
    ids = list(attachment_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(
            Attachment.id,
            Attachment.filename,
            StoredFile.data,
            StoredFile.content_type,
            StoredFile.width,
            StoredFile.height,
            StoredFile.pages,
        )
        .join(StoredFile, StoredFile.id == Attachment.file_id)
        .where(Attachment.id.in_(ids))
    ).all()
    found = {}
    for row in rows:
        attachment = LLMAttachment(content=row.data, name=row.filename)
        attachment._info = FileInfo(row.content_type, row.width, row.height, row.pages)  # checked when stored
        found[row.id] = attachment
    return found


def image_sizes(message_ids=(), attachment_ids=()) -> list[tuple[int | None, int | None]]:
    """(width, height) of the images on these messages or links: for the token estimate of a limit."""
    conditions = []
    if message_ids:
        conditions.append(Attachment.message_id.in_(list(message_ids)))
    if attachment_ids:
        conditions.append(Attachment.id.in_(list(attachment_ids)))
    if not conditions:
        return []
    query = (
        select(StoredFile.width, StoredFile.height)
        .join(Attachment, Attachment.file_id == StoredFile.id)
        .where(db.or_(*conditions), StoredFile.content_type.like("image/%"))
    )
    return [(w, h) for w, h in db.session.execute(query)]


__all__ = [
    "AttachmentRefused",
    "Upload",
    "attach",
    "check",
    "check_model",
    "copy_links",
    "delete_links",
    "fetch",
    "file_bytes",
    "for_prompt",
    "image_sizes",
    "owned",
    "read_uploads",
    "request_limit",
]
