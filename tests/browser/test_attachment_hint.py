"""The composer says which models read images: at once when a new chat's model is chosen, and without
scripting for the model the page was drawn with."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fakes import closed_port_url
from tests.support.browser import sign_up
from webapp import site_settings
from webapp.extensions import db

BLIND = "This model cannot read images"


@pytest.fixture
def app_config(app_config):
    # OpenAI is set up (never called here), so the picker offers a model that sees beside echo, made blind below.
    return {**app_config, "OPENAI_API_KEY": "sk-test-unreachable", "OPENAI_BASE_URL": closed_port_url() + "/v1"}


def make_blind(app, *model_ids):
    with app.app_context():
        site_settings.set_site(
            site_settings.MODEL_CAPABILITIES, {m: {"images": False, "pdf": False} for m in model_ids}
        )
        db.session.commit()


@pytest.fixture
def blind_echo(app):
    make_blind(app, "echo")


def test_choosing_a_model_tells_at_once_whether_it_reads_images(page, web_server, blind_echo):
    sign_up(page, web_server, "hana")
    picker, hint = page.locator("#new-model"), page.locator("#attach-hint")
    picker.select_option("gpt-4o")
    expect(hint).not_to_contain_text(BLIND)
    picker.select_option("echo")
    expect(hint).to_contain_text(BLIND)
    picker.select_option("gpt-4o")
    expect(hint).not_to_contain_text(BLIND)


def test_without_scripting_the_drawn_model_says_so(app, browser, web_server):
    make_blind(app, "echo", "gpt-4o")  # whichever the picker starts on cannot see
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        sign_up(page, web_server, "ivo")
        expect(page.locator("#attach-hint")).to_contain_text(BLIND)
    finally:
        context.close()
