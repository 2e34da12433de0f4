"""Attachments in the LLM layer: types read from the bytes, each provider's wire format (checked on the
fake servers, byte for byte), PDF text for models that cannot read PDFs, capabilities, token estimates,
and URLs fetched within limits."""

from __future__ import annotations

import base64

import pytest

import webapp.llm as llm
from tests.fakes import FakeFileServer
from tests.support.api import GEMINI_KEY, OPENAI_KEY
from tests.support.files import image, pdf, png
from webapp.llm.attachments import AttachmentError, image_tokens, inspect_bytes


@pytest.fixture(scope="module")
def file_server():
    with FakeFileServer() as server:
        yield server


def test_types_come_from_the_bytes():
    assert inspect_bytes(png(640, 480)).describe() == "640×480 PNG"
    assert inspect_bytes(image(20, 10, "JPEG")).content_type == "image/jpeg"
    assert inspect_bytes(image(20, 10, "WEBP")).content_type == "image/webp"
    assert inspect_bytes(image(20, 10, "GIF")).content_type == "image/gif"
    assert inspect_bytes(pdf("one", "two", "three")).describe() == "PDF, 3 pages"
    for disguised in (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b"<!doctype html><html><script>alert(1)</script></html>",
        b"%PDF-1.4 not really a pdf",
        png()[:40],  # a cut-off image
        b"",
    ):
        with pytest.raises(AttachmentError) as refused:
            inspect_bytes(disguised)
        assert refused.value.code == "unsupported_file_type"
    with pytest.raises(AttachmentError):
        inspect_bytes(pdf("x"), allowed=("image/png",))


def test_image_tokens_follow_openais_tile_rule():
    assert image_tokens(512, 512) == 255  # one tile
    assert image_tokens(1024, 1024) == 765  # scaled to 768x768: 4 tiles
    assert image_tokens(2048, 4096) == 1105  # to 1024x2048, then 768x1536: 2x3 tiles
    assert image_tokens(None, None) == 85


def test_echo_says_what_it_received_and_counts_the_image():
    response = llm.get_model("echo").prompt(
        "Look", attachments=[llm.Attachment(content=png(640, 480)), llm.Attachment(content=pdf("a", "b", "c"))]
    )
    assert response.text() == "Echo (offline model): (received 1 image, 640×480 PNG; 1 PDF, 3 pages) Look"
    assert response.usage.input_tokens == 1 + image_tokens(640, 480)


def test_attachment_from_a_path_and_in_a_conversation(tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png(32, 16))
    conversation = llm.get_model("echo").conversation()
    first = conversation.prompt("What is in this picture?", attachments=[llm.Attachment(path=str(photo))])
    assert "1 image, 32×16 PNG" in first.text()
    second = conversation.prompt("And now?")
    second.text()
    assert second.prompt.history[0]["attachments"][0].name == "photo.png"
    with pytest.raises(AttachmentError):
        llm.Attachment(path=str(photo), content=b"x")


def test_openai_gets_the_exact_bytes_as_content_parts(openai_settings):
    picture, document = png(64, 48), pdf("Quarterly figures")
    llm.get_model("gpt-4o").prompt(
        "Describe",
        attachments=[llm.Attachment(content=picture), llm.Attachment(content=document, name="report.pdf")],
    ).text()
    content = openai_settings.chat_requests[-1].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Describe"}
    assert content[1]["type"] == "image_url"
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(picture).decode()
    assert content[2] == {
        "type": "file",
        "file": {
            "filename": "report.pdf",
            "file_data": "data:application/pdf;base64," + base64.b64encode(document).decode(),
        },
    }


def test_text_only_request_is_unchanged(openai_settings):
    llm.get_model("gpt-4o").prompt("plain").text()
    assert openai_settings.chat_requests[-1].json["messages"] == [{"role": "user", "content": "plain"}]


