"""An RQ worker that runs up to ``concurrency`` jobs at once, each in a thread of one process.

LLM calls spend nearly all their time waiting on the network, so threads serve
many streams per process where RQ's forking worker needs a process per job.
It is built on RQ's own ``BaseWorker``: each job still gets an RQ execution,
sits in the StartedJobRegistry, has its heartbeats maintained, is bounded by its
job timeout (``TimerDeathPenalty`` works in threads) and answers RQ's
stop-job command, so rq-dashboard and RQ's maintenance keep working.

What this relies on beyond RQ's documented API is listed in ``RQ_INTERNALS`` and
checked by ``tests/workers/test_threaded.py``; the range in pyproject.toml
(``rq>=3.0,<3.1``) is the one it was verified against. Before widening it, run
that test file: every stop path (job timeout, stop-job, hang-up, warm and cold
shutdown) is exercised there and in tests/api/test_streaming.py.

A stop is delivered to a job's thread as an asynchronous exception
(``PyThreadState_SetAsyncExc``), plus callbacks the job registered to unblock a
socket read; a job shields its final record from it (``shielded``).
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import redis
from rq.command import parse_payload
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty
from rq.worker import BaseWorker, WorkerStatus

from .base import BoundedUnsubscribe

# Seconds a cold shutdown gives the stopped jobs' threads to record their stop before it records it for them.
COLD_STOP_GRACE_SECONDS = 5.0

# RQ internals used here, in workers/base.py and in workers/__main__.py (private fields or undocumented hooks
# of BaseWorker).
RQ_INTERNALS = (
    "_stop_requested",
    "_stopped_job_id",
    "_shutdown_requested_date",
    "pubsub",
    "pubsub_thread",  # fields
    "prepare_execution",
    "perform_job",
    "maintain_heartbeats",
    "handle_payload",
    "request_stop_execution",
    "request_force_stop",
    "kill_horse",
    "dequeue_job_and_maintain_ttl",
    "execute_job",
    "teardown",
    "handle_job_failure",
    "set_state",
    "unsubscribe",  # methods overridden or called
)


class JobStopRequested(BaseException):
    """Raised inside a job's thread when RQ's stop-job command names it.

    A BaseException, like KeyboardInterrupt: library code that catches ``Exception``
    around a network read (the LLM layer, the SDKs) must not swallow a stop.
    """


class WorkerStopping(JobStopRequested):
    """Raised inside every job's thread on a cold shutdown (a second Ctrl-C or SIGTERM)."""


# Per-thread callbacks a job registers to unblock itself when stopped (e.g. close its HTTP stream).
_stop_callbacks: dict[int, list[Callable[[], None]]] = {}
_stop_callbacks_lock = threading.Lock()
# Threads whose job is writing its final record: a stop then only runs the callbacks.
_shielded: set[int] = set()


@contextmanager
def shielded():
    """While a job finishes its bookkeeping, a stop must not interrupt it half-way."""
    ident = threading.get_ident()
    with _stop_callbacks_lock:
        _shielded.add(ident)
    try:
        yield
    finally:
        with _stop_callbacks_lock:
            _shielded.discard(ident)


def on_stop(callback: Callable[[], None]) -> Callable[[], None]:
    """Register ``callback`` to run when the job in this thread is stopped; returns an unregister function."""
    ident = threading.get_ident()
    with _stop_callbacks_lock:
        _stop_callbacks.setdefault(ident, []).append(callback)

    def unregister():
        with _stop_callbacks_lock:
            callbacks = _stop_callbacks.get(ident, [])
            if callback in callbacks:
                callbacks.remove(callback)

    return unregister


def _raise_in_thread(ident: int, exception: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(exception))


