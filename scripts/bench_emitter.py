"""Benchmark: what one emit call costs the caller, against a plain synchronous httpx.post.

    .venv/bin/python scripts/bench_emitter.py [--calls 5000]

A real HTTP receiver runs on 127.0.0.1 in three modes: fast (answers at once), slow (2 s per
request) and down (connection refused). For each, it times N emit calls one by one (median and
p99 of the caller's wall time per call), then the same for httpx.post, the baseline. Last, it
measures the peak memory (tracemalloc) while 100,000 and 200,000 events are emitted with the
receiver down, which the bounded queue (10,000 events) must keep flat.
"""

import argparse
import contextlib
import gc
import json
import logging
import statistics
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from f.marketing.emitter import Emitter

PATH = "/api/w/bench/jobs/run/p/f/marketing/handle_user_event"
TOKEN = "bench-token"
BODY = json.loads((Path(__file__).parent / "examples" / "user_registered.json").read_text())


def start_receiver(delay: float) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            time.sleep(delay)
            # Windmill answers 201 with the job's id, the one asked for (an emitter counts
            # nothing else as delivered).
            query = dict(parse_qsl(urlsplit(self.path).query))
            job = query.get("job_id", str(uuid.uuid4())).encode()
            try:
                self.send_response(201)
                self.send_header("Content-Length", str(len(job)))
                self.end_headers()
                self.wfile.write(job)
            except OSError:
                pass

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server


def refused_url() -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_port
    server.server_close()
    return f"http://127.0.0.1:{port}{PATH}"


def timed(call: Callable[[], object], calls: int) -> list[float]:
    """Wall time of each call, in microseconds."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, int(len(samples) * 0.99) - 1)]


def emit_cost(url: str, calls: int) -> list[float]:
    emitter = Emitter(url, TOKEN)
    emitter.emit(BODY)  # starts the sender thread: a once-per-process cost
    gc.collect()
    samples = timed(lambda: emitter.emit(BODY), calls)
    emitter.shutdown(0.1)
    return samples


def post_cost(url: str, calls: int) -> list[float]:
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def post() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(url, json=BODY, headers=headers, timeout=5.0)

    return timed(post, calls)


def peak_memory(url: str, events: int) -> tuple[float, int]:
    emitter = Emitter(url, TOKEN)
    gc.collect()
    tracemalloc.start()
    for _ in range(events):
        emitter.emit(BODY)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    dropped = emitter.stats().dropped
    emitter.shutdown(0.1)
    return peak / 2**20, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="emit calls per case")
    args = parser.parse_args()
    logging.getLogger("f.marketing").setLevel(logging.CRITICAL)  # the figures, not the retries

    fast, slow = start_receiver(0.0), start_receiver(2.0)
    urls = {
        "fast": f"http://127.0.0.1:{fast.server_port}{PATH}",
        "slow (2 s)": f"http://127.0.0.1:{slow.server_port}{PATH}",
        "down": refused_url(),
    }
    baseline_calls = {"fast": 500, "slow (2 s)": 3, "down": 500}

    print(f"Python {sys.version.split()[0]}, httpx {httpx.__version__}; times in µs per call")
    print(f"{'receiver':<12} {'what':<22} {'calls':>6} {'median':>10} {'p99':>10}")
    for name, url in urls.items():
        for what, samples in (
            ("emit (this package)", emit_cost(url, args.calls)),
            ("httpx.post (baseline)", post_cost(url, baseline_calls[name])),
        ):
            median = statistics.median(samples)
            print(f"{name:<12} {what:<22} {len(samples):>6} {median:>10.1f} {p99(samples):>10.1f}")

    print("\nPeak memory while emitting with the receiver down (queue bound: 10,000 events)")
    for events in (100_000, 200_000):
        peak, dropped = peak_memory(urls["down"], events)
        print(f"{events:>8,} events: peak {peak:6.1f} MiB traced, {dropped:,} dropped")
    fast.shutdown()
    slow.shutdown()


if __name__ == "__main__":
    main()
