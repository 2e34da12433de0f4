"""Sign-in throttling by client (webapp/accounts/throttle.py): an attacker's failures never lock the real user out,
the page and POST /api/token/ share one design, and the error says when to try again."""

import re

import pytest

from webapp import create_app
from webapp.accounts import create_user
from webapp.extensions import db
from webapp.queue import get_redis

ATTACKER, VICTIM, OFFICE = "203.0.113.66", "198.51.100.7", "192.0.2.10"


@pytest.fixture
def alice(app):
    app.config["LOGIN_MAX_FAILURES"] = 3
    with app.app_context():
        create_user("alice", "correct horse")
        db.session.commit()


def page_login(app, username, password, address, headers=None):
    """A sign-in through the form from ``address`` (a fresh browser each time)."""
    client = app.test_client()
    environ = {"REMOTE_ADDR": address}
    page = client.get("/auth/login", environ_base=environ, headers=headers)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.get_data(as_text=True)).group(1)
    return client.post(
        "/auth/login",
        data={"username": username, "password": password, "csrf_token": token},
        environ_base=environ,
        headers=headers,
    )


def api_login(app, username, password, address):
    return app.test_client().post(
        "/api/token/", json={"username": username, "password": password}, environ_base={"REMOTE_ADDR": address}
    )


def test_an_attacker_cannot_lock_the_user_out_by_form_or_api(app, alice):
    # The attack of the finding: many wrong passwords for "alice", in any case, by form and API.
    for attempt in range(6):
        name = "ALICE" if attempt % 2 else "alice"
        page_login(app, name, "guess", ATTACKER)
        api_login(app, name, "guess", ATTACKER)
    assert page_login(app, "alice", "correct horse", ATTACKER).status_code == 429  # the attacker is stopped
    # ...but alice, from her own address, signs in at once through either door.
    assert page_login(app, "alice", "correct horse", VICTIM).status_code == 302
    reply = api_login(app, "Alice", "correct horse", VICTIM)
    assert reply.status_code == 200 and set(reply.get_json()) == {"access", "refresh"}


def test_failures_count_per_username_and_client_in_any_case_across_form_and_api(app, alice):
    page_login(app, "alice", "wrong", ATTACKER)
    api_login(app, "ALICE", "wrong", ATTACKER)
    page_login(app, " Alice ", "wrong", ATTACKER)
    page = page_login(app, "alice", "correct horse", ATTACKER)
    assert page.status_code == 429
    retry_after = int(page.headers["Retry-After"])
    assert 0 < retry_after <= 15 * 60
    text = page.get_data(as_text=True)
    assert "Too many failed sign-in attempts" in text and re.search(r"Try again in \d+ (minute|second)s?\.", text)
    reply = api_login(app, "alice", "correct horse", ATTACKER)
    assert reply.status_code == 429 and 0 < int(reply.headers["Retry-After"]) <= 15 * 60
    assert (
        reply.get_json()["error"]["code"] == "login_throttled"
        and "Try again in" in reply.get_json()["error"]["message"]
    )


def test_one_address_guessing_many_accounts_is_stopped(app):
    app.config["LOGIN_MAX_FAILURES"] = 1  # 5 failures per address across names
    for name in ["u1", "u2", "u3", "u4", "u5"]:
        assert page_login(app, name, "whatever", ATTACKER).status_code == 200
    assert page_login(app, "u6", "whatever", ATTACKER).status_code == 429
    assert api_login(app, "u7", "whatever", ATTACKER).status_code == 429
    assert page_login(app, "u6", "whatever", OFFICE).status_code == 200  # another address is unaffected


def test_a_spread_out_attack_delays_failing_clients_only(app, alice):
    # Guesses for alice from many addresses, each below the per-client limit: past LOGIN_MAX_FAILURES in
    # all, every client that fails must also wait a short, growing delay; a client that never failed does not.
    for index in range(5):
        page_login(app, "alice", "guess", f"203.0.113.{index}")
    delayed = page_login(app, "alice", "correct horse", "203.0.113.4")
    assert delayed.status_code == 429 and 0 < int(delayed.headers["Retry-After"]) <= 60
    assert page_login(app, "alice", "correct horse", VICTIM).status_code == 302
    with app.app_context():  # the delay grows with the username-wide count
        ttls = [get_redis().ttl(key) for key in get_redis().scan_iter("switchboard:login-failures:delay:*")]
    assert len(ttls) == 2 and max(ttls) > 2


def test_success_forgets_that_clients_failures(app, alice):
    page_login(app, "alice", "wrong", OFFICE)
    page_login(app, "alice", "wrong", OFFICE)
    assert page_login(app, "alice", "correct horse", OFFICE).status_code == 302
    page_login(app, "alice", "wrong", OFFICE)  # a third failure, but the first since the success
    assert page_login(app, "alice", "correct horse", OFFICE).status_code == 302


@pytest.mark.parametrize("proxies", [0, 1])
def test_the_client_address_is_the_forwarded_one_only_behind_trusted_proxies(instance_path, app_config, proxies):
    app = create_app({**app_config, "TRUSTED_PROXIES": proxies, "LOGIN_MAX_FAILURES": 2})
    with app.app_context():
        db.drop_all()
        db.create_all()
        get_redis().flushdb()
        create_user("alice", "correct horse")
        db.session.commit()
    proxy = "10.0.0.1"  # every request reaches the app through the same proxy
    for forwarded in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):  # the attacker varies the header
        page_login(app, "alice", "guess", proxy, headers={"X-Forwarded-For": forwarded})
    attacker = page_login(app, "alice", "correct horse", proxy, headers={"X-Forwarded-For": "203.0.113.1"})
    victim = page_login(app, "alice", "correct horse", proxy, headers={"X-Forwarded-For": VICTIM})
    if proxies:
        # Behind a trusted proxy each client is itself: the attacker's own address counted, alice's did not
        # (the username-wide delay touches only addresses that failed).
        assert victim.status_code == 302
        with app.app_context():
            keys = {
                key.decode().rsplit(":", 1)[1] for key in get_redis().scan_iter("switchboard:login-failures:addr:*")
            }
        assert keys == {"203.0.113.1", "203.0.113.2", "203.0.113.3"}
    else:
        # No trusted proxy: the header is the client's own claim and is ignored; all came from one address.
        assert attacker.status_code == 429 and victim.status_code == 429
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
