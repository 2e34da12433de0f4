"""Single sign-on in Chromium, through the real OpenID Connect provider's own sign-in page."""

import re

import pytest
from playwright.sync_api import expect

from tests.support.browser import LONG


@pytest.fixture
def app_config(app_config, oidc_provider):
    return {**app_config, **oidc_provider.app_config(OIDC_ONLY=True, OIDC_BUTTON_LABEL="Sign in with Acme")}


def test_sign_in_through_the_providers_pages(page, web_server, oidc_provider, both_themes):
    oidc_provider.set_account("ada-idp", preferred_username="ada", email="ada@example.com", email_verified=True)
    page.goto(web_server + "/chat/")
    expect(page).to_have_url(re.compile(r"/auth/login\?next="))
    expect(page.get_by_label("Password", exact=True)).to_have_count(0)  # OIDC_ONLY: no password form
    expect(page.get_by_role("link", name="Sign up")).to_have_count(0)  # nor local sign-up
    both_themes("sso-login")
    page.get_by_role("link", name="Sign in with Acme").click()

    expect(page).to_have_url(re.compile(re.escape(oidc_provider.issuer) + r"/interaction/"), timeout=LONG)
    page.locator("input[name=login]").fill("ada-idp")
    page.locator("input[name=password]").fill("anything")
    page.locator("button[type=submit]").click()

    expect(page.locator(".topbar .whoami")).to_contain_text("ada", timeout=LONG)
    expect(page).to_have_url(re.compile(r"/chat/$"))  # back where the visit began
    page.goto(web_server + "/settings/sessions")
    expect(page.locator(".session-list .badge")).to_have_text("this device")  # an ordinary sign-in record
