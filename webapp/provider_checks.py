"""Provider connection tests: an admin asks, a worker job makes one real request, the result waits in Redis.

The job (``workers.admin.check_provider_connection``) gets only the provider's name;
keys are read inside it through the LLM layer's key resolver, never passed as arguments.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import redis

from . import audit
from .llm import config as llm_settings
from .llm import get_model, get_providers, list_provider_models
from .llm.errors import LLMError, redact
from .models import User
from .queue import get_queue, get_redis

log = logging.getLogger(__name__)

CONNECTION_TEST_JOB = "workers.admin.check_provider_connection"
CONNECTION_TEST_TTL = 24 * 3600
CONNECTION_TEST_STALE = 120  # seconds without a worker answer before the page says so


def _test_key(provider: str) -> str:
    return f"switchboard:admin:connection-test:{provider}"


def start_connection_test(actor: User, provider: str) -> str:
    """Queue a job that makes a real request to ``provider``; the job gets only the provider name."""
    job = get_queue().enqueue(
        CONNECTION_TEST_JOB,
        provider,
        job_timeout=120,
        result_ttl=600,
        failure_ttl=3600,
        description=f"connection test: {provider}",
    )
    write_connection_test(provider, {"status": "pending", "job_id": job.id, "at": time.time()})
    audit.record(actor, "provider.test", f"provider:{provider}")
    return job.id


def write_connection_test(provider: str, result: dict) -> None:
    get_redis().set(_test_key(provider), json.dumps(result), ex=CONNECTION_TEST_TTL)


def connection_test_result(provider: str) -> dict | None:
    try:
        raw = get_redis().get(_test_key(provider))
    except redis.RedisError:
        return None
    if not raw:
        return None
    result = json.loads(raw)
    result["when"] = datetime.fromtimestamp(result.get("at", 0), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    result["stale"] = result.get("status") == "pending" and time.time() - result.get("at", 0) > CONNECTION_TEST_STALE
    return result


def check_connection(provider: str) -> tuple[bool, str]:
    """Make one real request to ``provider`` with the current settings: (ok, message for the admin)."""
    info = get_providers().get(provider)
    if info is None:
        return False, f"Unknown provider {provider!r}."
    try:
        if info["needs_key"] and not llm_settings.resolve_key(provider, info["key_env_var"]):
            return False, "No API key is set."
        if provider in ("echo", "litellm"):
            # Their model lists are local; send a tiny prompt to the first model instead.
            if not info["models"]:
                return False, "No models are configured (LLM_MODELS)."
            text = get_model(info["models"][0]).prompt("Reply with OK.", stream=False).text()
            return True, f"{info['models'][0]} answered: {text[:80]}"
        models = list_provider_models(provider)
        sample = ", ".join(models[:5]) + (", …" if len(models) > 5 else "")
        return True, f"Connected: {len(models)} models available ({sample})."
    except LLMError as exc:
        return False, redact(str(exc))
    except Exception as exc:  # the admin needs a reason, not a stack trace
        log.warning("connection test for %s failed with %s", provider, exc.__class__.__name__)
        return False, redact(f"Unexpected error: {exc.__class__.__name__}: {exc}")