class ThreadedWorker(BoundedUnsubscribe, BaseWorker):
    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, concurrency: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.concurrency = max(1, concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="rq-job")
        self._running: dict[str, tuple[Job, Execution, int]] = {}  # execution id -> (job, execution, thread ident)
        self._running_lock = threading.Lock()
        self._stopped_job_ids: set[str] = set()
        self._failure_lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None

    # -- the work loop -----------------------------------------------------------
    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        # Take a slot before taking a job, so a job never waits in this process while others could run it.
        while not self._slots.acquire(timeout=max(1, self.job_monitoring_interval)):
            self.heartbeat()
            if self._stop_requested:
                return None
        result = None
        try:
            result = super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            return result
        finally:
            if result is None:
                self._slots.release()

    def execute_job(self, job: Job, queue: Queue):
        self._start_heartbeats()
        execution = self.prepare_execution(job)
        self._pool.submit(self._run, job, queue, execution)

    def _run(self, job: Job, queue: Queue, execution: Execution) -> None:
        with self._running_lock:
            self._running[execution.id] = (job, execution, threading.get_ident())
        try:
            self.perform_job(job, queue, execution)
        except redis.RedisError as exc:  # RQ's bookkeeping met a Redis outage; the job recorded its own end
            self.log.warning(
                "Worker %s: job %s ended while Redis was unavailable (%s)", self.name, job.id, exc.__class__.__name__
            )
        except BaseException:  # perform_job handles job errors; anything else must not kill the pool thread
            self.log.exception("Worker %s: job %s crashed its thread", self.name, job.id)
        finally:
            # A stop that raced with the job's end may land here: finish the bookkeeping regardless.
            while True:
                try:
                    self._release(execution)
                    break
                except JobStopRequested:
                    continue

    def _release(self, execution: Execution) -> None:
        with self._running_lock:
            if self._running.pop(execution.id, None) is None:
                return
            self._slots.release()
            idle = not self._running
        with _stop_callbacks_lock:
            _stop_callbacks.pop(threading.get_ident(), None)
        if idle:
            self.set_state(WorkerStatus.IDLE)

    def teardown(self):
        # A warm shutdown lets running jobs finish before the worker registers its death.
        self._pool.shutdown(wait=True)
        self._heartbeat_stop.set()
        super().teardown()

    # -- heartbeats for every running job ------------------------------------------
    def _start_heartbeats(self) -> None:
        if self._heartbeat_thread is None:
            self._heartbeat_thread = threading.Thread(target=self._heartbeat_loop, name="rq-heartbeats", daemon=True)
            self._heartbeat_thread.start()

    def _heartbeat_loop(self) -> None:
        while not self._heartbeat_stop.wait(self.job_monitoring_interval):
            with self._running_lock:
                running = list(self._running.values())
            for job, execution, _ident in running:
                try:
                    self.maintain_heartbeats(job, execution)
                except Exception:
                    self.log.warning("Worker %s: heartbeat for job %s failed", self.name, job.id, exc_info=True)

    # -- stopping one job ----------------------------------------------------------------
    def handle_payload(self, message):
        payload = parse_payload(message)
        if payload.get("command") == "stop-job":
            self.stop_job(payload.get("job_id"))
            return
        super().handle_payload(message)

    def request_stop_execution(self, execution_id: str):
        with self._running_lock:
            entry = self._running.get(execution_id)
        if entry is None:
            self.log.warning("Worker %s: not running execution %s, command ignored.", self.name, execution_id)
            return
        self._stop_thread(entry[0].id, entry[2])

    def stop_job(self, job_id: str | None) -> bool:
        with self._running_lock:
            matches = [(job, ident) for job, _execution, ident in self._running.values() if job.id == job_id]
        if not matches:
            self.log.warning("Worker %s: not working on job %s, command ignored.", self.name, job_id)
            return False
        for job, ident in matches:
            self._stop_thread(job.id, ident)
        return True

    def _stop_thread(self, job_id: str, ident: int, exception: type[JobStopRequested] = JobStopRequested) -> None:
        self.log.info("Worker %s: stopping job %s", self.name, job_id)
        self._stopped_job_ids.add(job_id)
        with self._running_lock:
            if not any(entry[2] == ident for entry in self._running.values()):
                return  # finished meanwhile
            with _stop_callbacks_lock:
                if ident not in _shielded:
                    _raise_in_thread(ident, exception)
        with _stop_callbacks_lock:
            callbacks = list(_stop_callbacks.get(ident, []))
        for callback in callbacks:  # unblock a thread waiting on a socket so it sees the exception
            try:
                callback()
            except Exception:
                self.log.warning("Worker %s: stop callback for job %s failed", self.name, job_id, exc_info=True)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        # RQ keeps one "_stopped_job_id"; with many jobs at once, set it for the job being handled.
        with self._failure_lock:
            self._stopped_job_id = job.id if job.id in self._stopped_job_ids else None
            self._stopped_job_ids.discard(job.id)
            super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)

    def kill_horse(self, sig=None):
        """There are no horses: a cold shutdown stops every running job."""
        with self._running_lock:
            running = list(self._running.values())
        for job, _execution, ident in running:
            self._stop_thread(job.id, ident, WorkerStopping)

    def request_force_stop(self, signum, frame):
        """Cold shutdown (a second Ctrl-C or SIGTERM): stop every job thread, then exit.

        RQ's own version kills a work-horse, which this worker does not have, so its teardown
        would wait for the running jobs: a warm shutdown after all. (RQ also ignores a second
        signal within a second of the first, for worker pools; no pool runs this worker.)
        """
        self.log.warning("Worker %s: cold shut down", self.name)
        with self._running_lock:
            running = [(job, execution) for job, execution, _ident in self._running.values()]
        self.kill_horse()
        # Each thread records its job's stop itself. One stopped before its job began (still in RQ's own
        # preparation) may end without doing so: after a moment, record it for them.
        deadline = time.monotonic() + COLD_STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            with self._running_lock:
                if not self._running:
                    break
            time.sleep(0.02)
        for job, execution in running:
            try:
                if job.get_status(refresh=True) == JobStatus.STARTED:
                    self._stopped_job_ids.add(job.id)
                    queue = Queue(job.origin, connection=self.connection)
                    self.handle_job_failure(job, queue, exc_string="Stopped by a cold shutdown.", execution=execution)
            except (redis.RedisError, OSError):
                self.log.warning("Worker %s: could not record the stop of job %s", self.name, job.id)
        raise SystemExit()
