"""Content parts on /v1 (the openai SDK) and on the seed API: images as data URLs and URLs, PDFs as file
parts, the exact bytes reaching the provider, and every refusal as an OpenAI-shaped 400."""

from __future__ import annotations

import base64

import openai
import pytest
from sqlalchemy import func, select

from tests.fakes import FakeFileServer
from tests.support.api import bearer, http
from tests.support.files import pdf, png
from webapp.extensions import db
from webapp.models import Attachment, Generation, StoredFile


def sdk(server, key):
    return openai.OpenAI(base_url=f"{server}/v1", api_key=key, max_retries=0, timeout=30)


def data_url(content: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(content).decode()


@pytest.fixture
def file_server():
    with FakeFileServer() as server:
        yield server


@pytest.fixture
def app_config(app_config):
    return {**app_config, "ATTACHMENT_ALLOW_PRIVATE_URLS": True}  # the tests' own servers are on 127.0.0.1


def image_message(url: str, text="What is this?"):
    return [
        {"role": "user", "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]}
    ]


def test_an_image_as_a_data_url_and_as_a_url(server, api_key, worker, openai_server, file_server, app):
    picture, other = png(64, 32), png(16, 16)
    client = sdk(server, api_key)
    client.chat.completions.create(model="gpt-4o", messages=image_message(data_url(picture)))
    sent = openai_server.chat_requests[-1].json["messages"][-1]["content"]
    assert sent == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": data_url(picture)}},
    ]
    file_server.files["/pic.png"] = other
    completion = client.chat.completions.create(model="echo", messages=image_message(file_server.url + "/pic.png"))
    assert "(received 1 image, 16×16 PNG)" in completion.choices[0].message.content
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StoredFile)) == 2
        generation = db.session.scalar(select(Generation).order_by(Generation.id.desc()))
        assert generation.request_messages[-1]["attachments"]
        assert generation.input_tokens > 85  # the image counted


def test_a_pdf_file_part_and_history_with_files(server, api_key, worker, openai_server):
    document = pdf("Minutes of the meeting")
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Keep this"},
                {"type": "image_url", "image_url": {"url": data_url(png(8, 8))}},
            ],
        },
        {"role": "assistant", "content": "Kept."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "And this"},
                {
                    "type": "file",
                    "file": {"filename": "minutes.pdf", "file_data": data_url(document, "application/pdf")},
                },
            ],
        },
    ]
    sdk(server, api_key).chat.completions.create(model="gpt-4o", messages=messages)
    sent = openai_server.chat_requests[-1].json["messages"]
    assert sent[0]["content"][1]["type"] == "image_url"
    assert sent[2]["content"][1] == {
        "type": "file",
        "file": {"filename": "minutes.pdf", "file_data": data_url(document, "application/pdf")},
    }


def refused(server, api_key, messages, model="echo") -> dict:
    with pytest.raises(openai.BadRequestError) as error:
        sdk(server, api_key).chat.completions.create(model=model, messages=messages)
    assert error.value.status_code == 400
    return error.value.body


def test_every_refusal_is_an_openai_shaped_400(server, api_key, worker, openai_server, file_server, app):
    body = refused(server, api_key, image_message(data_url(png())), model="gpt-3.5-turbo")
    assert body["code"] == "model_not_multimodal" and "cannot read images" in body["message"]
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"/>'
    assert refused(server, api_key, image_message(data_url(svg)))["code"] == "unsupported_file_type"
    file_server.files["/big.png"] = b"\x89PNG" + b"0" * (11 * 1024 * 1024)
    assert refused(server, api_key, image_message(file_server.url + "/big.png"))["code"] == "file_too_large"
    assert refused(server, api_key, image_message(file_server.url + "/gone.png"))["code"] == "url_not_fetchable"
    assert refused(server, api_key, image_message("data:image/png;base64,!!!"))["code"] == "invalid_content"
    assert openai_server.chat_requests == []
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Generation)) == 0
        assert db.session.scalar(select(func.count()).select_from(Attachment)) == 0


def test_a_private_address_is_refused_while_the_setting_is_off(app, server, api_key, worker, file_server):
    app.config["ATTACHMENT_ALLOW_PRIVATE_URLS"] = False
    from webapp import llm

    llm.configure(app.config)
    file_server.files["/pic.png"] = png()
    body = refused(server, api_key, image_message(file_server.url + "/pic.png"))
    assert body["code"] == "url_not_fetchable" and "private, loopback or link-local" in body["message"]
    assert file_server.requests == []


def test_the_seed_api_takes_the_same_parts(server, access_token, worker):
    reply = http(
        "POST",
        f"{server}/api/chat/completions/?provider=echo",
        {"model": "echo", "messages": image_message(data_url(png(3, 2)), "Describe")},
        bearer(access_token),
    )
    assert reply.status == 200, reply.json
    assert "(received 1 image, 3×2 PNG)" in reply.json["choices"][0]["message"]["content"]


@pytest.mark.slow  # starts a process
def test_the_documented_curl_example_sends_an_image(server, access_token, worker, openai_server, tmp_path):
    """docs/api.md's image example, run with curl as written (only the port substituted)."""
    import re
    import shutil
    import subprocess
    from urllib.parse import urlsplit

    from webapp.paths import PROJECT_ROOT

    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    document = (PROJECT_ROOT / "docs" / "api.md").read_text()
    [command] = re.findall(r"```shell\n(curl .*?)\n```", document, re.S)
    picture = png(12, 12)
    (tmp_path / "photo.png").write_bytes(picture)
    command = command.replace(":8000", f":{urlsplit(server).port}").replace("$ACCESS_TOKEN", access_token)
    result = subprocess.run(
        ["bash", "-c", command + " -s -S"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert '"chat.completion"' in result.stdout, result.stdout
    sent = openai_server.chat_requests[-1].json["messages"][-1]["content"]
    assert sent[1]["image_url"]["url"] == data_url(picture)
