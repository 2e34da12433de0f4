"""The Models page keeps each model's fallback chain: the models in order and the failures that move on."""

import html

from tests.support.admin import post
from webapp.fallbacks import chain_of


def save(client, model, fallbacks, on=("rate_limited", "provider_down", "context_window")):
    return post(
        client,
        "/admin/models/fallbacks",
        {"model": model, "fallbacks": fallbacks, "on": list(on)},
        page="/admin/models",
    )


def test_an_admin_sets_a_chain_and_the_page_shows_it(app, client, admin):
    response = save(client, "gpt-4o", "gemini-1.5-pro, 4o-mini", on=["rate_limited", "key_refused"])
    assert response.status_code == 302
    with app.app_context():
        chain = chain_of("gpt-4o")
    assert chain.fallbacks == ("gemini-1.5-pro", "gpt-4o-mini")  # an alias is stored as its model id
    assert chain.moves_on == {"rate_limited", "key_refused"}
    page = html.unescape(client.get("/admin/models").get_data(as_text=True))
    assert 'value="gemini-1.5-pro, gpt-4o-mini"' in page
    assert "model.fallbacks" in client.get("/admin/audit").get_data(as_text=True)


def test_a_new_chain_moves_on_for_the_default_kinds(app, client, admin):
    page = client.get("/admin/models").get_data(as_text=True)
    assert 'value="key_refused">' in page and 'value="rate_limited" checked>' in page


def test_an_unknown_model_or_the_model_itself_is_a_clear_error(app, client, admin):
    for text, said in (
        ("gpt-5-ultra", "Unknown model"),
        ("gpt-4o", "its own fallback"),
        ("4o-mini, gpt-4o-mini", "twice"),
    ):
        response = save(client, "gpt-4o", text)
        assert response.status_code == 400
        assert said in html.unescape(response.get_data(as_text=True))
    with app.app_context():
        assert chain_of("gpt-4o").fallbacks == ()


def test_an_empty_list_removes_the_chain(app, client, admin):
    save(client, "gpt-4o", "echo")
    assert save(client, "gpt-4o", "").status_code == 302
    with app.app_context():
        assert chain_of("gpt-4o").fallbacks == ()


def test_only_admins_may_set_fallbacks(app, client, auth):
    auth.signup()
    response = save(client, "gpt-4o", "echo")
    assert response.status_code in (403, 404)
