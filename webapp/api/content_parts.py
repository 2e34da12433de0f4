"""OpenAI's content parts in the APIs' chat requests: ``text``, ``image_url`` (a data URL or an http(s)
URL) and ``file`` (base64 ``file_data``, for PDFs), in any user message.

Parsing is in two steps: :func:`split` checks each part's shape while the request is read, and
:func:`load` (once the model is known and may be used) decodes or fetches the files, checks them from
their bytes and refuses an image for a model that cannot read images, before anything is recorded.
"""

from __future__ import annotations

import base64
import binascii

from .. import attachments
from .errors import ApiError

FILE_PARTS = ("image_url", "file")


def split(content, index: int, role: str) -> tuple[str, list[dict]]:
    """The text of a message's content and its file parts (unread), or a 400 for a malformed part."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _invalid(index, "must be a string or a list of content parts")
    texts, files = [], []
    for position, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind in FILE_PARTS and role == "user":
            files.append(_file_part(part, index, position))
        elif kind in FILE_PARTS:
            raise _invalid(index, f"has a {kind} part: only user messages can carry files")
        else:
            raise _invalid(index, f"part {position} is not a text, image_url or file part")
    return "".join(texts), files


def _file_part(part: dict, index: int, position: int) -> dict:
    if part["type"] == "image_url":
        image = part.get("image_url")
        url = image.get("url") if isinstance(image, dict) else image
        if not isinstance(url, str) or not url:
            raise _invalid(index, f"part {position}: image_url.url is required")
        return {"url": url, "filename": "image"}
    file = part.get("file")
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data:
        raise _invalid(index, f"part {position}: file.file_data (base64) is required (file ids are not supported)")
    name = file.get("filename") if isinstance(file.get("filename"), str) else None
    return {"data": data, "filename": name or "document.pdf"}


def _invalid(index: int, problem: str) -> ApiError:
    return ApiError(400, f"messages[{index}].content {problem}.", "invalid_content")


def load(model, turns: list[dict]) -> list[dict]:
    """The turns with their file parts read and checked (``uploads``); a 400 in OpenAI's shape otherwise."""
    pending = [part for turn in turns for part in turn.get("files") or ()]
    if not pending:
        return turns
    if not model.capabilities()[0] and any(
        "url" in p and not p["url"].startswith("data:application/pdf") for p in pending
    ):
        _refuse(
            attachments.AttachmentRefused(
                f"The model {model.model_id} cannot read images: pick a model that can, or remove the image.",
                "model_not_multimodal",
            )
        )
    loaded = []
    try:
        for turn in turns:
            files = turn.pop("files", None)
            if files:
                uploads = [_read(part) for part in files]
                attachments.check_count(uploads)
                attachments.check_model(model, uploads)
                turn = {**turn, "uploads": uploads}
            loaded.append(turn)
    except attachments.AttachmentRefused as exc:
        _refuse(exc)
    return loaded


def _read(part: dict) -> attachments.Upload:
    if "data" in part:
        return attachments.check(_base64(part["data"]), part["filename"])
    url = part["url"]
    if url.startswith("data:"):
        return attachments.check(_base64(url), part["filename"])
    if url.startswith(("http://", "https://")):
        return attachments.fetch(url)
    raise attachments.AttachmentRefused("image_url.url must be a data URL or an http(s) URL.", "invalid_content")


def _base64(value: str) -> bytes:
    """The bytes of a data URL (``data:<type>;base64,...``) or of plain base64; the declared type is ignored."""
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        if not header.endswith(";base64"):
            raise attachments.AttachmentRefused("Only base64 data URLs are supported.", "invalid_content")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise attachments.AttachmentRefused("The file's data is not valid base64.", "invalid_content") from None


def _refuse(exc: attachments.AttachmentRefused):
    raise ApiError(400, str(exc), exc.code) from None