def test_a_model_that_cannot_read_pdfs_gets_their_text(openai_server, use_settings):
    use_settings(INHOUSE_API_BASE=openai_server.url, INHOUSE_MODEL="llama-3-8b")
    document = pdf("The launch moves to March", "Budget: 40k")
    llm.get_model("inhouse").prompt("Summarise", attachments=[llm.Attachment(content=document, name="plan.pdf")]).text()
    content = openai_server.chat_requests[-1].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "Summarise"}
    assert content[1]["type"] == "text"
    assert content[1]["text"].startswith("[Extracted text of the PDF file 'plan.pdf']")
    assert "The launch moves to March" in content[1]["text"] and "Budget: 40k" in content[1]["text"]


def test_an_image_for_a_text_only_model_is_refused_before_any_request(openai_settings):
    with pytest.raises(AttachmentError) as refused:
        llm.get_model("gpt-3.5-turbo").prompt("x", attachments=[llm.Attachment(content=png())])
    assert refused.value.code == "model_not_multimodal"
    assert openai_settings.chat_requests == []


def test_gemini_gets_inline_data(gemini_server, use_settings):
    use_settings(GEMINI_API_BASE=gemini_server.url, GEMINI_API_KEY=GEMINI_KEY)
    picture = png(10, 10)
    llm.get_model("gemini-2.0-flash").prompt("What?", attachments=[llm.Attachment(content=picture)]).text()
    parts = gemini_server.last_request.json["contents"][-1]["parts"]
    assert parts[0] == {"text": "What?"}
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(picture).decode()}}


def test_litellm_sends_content_parts(openai_server, use_settings, litellm_module):
    use_settings(LLM_MODELS={"openai/gpt-4o-mini": {"api_base": openai_server.base_url, "api_key": OPENAI_KEY}})
    picture = png(8, 8)
    model = llm.get_model("openai/gpt-4o-mini")
    assert model.provider == "litellm" and model.capabilities()[0]  # LiteLLM's model table: supports_vision
    model.prompt("See", attachments=[llm.Attachment(content=picture)]).text()
    content = openai_server.chat_requests[-1].json["messages"][-1]["content"]
    assert content[0] == {"type": "text", "text": "See"}
    assert content[1]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(picture).decode()


def test_capabilities_and_admin_override(use_settings):
    assert llm.get_model("gpt-4o").capabilities() == (True, True)
    assert llm.get_model("gpt-3.5-turbo").capabilities() == (False, False)
    assert llm.get_model("echo").capabilities() == (True, True)
    use_settings(MODEL_CAPABILITIES={"gpt-3.5-turbo": {"images": True, "pdf": False}})
    assert llm.get_model("gpt-3.5-turbo").capabilities() == (True, False)


def test_urls_are_fetched_within_limits(file_server, use_settings):
    picture = png(4, 4)
    file_server.files["/cat.png"] = picture
    file_server.redirects["/moved.png"] = "/cat.png"
    file_server.files["/big.png"] = b"x" * (2 * 1024 * 1024)
    with pytest.raises(AttachmentError, match="private, loopback or link-local") as refused:
        llm.Attachment(url=file_server.url + "/cat.png").content_bytes()
    assert refused.value.code == "url_not_fetchable"
    use_settings(ATTACHMENT_ALLOW_PRIVATE_URLS=True, ATTACHMENT_MAX_FILE_MB=1, ATTACHMENT_FETCH_TIMEOUT=0.5)
    assert llm.Attachment(url=file_server.url + "/cat.png").content_bytes() == picture
    assert llm.Attachment(url=file_server.url + "/moved.png").content_bytes() == picture
    for path, code in (("/big.png", "file_too_large"), ("/missing.png", "url_not_fetchable")):
        with pytest.raises(AttachmentError) as refused:
            llm.Attachment(url=file_server.url + path).content_bytes()
        assert refused.value.code == code
    file_server.fail_next("stall", seconds=3)
    with pytest.raises(AttachmentError) as refused:
        llm.Attachment(url=file_server.url + "/cat.png").content_bytes()
    assert refused.value.code == "url_not_fetchable"
    with pytest.raises(AttachmentError):
        llm.Attachment(url="file:///etc/passwd").content_bytes()
