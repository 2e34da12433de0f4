import pytest

from tests.support.stack import running_worker, worker_env
from tests.support.waiting import wait_for


def test_healthz_is_always_cheap_and_public(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


@pytest.mark.slow  # starts a process
def test_readyz_needs_a_live_worker(client, app, app_config, instance_path):
    body = client.get("/readyz")
    assert body.status_code == 503
    checks = body.get_json()["checks"]
    assert checks["database"]["ok"] and checks["redis"]["ok"] and not checks["workers"]["ok"]

    with running_worker(worker_env(app_config, instance_path)):
        ready = wait_for(lambda: (r := client.get("/readyz")).status_code == 200 and r, timeout=30)
        assert ready.get_json()["status"] == "ready"
        assert ready.get_json()["checks"]["workers"]["count"] >= 1


def test_readyz_reports_redis_down(client, app, tmp_path):
    app.config["REDIS_URL"] = f"unix://{tmp_path / 'nothing.sock'}"
    app.extensions.pop("switchboard_redis", None)
    body = client.get("/readyz")
    assert body.status_code == 503
    assert body.get_json()["checks"]["redis"]["ok"] is False
    assert client.get("/healthz").status_code == 200


def test_metrics_for_admins_or_token_only(client, auth, app, runner, run_jobs):
    from tests.support.chat import send

    assert client.get("/metrics").status_code == 401
    auth.signup("plain")
    send(client, "count me")
    run_jobs()
    assert client.get("/metrics").status_code == 403
    app.config["METRICS_TOKEN"] = "scrape-token-123"
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    body = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).get_data(as_text=True)
    assert 'switchboard_generations{status="succeeded"} 1.0' in body
    assert 'switchboard_queue_depth{queue="switchboard-test"} 0.0' in body
    assert "switchboard_http_request_duration_seconds_bucket" in body
    assert 'route="/chat/"' in body
    assert 'switchboard_provider_latency_seconds_count{provider="echo"} 1.0' in body
    assert 'switchboard_http_requests_total{method="POST",route="/chat/",status="3xx"}' in body
    assert "switchboard_redis_up 1.0" in body

    runner.invoke(args=["create-admin", "boss", "--password", "boss-password"])
    auth.logout()
    auth.login("boss", "boss-password")
    assert client.get("/metrics").status_code == 200


def test_every_response_carries_a_request_id(client):
    response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert response.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["X-Request-ID"]
    assert len(generated) == 32 and " " not in generated
