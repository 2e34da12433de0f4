"""Nothing cut short (issue 22): through real gunicorn as ``make run`` starts it.

- A body shorter than its ``Content-Length`` (the client hung up early) is a 400 and saves nothing,
  on both databases: forms and JSON alike. The whole body still goes through.
- A web process stalled (SIGSTOP) for longer than gunicorn's default 2 s keep-alive still answers
  every request that arrived meanwhile (``WEB_KEEPALIVE``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.support.forms import COMPOSER_RE, CSRF_RE, SUBMISSION_RE
from tests.support.stack import GUNICORN_CHILD_RE, Stack
from tests.support.waiting import wait_for
from webapp.config import normalize_database_url

pytestmark = pytest.mark.slow

STALL_SECONDS = 3  # longer than gunicorn's default keep-alive (2 s), which cut every waiting request
WAITING_REQUESTS = 20


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cut.db'}"
    if not os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("PostgreSQL: set TEST_DATABASE_URL")
    return request.getfixturevalue("postgres_url")


def raw_request(port: int, head: str, body: bytes, send: int) -> tuple[int, str]:
    """Send the head and the first ``send`` bytes of ``body`` (Content-Length says all of it), then hang up
    the sending side, as a client that went away would; the answer is still read."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        request = f"{head}Host: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode() + body[:send])
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer.decode(errors="replace")


def test_a_body_cut_short_is_refused_and_saves_nothing(tmp_path, redis_url, database):
    stack = Stack(tmp_path, database, redis_url, workers=0)  # a saved message would stay queued: enough
    engine = create_engine(normalize_database_url(database))
    try:
        stack.start()
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            csrf = CSRF_RE.search(client.get("/auth/signup").text).group(1)
            form = {"username": "cut", "password": "cut test password", "confirm": "cut test password"}
            assert client.post("/auth/signup", data={**form, "csrf_token": csrf}).status_code == 302
            cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())

            def chat_form(content: str) -> tuple[str, bytes]:
                composer = COMPOSER_RE.search(client.get("/chat/").text)
                fields = {
                    "csrf_token": CSRF_RE.search(composer.group(2)).group(1),
                    "submission_token": SUBMISSION_RE.search(composer.group(2)).group(1),
                    "content": content,  # last: a cut shortens the message itself
                }
                return composer.group(1), httpx.QueryParams(fields).__str__().encode()

            def post_chat(content: str, send) -> tuple[int, str]:
                action, body = chat_form(content)
                head = (
                    f"POST {action} HTTP/1.1\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                )
                return raw_request(stack.port, head, body, send(body))

            def post_signup(username: str, send) -> tuple[int, str]:
                # Valid JSON even without its last byte (the newline): only Content-Length tells it was cut.
                body = (json.dumps({"username": username, "password": "json cut password"}) + "\n").encode()
                head = "POST /api/signup/ HTTP/1.1\r\nContent-Type: application/json\r\n"
                return raw_request(stack.port, head, body, send(body))

            cuts = {
                "headers only": lambda body: 0,
                "half the body": lambda body: len(body) // 2,
                "one byte short": lambda body: len(body) - 1,
            }
            for name, send in cuts.items():
                status, answer = post_chat(f"form message {name} " + "x" * 200, send)
                assert status == 400 and "connection was cut" in answer, f"form, {name}: {answer[:500]}"
                status, answer = post_signup(f"json_{name.replace(' ', '_')}", send)
                assert status == 400 and "connection was cut" in answer, f"JSON, {name}: {answer[:500]}"
                assert answer.split("\r\n\r\n", 1)[1].lstrip().startswith("{"), "JSON for the API"

            whole = "the whole form message " + "y" * 200
            status, answer = post_chat(whole, len)
            assert status == 302, answer[:500]
            status, answer = post_signup("json_whole", len)
            assert status == 201, answer[:500]

        with engine.connect() as connection:
            messages = connection.execute(text("SELECT content FROM messages")).scalars().all()
            users = connection.execute(text("SELECT username FROM users ORDER BY username")).scalars().all()
        assert messages == [whole], messages
        assert users == ["cut", "json_whole"], users
    finally:
        engine.dispose()
        stack.stop()


def accept_backlog(port: int) -> int:
    """Connections waiting in the listening socket's queue, not yet accepted (/proc/net/tcp: rx_queue)."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"nothing listens on {port}")


def test_requests_that_wait_out_a_stalled_web_process_are_all_answered(tmp_path, redis_url):
    stack = Stack(tmp_path, f"sqlite:///{tmp_path / 'stall.db'}", redis_url, web_processes=1, workers=0)
    try:
        stack.start()
        [web_pid] = [int(pid) for pid in GUNICORN_CHILD_RE.findall(stack.log("web0"))]
        # The connections are made and taken by the web process first (its keep-alive timer starts then);
        # their requests arrive while it is stalled and cannot read them yet.
        sockets = [socket.create_connection(("127.0.0.1", stack.port), timeout=30) for _ in range(WAITING_REQUESTS)]
        wait_for(
            lambda: accept_backlog(stack.port) == 0 and "epoll" in Path(f"/proc/{web_pid}/wchan").read_text(),
            10,
            "the connections accepted and their handlers waiting to read",
        )
        os.kill(web_pid, signal.SIGSTOP)
        try:
            for sock in sockets:
                sock.sendall(
                    f"GET /auth/login HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nConnection: close\r\n\r\n".encode()
                )
            time.sleep(STALL_SECONDS)  # the stall itself (the fault under test), not a wait for a result
        finally:
            os.kill(web_pid, signal.SIGCONT)
        answered = 0
        for sock in sockets:
            with sock:
                answer = b""
                try:
                    while chunk := sock.recv(65536):
                        answer += chunk
                except ConnectionResetError:
                    pass
            answered += answer.startswith(b"HTTP/1.1 200")
        print(f"\n{answered} of {WAITING_REQUESTS} requests answered after a {STALL_SECONDS} s stall")
        assert answered == WAITING_REQUESTS
    finally:
        stack.stop()
