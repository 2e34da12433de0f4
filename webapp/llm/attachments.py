"""Files sent with a prompt: images and PDFs (after simonw/llm's ``Attachment``).

    from webapp.llm import Attachment, get_model
    get_model("gpt-4o").prompt("What is in this picture?", attachments=[Attachment(path="photo.jpg")])

An attachment is a path, a URL or bytes. Its type is read from its bytes (never from a
name or a client's word): PNG, JPEG, WebP and GIF through Pillow, PDF through pypdf.
Everything here works without Flask; the web app stores attachments and hands the
bytes in as ``content``.
"""

from __future__ import annotations

import base64
import functools
import io
import ipaddress
import json
import math
import socket
import sys
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from . import config
from .errors import LLMError

IMAGE_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif"}
PDF_TYPE = "application/pdf"
ALL_TYPES = (*IMAGE_TYPES.values(), PDF_TYPE)
SHORT_NAMES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF", PDF_TYPE: "PDF"}
MAX_REDIRECTS = 3
MIB = 1024 * 1024


class AttachmentError(LLMError):
    """An attachment that cannot be used: not an allowed type, too large, or a URL that cannot be fetched."""

    code = "invalid_attachment"

    def __init__(self, message: str, code: str = "invalid_attachment"):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FileInfo:
    """What the bytes are: the type, and the pixel size of an image or the page count of a PDF."""

    content_type: str
    width: int | None = None
    height: int | None = None
    pages: int | None = None

    @property
    def is_image(self) -> bool:
        return self.content_type.startswith("image/")

    def describe(self) -> str:
        """``640×480 PNG`` or ``PDF, 3 pages``."""
        short = SHORT_NAMES.get(self.content_type, self.content_type)
        if self.is_image:
            return f"{self.width}×{self.height} {short}"
        return f"{short}, {self.pages} page{'s' if self.pages != 1 else ''}"


def inspect_bytes(data: bytes, allowed=ALL_TYPES) -> FileInfo:
    """The type of ``data`` from its bytes; AttachmentError for anything else (SVG, HTML, a renamed file...)."""
    info = _image_info(data) if not data.startswith(b"%PDF-") else _pdf_info(data)
    if info is None or info.content_type not in allowed:
        kinds = ", ".join(SHORT_NAMES[t] for t in allowed if t in SHORT_NAMES)
        raise AttachmentError(f"This file is not one of the allowed types ({kinds}).", "unsupported_file_type")
    return info


def _image_info(data: bytes) -> FileInfo | None:
    from PIL import Image, UnidentifiedImageError

    try:
        # formats=: only the four raster types are even tried (Pillow reads only the header here).
        with Image.open(io.BytesIO(data), formats=list(IMAGE_TYPES)) as image:
            return FileInfo(IMAGE_TYPES[image.format], width=image.width, height=image.height)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None


def _pdf_info(data: bytes) -> FileInfo | None:
    try:
        return FileInfo(PDF_TYPE, pages=len(_pdf_reader(data).pages))
    except Exception:  # pypdf raises many kinds for a damaged file: all mean "not a readable PDF"
        return None


def _pdf_reader(data: bytes):
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # damaged files are refused, not logged line by line
    return PdfReader(io.BytesIO(data), strict=False)


def pdf_text(data: bytes) -> str:
    """The text of every page of a PDF, pages separated by a blank line."""
    try:
        pages = _pdf_reader(data).pages
        return "\n\n".join((page.extract_text() or "").strip() for page in pages).strip()
    except Exception as exc:
        raise AttachmentError(f"The text of this PDF cannot be read: {exc}", "unreadable_pdf") from None


# -- image tokens -------------------------------------------------------------------------


def image_tokens(width: int | None, height: int | None) -> int:
    """OpenAI's published estimate for one image at ``detail: high``: scaled to fit 2048×2048, then its
    shorter side to 768; 170 tokens per 512-pixel tile plus 85."""
    if not width or not height:
        return 85
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 170 * math.ceil(width / 512) * math.ceil(height / 512) + 85


# -- fetching URLs ---------------------------------------------------------------------------


def max_bytes() -> int:
    return int(float(config.setting("ATTACHMENT_MAX_FILE_MB") or 10) * MIB)


