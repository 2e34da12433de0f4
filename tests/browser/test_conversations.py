"""Models and system prompts per conversation, error cards with retry, reload mid-stream, export JSON and delete."""

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.fakes import closed_port_url
from tests.support.browser import LONG, send, sign_up, wait_done


@pytest.fixture
def app_config(app_config):
    # OpenAI is set up but its server is down: its models are offered, and their replies fail plainly.
    return {
        **app_config,
        "OPENAI_API_KEY": "sk-test-unreachable",
        "OPENAI_BASE_URL": closed_port_url() + "/v1",
        "RETRY_MAX_ATTEMPTS": 1,
    }


def save_settings(page, model=None, system_prompt=None):
    settings = page.locator("details.settings")
    if settings.get_attribute("open") is None:
        settings.locator("summary").click()
    if model:
        page.get_by_label("Model", exact=True).select_option(model)
    if system_prompt is not None:
        page.get_by_label("System prompt").fill(system_prompt)
    page.get_by_role("button", name="Save settings").click()


def test_switch_models_and_system_prompts_error_card_and_retry(page, live_server, both_themes):
    sign_up(page, live_server, "hopper")
    page.get_by_label("Model", exact=True).select_option("gpt-4o")  # the new chat's model picker
    reply = send(page, "are you there?")
    # The OpenAI server is down: the reply fails with a clear card and a Retry button.
    wait_done(reply, "failed")
    card = reply.locator(".failure[role=alert]")
    expect(card).to_contain_text("The model provider is unavailable right now.")
    expect(reply.locator(".model-name")).to_have_text("gpt-4o")
    expect(card.get_by_role("button", name="Retry")).to_be_visible()
    page.mouse.move(0, 0)
    both_themes("chat-error", full_page=False)

    save_settings(page, model="echo", system_prompt="Answer like a pirate.")
    expect(page.get_by_text("Now using echo.")).to_be_visible()
    expect(page.locator("details.settings summary")).to_contain_text("Model: echo · system prompt set")
    save_settings(page)  # same model: its options are shown and saved
    expect(page.get_by_text("Settings saved.")).to_be_visible()
    expect(page.get_by_label("System prompt")).to_have_value("Answer like a pirate.")
    expect(page.get_by_label("Delay")).to_have_attribute("type", "number")  # the echo model's own option

    page.locator(".failure").get_by_role("button", name="Retry").click()
    reply = page.locator(".message.assistant")
    wait_done(reply)
    expect(reply.locator(".model-name")).to_have_text("echo")
    expect(reply.locator(".content")).to_contain_text("are you there?")
    expect(reply.locator(".version-count")).to_have_text("2/2")
    expect(reply.locator(".failure")).to_have_count(0)

    save_settings(page, system_prompt="")
    expect(page.locator("details.settings summary")).not_to_contain_text("system prompt set")


def test_reload_while_streaming_resumes_the_reply(page, live_server):
    sign_up(page, live_server, "dijkstra")
    words = [f"r{i}" for i in range(70)]
    reply = send(page, " ".join(words))
    expect(reply.locator(".content")).to_contain_text("r6 ", timeout=LONG)
    page.reload()
    reply = page.locator(".message.assistant")
    # The server renders what was written so far, and the script carries on from there.
    expect(reply.locator(".content")).to_contain_text("r6 ")
    expect(reply).to_have_attribute("data-status", "running")
    wait_done(reply)
    text = reply.locator(".content").inner_text()
    assert text.endswith(" ".join(words)) and text.count("r6 ") == 1, text


def test_export_json_and_delete_with_javascript(page, live_server, tmp_path):
    sign_up(page, live_server, "lovelace")
    wait_done(send(page, "notes on engines"))
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Export JSON").click()
    target = Path(tmp_path / "export.json")
    download_info.value.save_as(target)
    exported = json.loads(target.read_text())
    assert "notes on engines" in json.dumps(exported)
    page.get_by_role("link", name="Delete").click()
    expect(page.get_by_role("heading", name="Delete this conversation?")).to_be_visible()
    page.get_by_role("link", name="Keep it").click()
    expect(page.locator(".conversations").get_by_role("link")).to_have_count(1)
    page.get_by_role("link", name="Delete").click()
    page.get_by_role("button", name="Delete conversation").click()
    expect(page.get_by_text("Deleted “notes on engines”.")).to_be_visible()
    expect(page.get_by_text("No conversations yet.")).to_be_visible()
