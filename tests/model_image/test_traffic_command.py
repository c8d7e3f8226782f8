"""`python -m model_server traffic`, the synthetic traffic a quiet canary is judged on: it sends the model's input
example on a fixed schedule, counts how the server answered, and fails only when nothing ever answered."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from localrun.processes import child_env, free_port
from tests.model_image.serving_helpers import Served


def traffic(url: str, model_dir: Path, rps: str = "20", seconds: str = "1") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_server", "traffic", "--url", url, "--rps", rps, "--seconds", seconds,
         "--model-dir", str(model_dir)],
        capture_output=True, text=True, env=child_env(), timeout=120, check=False,
    )  # fmt: skip


class Recorded:
    """A stand-in server that records every request and answers every third one with a 500."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []


@pytest.fixture
def recorder() -> Iterator[tuple[str, Recorded]]:
    seen = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.requests.append((self.path, self.headers["Content-Type"], body))
            status = 500 if len(seen.requests) % 3 == 0 else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/invocations", seen
    server.shutdown()
    server.server_close()


def test_traffic_posts_the_input_example_and_counts_each_answer(
    recorder: tuple[str, Recorded], wine_model: Path
) -> None:
    url, seen = recorder
    proc = traffic(url, wine_model)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    example = (wine_model / "serving_input_example.json").read_bytes()
    assert summary["sent"] == len(seen.requests) > 0
    assert all(r == ("/invocations", "application/json", example) for r in seen.requests)
    assert summary["statuses"] == {
        "200": len(seen.requests) - len(seen.requests) // 3,
        **({"500": len(seen.requests) // 3} if len(seen.requests) >= 3 else {}),
    }


def test_traffic_against_the_served_model_gets_answers(wine: Served, wine_model: Path) -> None:
    proc = traffic(f"{wine.base_url}/invocations", wine_model, rps="10", seconds="0.5")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert set(summary["statuses"]) == {"200"}


def test_traffic_fails_when_the_canary_never_answers(wine_model: Path) -> None:
    proc = traffic(f"http://127.0.0.1:{free_port()}/invocations", wine_model, rps="5", seconds="0.4")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["statuses"] == {"0": json.loads(proc.stdout)["sent"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [(("ftp://x/invocations", "5", "1"), "--url must be an http(s) URL"), (("http://x", "0", "1"), "must be positive")],
)
def test_bad_arguments_are_named(args: tuple[str, str, str], message: str, wine_model: Path) -> None:
    proc = traffic(args[0], wine_model, rps=args[1], seconds=args[2])
    assert proc.returncode == 2
    assert message in proc.stderr