def _allowed_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _private_urls_allowed() -> bool:
    value = config.setting("ATTACHMENT_ALLOW_PRIVATE_URLS")
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def fetch_url(url: str, limit: int | None = None, timeout: float | None = None) -> tuple[bytes, str]:
    """GET ``url`` (http or https) and return ``(bytes, final url)``.

    At most ``limit`` bytes (ATTACHMENT_MAX_FILE_MB) within ``timeout`` seconds (ATTACHMENT_FETCH_TIMEOUT);
    redirects are followed by hand, each hop checked. Unless ATTACHMENT_ALLOW_PRIVATE_URLS is on, every
    address a name resolves to must be public (no private, loopback or link-local ranges) and the
    connection goes to the address that was checked, so a second DNS answer cannot point elsewhere.
    """
    import urllib3

    limit = max_bytes() if limit is None else limit
    timeout = float(config.setting("ATTACHMENT_FETCH_TIMEOUT") or 10) if timeout is None else timeout
    for _ in range(MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AttachmentError(f"Only http and https URLs can be fetched: {url[:200]}", "url_not_fetchable")
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
        address = _checked_address(host, port)
        kwargs = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
        if parts.scheme == "https":
            pool = urllib3.HTTPSConnectionPool(address, port, server_hostname=host, assert_hostname=host, **kwargs)
        else:
            pool = urllib3.HTTPConnectionPool(address, port, **kwargs)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            with pool:
                answer = pool.urlopen(
                    "GET",
                    path,
                    headers={"Host": parts.netloc.rsplit("@", 1)[-1], "User-Agent": "Switchboard"},
                    redirect=False,
                    preload_content=False,
                )
                try:
                    if answer.status in (301, 302, 303, 307, 308) and answer.headers.get("Location"):
                        url = urljoin(url, answer.headers["Location"])
                        continue
                    if answer.status != 200:
                        raise AttachmentError(f"The URL answered {answer.status}: {url[:200]}", "url_not_fetchable")
                    declared = answer.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise _too_large(limit)
                    data = bytearray()
                    for chunk in answer.stream(64 * 1024):
                        data += chunk
                        if len(data) > limit:
                            raise _too_large(limit)
                    return bytes(data), url
                finally:
                    answer.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise AttachmentError(
                f"The URL could not be fetched ({type(exc).__name__}): {url[:200]}", "url_not_fetchable"
            ) from None
    raise AttachmentError(f"Too many redirects: {url[:200]}", "url_not_fetchable")


def _too_large(limit: int) -> AttachmentError:
    return AttachmentError(f"The file is larger than the limit of {limit / MIB:g} MB.", "file_too_large")


def _checked_address(host: str, port: int) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        raise AttachmentError(f"The host {host!r} cannot be found.", "url_not_fetchable") from None
    addresses = [info[4][0] for info in infos]
    if not _private_urls_allowed():
        refused = [a for a in addresses if not _allowed_address(a)]
        if refused or not addresses:
            raise AttachmentError(
                f"The host {host!r} is at a private, loopback or link-local address: not fetched.", "url_not_fetchable"
            )
    return addresses[0]


# -- the attachment ----------------------------------------------------------------------------


@dataclass
class Attachment:
    """A file for the model: ``path=``, ``url=`` or ``content=`` bytes (``name`` is only shown to people)."""

    path: str | None = None
    url: str | None = None
    content: bytes | None = None
    name: str | None = None
    _info: FileInfo | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        given = [x for x in (self.path, self.url, self.content) if x is not None]
        if len(given) != 1:
            raise AttachmentError("An Attachment takes exactly one of path=, url= or content=.")
        if self.name is None:
            if self.path is not None:
                self.name = Path(self.path).name
            elif self.url is not None:
                self.name = Path(urlsplit(self.url).path).name or "file"
            else:
                self.name = "file"

    def content_bytes(self) -> bytes:
        """The bytes (a path is read and a URL fetched once, then kept)."""
        if self.content is None:
            if self.path is not None:
                path = Path(self.path)
                size = path.stat().st_size
                if size > max_bytes():
                    raise _too_large(max_bytes())
                self.content = path.read_bytes()
            else:
                self.content, _ = fetch_url(self.url)
        return self.content

    def info(self) -> FileInfo:
        if self._info is None:
            self._info = inspect_bytes(self.content_bytes())
        return self._info

    @property
    def content_type(self) -> str:
        return self.info().content_type

    def base64(self) -> str:
        return base64.b64encode(self.content_bytes()).decode("ascii")

    def data_url(self) -> str:
        return f"data:{self.content_type};base64,{self.base64()}"

    def estimated_tokens(self) -> int:
        info = self.info()
        if info.is_image:
            return image_tokens(info.width, info.height)
        return 0  # a PDF's text is counted as text where it is sent as text; providers report the rest


def describe(attachments) -> str:
    """``1 image, 640×480 PNG; 1 PDF, 3 pages``."""
    parts = []
    for attachment in attachments:
        info = attachment.info()
        if info.is_image:
            parts.append(f"1 image, {info.describe()}")
        else:
            parts.append(f"1 PDF, {info.pages} page{'s' if info.pages != 1 else ''}")
    return "; ".join(parts)


# -- what models can read ------------------------------------------------------------------------


@functools.cache
def _litellm_model_info() -> dict:
    """LiteLLM's model table, read from the JSON file it ships (importing litellm takes seconds)."""
    loaded = sys.modules.get("litellm")
    table = getattr(loaded, "model_cost", None) if loaded is not None else None
    if isinstance(table, dict) and table:
        return table
    spec = find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "model_prices_and_context_window_backup.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def litellm_capabilities(model_name: str) -> tuple[bool | None, bool | None]:
    """``(supports_vision, supports_pdf_input)`` as LiteLLM's model table says; None where it does not know."""
    table = _litellm_model_info()
    entry = table.get(model_name)
    if entry is None and "/" in model_name:
        entry = table.get(model_name.split("/", 1)[1])
    if not isinstance(entry, dict):
        return None, None
    return bool(entry.get("supports_vision")), bool(entry.get("supports_pdf_input"))


__all__ = [
    "Attachment",
    "AttachmentError",
    "FileInfo",
    "inspect_bytes",
    "pdf_text",
    "image_tokens",
    "fetch_url",
    "describe",
    "litellm_capabilities",
]
