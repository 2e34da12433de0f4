"""Refresh tokens rotate (webapp/api/tokens.py): each refresh answers a new pair and retires the token sent;
a retired token replayed revokes its whole family (every token from that sign-in) and answers 401."""

import concurrent.futures
import threading
from datetime import timedelta

import jwt
from sqlalchemy import select

from tests.support.api import PASSWORD, USERNAME, http
from webapp.extensions import db
from webapp.models import UserSession


def obtain(client):
    reply = client.post("/api/token/", json={"username": USERNAME, "password": PASSWORD})
    assert reply.status_code == 200
    return reply.get_json()


def refresh(client, token):
    return client.post("/api/token/refresh/", json={"refresh": token})


def works(client, access) -> bool:
    return client.get("/v1/models", headers={"Authorization": f"Bearer {access}"}).status_code == 200


def test_each_refresh_returns_a_new_pair_and_retires_the_old_refresh_token(client, user):
    first = obtain(client)
    second = refresh(client, first["refresh"])
    assert second.status_code == 200 and set(second.get_json()) == {"access", "refresh"}
    second = second.get_json()
    assert second["refresh"] != first["refresh"] and works(client, second["access"])
    claims = [jwt.decode(token, options={"verify_signature": False}) for token in (first["refresh"], second["refresh"])]
    assert claims[0]["sid"] == claims[1]["sid"] and claims[0]["jti"] != claims[1]["jti"]  # one family
    third = refresh(client, second["refresh"]).get_json()  # the new one works in its turn
    assert works(client, third["access"])


def test_a_replayed_refresh_token_revokes_the_whole_family(app, client, user):
    stolen = obtain(client)
    other_sign_in = obtain(client)  # another program of the same user: a family of its own
    rotated = refresh(client, stolen["refresh"]).get_json()  # the rightful client refreshes
    newest = refresh(client, rotated["refresh"]).get_json()

    replay = refresh(client, stolen["refresh"])  # the thief replays the retired token
    assert replay.status_code == 401
    error = replay.get_json()["error"]
    assert error["code"] == "token_not_valid" and "already used" in error["message"]
    # Every token descended from that sign-in is now dead, the newest included...
    for access in (stolen["access"], rotated["access"], newest["access"]):
        assert not works(client, access)
    for token in (rotated["refresh"], newest["refresh"], stolen["refresh"]):
        assert refresh(client, token).status_code == 401
    # ...and the other sign-in is untouched.
    assert works(client, other_sign_in["access"])
    assert refresh(client, other_sign_in["refresh"]).status_code == 200
    with app.app_context():
        records = db.session.scalars(select(UserSession).order_by(UserSession.id)).all()
        assert [record.revoked_at is not None for record in records] == [True, False]


def test_the_refresh_state_is_in_the_database_not_the_token(app, client, user):
    pair = obtain(client)
    claims = jwt.decode(pair["refresh"], options={"verify_signature": False})
    with app.app_context():
        record = db.session.scalar(select(UserSession))
        assert record.kind == "api" and record.refresh_jti == claims["jti"]
        assert record.token_hash != claims["sid"]  # only the hash of the family id is stored


def refresh_twice_at_once(server):
    """Sign in, then present the one refresh token twice at the same moment; the two answers."""
    pair = http("POST", f"{server}/api/token/", {"username": USERNAME, "password": PASSWORD}).json
    start = threading.Barrier(2)

    def refresh_now(_index):
        start.wait(timeout=10)
        return http("POST", f"{server}/api/token/refresh/", {"refresh": pair["refresh"]})

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        return list(pool.map(refresh_now, range(2)))


def test_two_refreshes_racing_with_one_token_cannot_both_win_without_a_grace(app, server, user):
    """Both present the same refresh token at once (a thief and the client): one conditional UPDATE decides,
    so at most one gets a new pair, and the loser's replay revokes the family."""
    app.config["REFRESH_REUSE_GRACE_SECONDS"] = 0
    replies = refresh_twice_at_once(server)
    assert sorted(reply.status for reply in replies) == [200, 401]
    winner = next(reply for reply in replies if reply.status == 200).json
    # The family is revoked: even the winner's new tokens are refused.
    assert http("POST", f"{server}/api/token/refresh/", {"refresh": winner["refresh"]}).status == 401


def test_two_refreshes_racing_with_one_token_get_the_same_new_pair_within_the_grace(server, user):
    """Two tabs (or a retry after a timeout) refresh with the same token at once: both get one new pair,
    and the sign-in goes on."""
    replies = refresh_twice_at_once(server)
    assert [reply.status for reply in replies] == [200, 200], [reply.text for reply in replies]
    assert replies[0].json == replies[1].json
    newest = http("POST", f"{server}/api/token/refresh/", {"refresh": replies[0].json["refresh"]})
    assert newest.status == 200


def test_a_refresh_token_sent_again_after_the_grace_revokes_the_family(app, client, user):
    first = obtain(client)
    second = refresh(client, first["refresh"]).get_json()
    assert refresh(client, first["refresh"]).get_json() == second  # a retry within the grace
    with app.app_context():  # the rotation is now older than the grace period
        record = db.session.scalar(select(UserSession))
        record.refreshed_at -= timedelta(seconds=app.config["REFRESH_REUSE_GRACE_SECONDS"] + 1)
        db.session.commit()
    late = refresh(client, first["refresh"])
    assert late.status_code == 401 and "already used" in late.get_json()["error"]["message"]
    assert not works(client, second["access"])
    # Only the token just retired has a grace: an older one is a replay at once.
    third = obtain(client)
    fourth = refresh(client, third["refresh"]).get_json()
    refresh(client, fourth["refresh"])
    assert refresh(client, third["refresh"]).status_code == 401
