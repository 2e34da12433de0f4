"""Sign up, sign out, sign in; model settings; personal API keys (shown once, revoked)."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import (
    LONG,
    PASSWORD,
    account_menu,
    send,
    sign_in,
    sign_up,
    unlabelled_controls,
    wait_done,
)


@pytest.fixture
def app_config(app_config):
    # OpenAI counts as set up (a key; these tests never call it), so its models are offered.
    return {**app_config, "OPENAI_API_KEY": "sk-test-not-called"}


def test_sign_up_sign_out_and_sign_in(page, live_server):
    sign_up(page, live_server, "turing")
    expect(page.locator(".topbar .whoami")).to_contain_text("turing")
    account_menu(page).get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto(live_server + "/chat/")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    page.get_by_label("Username").fill("turing")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    sign_in(page, live_server, "turing", PASSWORD)
    expect(page).to_have_url(re.compile(r"/chat/"))
    # A taken username is refused with a message next to the field.
    account_menu(page).get_by_role("button", name="Sign out").click()
    page.goto(live_server + "/auth/signup")
    page.get_by_label("Username").fill("turing")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_text("That username is taken.")).to_be_visible()
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")


def test_model_settings_apply_to_new_conversations(page, live_server, both_themes):
    sign_up(page, live_server, "knuth")
    page.get_by_role("link", name="Models").click()
    expect(page.get_by_role("heading", name="Model settings")).to_be_visible()
    page.get_by_label("Default model").select_option("gpt-4o-mini")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_text("New conversations now use gpt-4o-mini.")).to_be_visible()
    page.get_by_label("Default model").select_option("echo")
    page.get_by_role("button", name="Save defaults").click()
    page.get_by_label("System prompt").fill("Be brief.")
    page.get_by_label("Delay").fill("0.01")
    page.get_by_role("button", name="Save defaults").click()
    expect(page.get_by_text("Defaults saved. They apply to new conversations.")).to_be_visible()
    expect(page.get_by_label("Delay")).to_have_value("0.01")
    assert unlabelled_controls(page) == []
    page.mouse.move(0, 0)
    both_themes("settings")

    page.get_by_role("link", name="Chat").click()
    expect(page.get_by_label("Model", exact=True)).to_have_value("echo")
    wait_done(send(page, "defaults please"))
    expect(page.locator("details.settings summary")).to_contain_text("Model: echo · system prompt set · 1 option")


def test_personal_api_keys_are_shown_once_and_revoked(page, live_server, both_themes):
    sign_up(page, live_server, "hamilton")
    account_menu(page).get_by_role("link", name="API keys").click()
    expect(page.get_by_text("You have no API keys yet.")).to_be_visible()
    expect(page.get_by_label("Name")).to_have_attribute("required", "")  # the browser asks for a name first
    page.get_by_label("Name").fill("laptop scripts")
    page.get_by_role("button", name="Create key").click()
    key = page.locator("#new-key").inner_text()
    assert re.fullmatch(r"sb-\S{20,}", key), key
    expect(page.get_by_text("it is shown only this once")).to_be_visible()
    assert unlabelled_controls(page) == []
    page.mouse.move(0, 0)
    both_themes("api-keys")
    # The key works for the OpenAI-compatible API...
    models = page.request.get(page.url.split("/settings")[0] + "/v1/models", headers={"Authorization": f"Bearer {key}"})
    assert models.status == 200 and "echo" in models.text()
    page.reload()  # post/redirect/get: a reload creates nothing
    assert key not in page.content()  # ...and is never shown again, only its prefix
    expect(page.locator(".key-list li")).to_have_count(1)
    expect(page.locator(".key-list li")).to_contain_text("laptop scripts")
    expect(page.locator(".key-list li")).to_contain_text("last used")
    page.get_by_role("button", name="Revoke laptop scripts").click()
    expect(page.get_by_text("is revoked; programs using it can no longer sign in")).to_be_visible()
    expect(page.locator(".key-list li")).to_contain_text("revoked")
    expect(page.get_by_role("button", name="Revoke laptop scripts")).to_have_count(0)
    refused = page.request.get(
        page.url.split("/settings")[0] + "/v1/models", headers={"Authorization": f"Bearer {key}"}
    )
    assert refused.status == 401
    expect(page.locator("body")).to_be_visible(timeout=LONG)
