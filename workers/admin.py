"""Admin jobs: ``check_provider_connection(provider)`` makes one real request with the stored settings.

It takes only the provider's name: keys are read inside the job (through the
app's key resolver), never passed as job arguments.
"""

from __future__ import annotations

import time

from rq import get_current_job

from webapp.provider_checks import check_connection, write_connection_test

from .app_context import app_context


def check_provider_connection(provider: str) -> bool:
    with app_context():
        ok, message = check_connection(provider)
        job = get_current_job()
        write_connection_test(
            provider,
            {
                "status": "ok" if ok else "failed",
                "message": message,
                "at": time.time(),
                "job_id": job.id if job is not None else None,
            },
        )
        return ok
