"""Signing up, in and out through the real forms of a Flask test client."""

from __future__ import annotations

from tests.support.forms import csrf_token


class AuthActions:
    def __init__(self, client):
        self._client = client

    def signup(self, username="alice", password="correct horse", confirm=None):
        token = csrf_token(self._client, "/auth/signup")
        return self._client.post(
            "/auth/signup",
            data={"username": username, "password": password, "confirm": confirm or password, "csrf_token": token},
        )

    def login(self, username="alice", password="correct horse"):
        token = csrf_token(self._client, "/auth/login")
        return self._client.post("/auth/login", data={"username": username, "password": password, "csrf_token": token})

    def logout(self):
        token = csrf_token(self._client, "/chat/")
        return self._client.post("/auth/logout", data={"csrf_token": token})


def sign_in(app, username="alice", remember=False):
    """A new test client of ``app`` signed in as ``username`` through the form."""
    client = app.test_client()
    token = csrf_token(client, "/auth/login")
    data = {"username": username, "password": "correct horse", "csrf_token": token}
    if remember:
        data["remember"] = "y"
    assert client.post("/auth/login", data=data).status_code == 302
    return client


def signed_in(client) -> bool:
    return client.get("/chat/").status_code == 200
