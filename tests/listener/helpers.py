"""Test helpers for the listener: senders that sign like MLflow and Databricks do, and a recording CI API.

The signers are written here from the formats in platform-facts.md §1.4 and §2, independently of the package's
verifier, so a test of the verifier is not the verifier checking itself.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import httpx

from localrun.processes import LOOPBACK, free_port
from webhook_listener.deliveries import DeliveryRecord
from webhook_listener.runtime import Runtime
from webhook_listener.schemas import DriftAlert, PoisonMessage, Promotion
from webhook_listener.settings import ListenerSettings
from webhook_listener.worker import run_worker

SECRET = "test-webhook-secret-0123456789abcdef"
JOB_TOKEN = "test-job-token-0123456789abcdef"
GITHUB_TOKEN = "ghp_testtoken0123456789abcdefghij"
AZURE_DEVOPS_TOKEN = "adopat0123456789abcdefghijklmnop"
ALL_SECRETS = (SECRET, JOB_TOKEN, GITHUB_TOKEN, AZURE_DEVOPS_TOKEN)


# --- senders ------------------------------------------------------------------------------------------------


def mlflow_envelope(
    event: str = "model_version_alias.created",
    *,
    name: str = "churn-model",
    alias: str = "champion",
    version: str = "3",
) -> dict[str, Any]:
    """An envelope as `mlflow server` builds it (platform-facts §1.3)."""
    entity, action = event.rsplit(".", 1)
    if event.startswith("model_version_alias."):
        data: dict[str, Any] = {"name": name, "alias": alias, "version": version}
        if action == "deleted":
            del data["version"]
    elif event == "model_version.created":
        data = {"name": name, "version": version, "source": "models:/m-1", "run_id": None, "tags": {}}
    else:
        data = {"name": name, "tags": {}, "description": ""}
    return {"entity": entity, "action": action, "timestamp": "2026-11-22T18:31:23.503922+00:00", "data": data}


def mlflow_body(document: Mapping[str, Any]) -> bytes:
    # mlflow server sends json.dumps(envelope) with the default separators.
    return json.dumps(document).encode()


def mlflow_headers(
    body: bytes, *, secret: str = SECRET, delivery_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"{delivery_id}.{ts}.{body.decode()}".encode(), hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery_id,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def databricks_event(
    *,
    event: str = "MODEL_VERSION_TRANSITIONED_STAGE",
    model: str = "churn-model",
    version: str = "8",
    to_stage: str | None = "Production",
    webhook_id: str = "c5596721253c4b429368cf6f4341b88a",
    event_timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """A registry webhook body as in the Databricks docs (platform-facts §2)."""
    document: dict[str, Any] = {
        "event": event,
        "webhook_id": webhook_id,
        "event_timestamp": int(time.time() * 1000) if event_timestamp_ms is None else event_timestamp_ms,
        "model_name": model,
        "version": version,
        "from_stage": "None",
        "text": f"Registered model '{model}' version {version} transitioned from None to {to_stage}.",
    }
    if to_stage is not None:
        document["to_stage"] = to_stage
    return document


def databricks_headers(body: bytes, *, secret: str = SECRET) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Databricks-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest(),
    }


def job_request(
    *,
    model: str = "main.ml.churn",
    version: str = "4",
    alias: str = "champion",
    delivery_id: str | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    return {
        "delivery_id": delivery_id or f"run-{uuid.uuid4().hex[:12]}-{version}",
        "timestamp": int(time.time()) if timestamp is None else timestamp,
        "model": model,
        "version": version,
        "alias": alias,
    }


def job_headers(token: str = JOB_TOKEN) -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


# --- the recording CI API (stands in for GitHub and Azure DevOps) -------------------------------------------


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


class CiRecorder:
    """A real HTTP server on 127.0.0.1 that records every request and answers as scripted.

    `script(...)` queues replies for the next requests; after those, every request gets `default`. `stop()` closes
    the socket (connection refused, as when CI is down) and `start()` opens it again on the same port.
    """

    def __init__(self, default: Reply | None = None) -> None:
        self.port = free_port()
        self.default = default or Reply(204)
        self.requests: list[Recorded] = []
        self._script: collections.deque[Reply] = collections.deque()
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def script(self, *replies: Reply) -> None:
        with self._cond:
            self._script.extend(replies)

    def start(self) -> CiRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                parts = urlsplit(self.path)
                reply = recorder._record(
                    Recorded(
                        method="POST",
                        path=parts.path,
                        query=parts.query,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=body,
                    )
                )
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client gave up (timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _record(self, request: Recorded) -> Reply:
        with self._cond:
            self.requests.append(request)
            self._cond.notify_all()
            return self._script.popleft() if self._script else self.default

    def wait_for(self, count: int, timeout: float) -> list[Recorded]:
        """Block until at least `count` requests arrived (or `timeout`), then return all so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self.requests)

    def snapshot(self) -> list[Recorded]:
        with self._cond:
            return list(self.requests)


# --- the listener app in-process (real app, real Azurite) ---------------------------------------------------


@dataclass
class Listener:
    """The real ASGI app, spoken to over httpx's ASGI transport, with its real storage in Azurite."""

    settings: ListenerSettings
    runtime: Runtime
    client: httpx.AsyncClient

    async def post(self, route: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        return await self.client.post(f"/api/webhooks/{route}", content=body, headers=dict(headers))

    async def post_mlflow(self, document: Mapping[str, Any], **signing: Any) -> httpx.Response:
        body = mlflow_body(document)
        return await self.post("mlflow", body, mlflow_headers(body, **signing))

    async def post_databricks(self, document: Mapping[str, Any], secret: str = SECRET) -> httpx.Response:
        body = json.dumps(document).encode()
        return await self.post("databricks", body, databricks_headers(body, secret=secret))

    async def post_job(self, document: Mapping[str, Any], token: str = JOB_TOKEN) -> httpx.Response:
        return await self.post("databricks-job", json.dumps(document).encode(), job_headers(token))

    async def queued(self) -> list[Promotion]:
        """The promotions waiting on the queue (peeked, not taken)."""
        services = await self.runtime.services()
        peeked = await services.queue.client.peek_messages(max_messages=32)
        return [Promotion.model_validate_json(str(m.content)) for m in peeked]

    async def poisoned(self) -> list[PoisonMessage]:
        services = await self.runtime.services()
        peeked = await services.storage.poison_queue.peek_messages(max_messages=32)
        return [PoisonMessage.model_validate_json(str(m.content)) for m in peeked]

    async def record(self, promotion: Promotion | DriftAlert) -> DeliveryRecord | None:
        services = await self.runtime.services()
        return await services.store.get(promotion.source.value, promotion.delivery_id)

    async def work_until(self, done: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
        """Run the real queue worker until `done()` holds; fail if it does not within `timeout`."""
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(self.runtime, stop))
        try:
            deadline = time.monotonic() + timeout
            while not await done():
                if time.monotonic() > deadline:
                    raise AssertionError(f"condition not reached within {timeout}s")
                if worker.done():
                    worker.result()
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker


MakeSettings = Callable[..., ListenerSettings]
MakeListener = Callable[..., Awaitable[Listener]]
