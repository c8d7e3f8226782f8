"""Benchmark the webhook listener: webhook-to-202 latency (p50, p99) and accepted events per second.

What it does (all on 127.0.0.1; every process it starts is stopped at the end, even on Ctrl-C):
1. starts Azurite (queue + table) with its data under .bench/listener, and the listener as its own process
   (`python -m webhook_listener serve --http-only`, so the numbers are the accept path alone; `--with-worker` also
   runs the dispatch worker in the same process against a local endpoint that answers 204, as GitHub would);
2. drives it closed-loop with open-source MLflow webhooks (`model_version_alias.created`, alias `champion`), each
   with a fresh delivery id and a real v1 signature, from 1 and from 32 concurrent senders (connections), for
   --seconds each after a short warm-up. The load generator is wrk when installed (its CPU cost is small next to
   the listener's on a 2-core machine), replaying requests signed beforehand, one per request; otherwise an async
   httpx client;
3. checks that every request was accepted: no non-202 answer, and exactly one queued message per request;
4. prints a Markdown table: requests, p50 and p99 latency (client-measured, send to 202), accepted events/s, and
   the machine's load average (the host is shared: read the numbers with it).

    .venv/bin/python benchmarks/listener_bench.py                 # about 40 seconds
    .venv/bin/python benchmarks/listener_bench.py --seconds 5 --with-worker
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "listener")]

import httpx  # noqa: E402

from localrun.processes import LOOPBACK, AzuritePorts, ManagedProcess, azurite, free_port, running  # noqa: E402

BENCH_DIR = REPO_ROOT / ".bench" / "listener"
SECRET = "bench-webhook-secret-0123456789abcdef"
CONCURRENCY = (1, 32)
WARMUP_SECONDS = 1.0


@dataclass
class Cell:
    senders: int
    requests: int
    seconds: float
    latencies_ms: list[float]
    p50_ms: float | None = None
    p99_ms: float | None = None

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    def __post_init__(self) -> None:
        if self.latencies_ms:
            self.p50_ms = statistics.median(self.latencies_ms)
            self.p99_ms = self.percentile(0.99)


def signed_webhook(version: int) -> tuple[bytes, dict[str, str]]:
    """A delivery exactly as `mlflow server` sends it (platform-facts §1.3, §1.4)."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-11-22T18:31:23.503922+00:00",
            "data": {"name": "bench-model", "alias": "champion", "version": str(version)},
        }
    ).encode()
    delivery_id, timestamp = str(uuid.uuid4()), str(int(time.time()))
    digest = hmac.new(SECRET.encode(), f"{delivery_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return body, {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


WRK_SCRIPT = """
local requests, next_index = {}, 0
init = function(args)
  local f = assert(io.open(os.getenv("BENCH_REQUESTS"), "r"))
  for line in f:lines() do
    local delivery, ts, signature, body = line:match("([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)")
    requests[#requests + 1] = wrk.format("POST", "/api/webhooks/mlflow", {
      ["Content-Type"] = "application/json", ["X-MLflow-Delivery-Id"] = delivery,
      ["X-MLflow-Timestamp"] = ts, ["X-MLflow-Signature"] = signature}, body)
  end
  f:close()
end
request = function()
  next_index = next_index + 1
  if next_index > #requests then error("ran out of pre-signed requests") end
  return requests[next_index]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""
# Pre-signed requests per concurrency level: more than the listener can take in the measured time.
WRK_REQUESTS_PER_SECOND_CEILING = 1000


def run_wrk(base_url: str, senders: int, seconds: float) -> Cell:
    requests_file = BENCH_DIR / f"requests-{senders}.tsv"
    with requests_file.open("w") as out:
        for version in range(int(WRK_REQUESTS_PER_SECOND_CEILING * (seconds + 2))):
            body, headers = signed_webhook(version)
            fields = [headers[h] for h in ("X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature")]
            out.write("\t".join([*fields, body.decode()]) + "\n")
    script = BENCH_DIR / "webhooks.lua"
    script.write_text(WRK_SCRIPT)
    argv = ["wrk", "-t1", f"-c{senders}", f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(script)]
    result = subprocess.run(
        [*argv, base_url],
        env={**os.environ, "BENCH_REQUESTS": str(requests_file)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next(line for line in result.stdout.splitlines() if line.startswith("BENCH "))
    summary = json.loads(line.removeprefix("BENCH "))
    if summary["errors"]:
        raise RuntimeError(f"{summary['errors']} requests were not answered with 2xx:\n{result.stdout}")
    return Cell(
        senders=senders,
        requests=summary["requests"],
        seconds=summary["duration_us"] / 1e6,
        latencies_ms=[],
        p50_ms=summary["p50_us"] / 1000,
        p99_ms=summary["p99_us"] / 1000,
    )


async def drive(base_url: str, senders: int, seconds: float) -> Cell:
    """Closed loop: each sender posts its next webhook as soon as the previous one is answered."""
    latencies: list[float] = []
    counter = iter(range(1, 10**9))
    limits = httpx.Limits(max_connections=senders, max_keepalive_connections=senders)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def sender(until: float) -> None:
            while time.perf_counter() < until:
                body, headers = signed_webhook(next(counter))
                started = time.perf_counter()
                response = await client.post("/api/webhooks/mlflow", content=body, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 202 or response.json().get("status") != "accepted":
                    raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
                latencies.append(elapsed)

        started = time.perf_counter()
        await asyncio.gather(*(sender(started + seconds) for _ in range(senders)))
        elapsed = time.perf_counter() - started
    return Cell(senders=senders, requests=len(latencies), seconds=elapsed, latencies_ms=latencies)


def _handler_counting(dispatched: list[int]) -> type[BaseHTTPRequestHandler]:
    """Stands in for GitHub's dispatch endpoint when the worker runs: 204 to everything, counted."""
    lock = threading.Lock()

    class NoContent(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                dispatched[0] += 1
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    return NoContent


def count_accepted(ports: AzuritePorts, with_worker: bool, dispatched: list[int], expected: int) -> int:
    """How many webhooks were handed off: queued messages (HTTP only) or dispatches (with the worker)."""
    if not with_worker:
        from azure.storage.queue import QueueClient

        with QueueClient.from_connection_string(ports.connection_string, "model-promotions") as queue:
            return queue.get_queue_properties().approximate_message_count or 0
    deadline = time.monotonic() + 120
    while dispatched[0] < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    return dispatched[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per concurrency level")
    parser.add_argument("--with-worker", action="store_true", help="also run the dispatch worker in the listener")
    parser.add_argument("--client", choices=["wrk", "httpx"], default="wrk" if shutil.which("wrk") else "httpx")
    args = parser.parse_args()

    shutil.rmtree(BENCH_DIR, ignore_errors=True)
    BENCH_DIR.mkdir(parents=True)
    dispatched = [0]
    ci = ThreadingHTTPServer((LOOPBACK, free_port()), _handler_counting(dispatched))
    ci.daemon_threads = True
    threading.Thread(target=ci.serve_forever, daemon=True).start()
    store, ports = azurite(BENCH_DIR / "azurite")
    port = free_port()
    base_url = f"http://{LOOPBACK}:{port}"
    argv = [sys.executable, "-m", "webhook_listener", "serve", "--host", LOOPBACK, "--port", str(port)]
    listener = ManagedProcess(
        name="listener",
        argv=argv if args.with_worker else [*argv, "--http-only"],
        log_path=BENCH_DIR / "listener.log",
        env={
            "LISTENER_WEBHOOK_SECRET": SECRET,
            "LISTENER_STORAGE_CONNECTION_STRING": ports.connection_string,
            "LISTENER_GITHUB_API_URL": f"http://{LOOPBACK}:{ci.server_address[1]}",
            "LISTENER_GITHUB_REPOSITORY": "bench/serving",
            "LISTENER_GITHUB_TOKEN": "bench-token-not-a-secret",
        },
        ready_url=f"{base_url}/api/health",
    )

    def measure(senders: int, seconds: float) -> Cell:
        if args.client == "wrk":
            return run_wrk(base_url, senders, seconds)
        return asyncio.run(drive(base_url, senders, seconds))

    try:
        with running(store), running(listener):
            warm_up = measure(4, WARMUP_SECONDS)
            cells = [measure(n, args.seconds) for n in CONCURRENCY]
            load = os.getloadavg()
            sent = warm_up.requests + sum(c.requests for c in cells)
            accepted = count_accepted(ports, args.with_worker, dispatched, sent)
    finally:
        ci.shutdown()
    # wrk counts the answers it read; requests still in flight when a run ends were accepted but not counted.
    in_flight = 4 + sum(CONCURRENCY) if args.client == "wrk" else 0
    if not sent <= accepted <= sent + in_flight:
        print(f"FAILED: {sent} webhooks answered 202, {accepted} handed off", file=sys.stderr)
        return 1

    mode = "HTTP + worker" if args.with_worker else "HTTP only"
    print(
        f"\nListener webhook-to-202 ({mode}; load from {args.client}; Azurite queue + table; INFO logs on; "
        f"{os.cpu_count()} cores; load average {load[0]:.1f} / {load[1]:.1f}; {sent} answered, {accepted} handed off)\n"
    )
    print("| senders | requests | p50 ms | p99 ms | accepted events/s |")
    print("|---:|---:|---:|---:|---:|")
    for cell in cells:
        print(
            f"| {cell.senders} | {cell.requests} | {cell.p50_ms:.1f} | {cell.p99_ms:.1f} "
            f"| {cell.requests / cell.seconds:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
