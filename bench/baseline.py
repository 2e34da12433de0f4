"""The floor: the fake provider read directly with the ``openai`` SDK, as the worker reads it.

``python -m bench.baseline --base-url URL --streams N --calls M --prompt P`` runs M
streaming calls, N at a time, each in a thread with its own client (as the
worker does), and prints one JSON line: per-token latencies (provider wrote the
token → the SDK yielded it), calls per second, and this process's resident
memory at rest and with N streams in flight.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from .fake_provider import stamps
from .procs import rss_kib


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--prompt", default="")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=None, help="stop starting calls after this long")
    parser.add_argument("--api-key", default="sk-bench")
    parser.add_argument("--no-stream", action="store_true", help="plain (non-streaming) calls")
    args = parser.parse_args(argv)

    import openai

    # One long-lived client shared by every thread: the SDK's own advice, and the cheapest way to call.
    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0)
    for _ in client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "tokens=2"}], stream=True
    ):
        pass  # warm up (imports, first connection), then measure memory at rest
    rest_kib = rss_kib(None)

    latencies_ms: list[float] = []
    call_ms: list[float] = []  # whole calls, request to complete answer
    errors: list[str] = []
    lock = threading.Lock()
    remaining = [args.calls]
    in_flight = [0]
    peak = {"kib": rest_kib, "in_flight": 0}
    deadline = time.monotonic() + args.timeout
    stop_starting = time.monotonic() + (args.seconds if args.seconds else args.timeout)

    def one_call() -> None:
        local: list[float] = []
        first = True
        started = time.perf_counter()
        if args.no_stream:
            try:
                answer = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": args.prompt}]
                )
                if not answer.choices[0].message.content:
                    raise RuntimeError("empty answer")
                with lock:
                    call_ms.append((time.perf_counter() - started) * 1000)
            except Exception as exc:  # reported, not raised
                with lock:
                    errors.append(repr(exc))
            return
        try:
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": args.prompt}],
                stream=True,
                stream_options={"include_usage": True},
            )
            for chunk in stream:
                now = time.time_ns()
                for choice in chunk.choices or ():
                    if choice.delta is not None and choice.delta.content:
                        local.extend((now - s) / 1e6 for s in stamps(choice.delta.content))
                if first:
                    first = False
                    with lock:
                        in_flight[0] += 1
        except Exception as exc:  # reported, not raised: the bench goes on
            with lock:
                errors.append(repr(exc))
        finally:
            with lock:
                latencies_ms.extend(local)
                if not first:
                    in_flight[0] -= 1

    def runner() -> None:
        while time.monotonic() < stop_starting:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            one_call()

    threads = [threading.Thread(target=runner, daemon=True) for _ in range(args.streams)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        with lock:
            flying = in_flight[0]
        if flying >= peak["in_flight"]:
            peak.update(kib=max(rss_kib(None), peak["kib"] if flying == peak["in_flight"] else 0), in_flight=flying)
        time.sleep(0.05)
    for thread in threads:
        thread.join(max(0.1, deadline - time.monotonic()))
    elapsed = time.perf_counter() - started
    done = args.calls - remaining[0]
    print(
        json.dumps(
            {
                "latencies_ms": latencies_ms,
                "call_ms": call_ms,
                "errors": errors[:5],
                "error_count": len(errors),
                "calls": done,
                "seconds": elapsed,
                "calls_per_second": done / elapsed if elapsed else 0.0,
                "rss_rest_kib": rest_kib,
                "rss_peak_kib": peak["kib"],
                "peak_in_flight": peak["in_flight"],
            }
        )
    )


if __name__ == "__main__":
    main()
