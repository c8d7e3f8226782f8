"""The ASGI app (Starlette): three webhook routes, two alert routes (`alert_routes.py`) and a health route, all under
`/api` like the Azure host's.

Each webhook goes through the same gate, in this order, and is answered by the first check that fails:

    413 body over LISTENER_MAX_BODY_BYTES      415 not application/json
    401 missing/bad signature or token, or a timestamp outside the tolerance window (replay)
    400 not JSON, or not the shape its event needs (the reason says what)
    202 {"status": "ignored"}    verified, but not a promotion under the settings (another model/alias/stage)
    202 {"status": "duplicate"}  a redelivery of an event already handed off
    202 {"status": "accepted"}   written to the queue (and recorded in the dedupe table) before this answer
    503 storage unreachable: nothing was promised; the sender delivers again (Retry-After is set)

No failure is ever answered with 200; `GET /api/health` is the only 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from webhook_listener import contract
from webhook_listener import promotion as rules
from webhook_listener.alert_routes import AlertRoutes
from webhook_listener.gate import STORAGE_ERRORS, Gate, Rejection, authenticated, parse, reply
from webhook_listener.logs import get_logger, log_event
from webhook_listener.runtime import Runtime
from webhook_listener.schemas import DatabricksEvent, JobPromotion, MlflowEnvelope, Promotion
from webhook_listener.settings import ListenerSettings
from webhook_listener.signatures import check_age, verify_bearer, verify_databricks, verify_mlflow
from webhook_listener.worker import run_worker

_log = get_logger("http")
HEALTH_TIMEOUT_SECONDS = 2.0


class _Answer(Exception):
    """A 202 that ends processing early (ignored)."""

    def __init__(self, reason: str, delivery_id: str | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delivery_id = delivery_id


def _decided(decision: Promotion | rules.Ignored, delivery_id: str | None) -> Promotion:
    if isinstance(decision, rules.Ignored):
        raise _Answer(decision.reason, delivery_id)
    return decision


class WebhookRoutes:
    """Owns the three promotion webhook routes and the health route; the gate and hand-off are `gate.Gate`'s."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.runtime = gate.runtime
        self.settings: ListenerSettings = gate.settings

    # --- the three senders ------------------------------------------------------------------------------------

    async def mlflow(self, request: Request) -> Response:
        async def handle() -> Promotion:
            body = await self.gate.admit(request)
            delivery = authenticated(
                lambda: verify_mlflow(
                    request.headers,
                    body,
                    self.settings.webhook_secret.get_secret_value(),
                    now=time.time(),
                    tolerance_seconds=self.settings.timestamp_tolerance_seconds,
                )
            )
            envelope = parse(body, MlflowEnvelope)
            try:
                decision = rules.from_mlflow(envelope, delivery.delivery_id, self.settings)
            except rules.PayloadError as exc:
                raise Rejection(400, str(exc)) from None
            return _decided(decision, delivery.delivery_id)

        return await self._run("mlflow", handle)

    async def databricks(self, request: Request) -> Response:
        async def handle() -> Promotion:
            body = await self.gate.admit(request)
            secret = self.settings.webhook_secret.get_secret_value()
            authenticated(lambda: verify_databricks(request.headers, body, secret))
            event = parse(body, DatabricksEvent)
            tolerance = self.settings.timestamp_tolerance_seconds
            authenticated(lambda: check_age(event.event_timestamp / 1000, time.time(), tolerance))
            try:
                decision = rules.from_databricks(event, self.settings)
            except rules.PayloadError as exc:
                raise Rejection(400, str(exc)) from None
            return _decided(decision, None)

        return await self._run("databricks", handle)

    async def databricks_job(self, request: Request) -> Response:
        async def handle() -> Promotion:
            body = await self.gate.admit(request)
            token = self.settings.job_token.get_secret_value() if self.settings.job_token is not None else None
            authenticated(lambda: verify_bearer(request.headers, token))
            job = parse(body, JobPromotion)
            tolerance = self.settings.timestamp_tolerance_seconds
            authenticated(lambda: check_age(job.timestamp, time.time(), tolerance))
            return _decided(rules.from_job(job, self.settings), job.delivery_id)

        return await self._run("databricks-job", handle)

    # --- shared steps -----------------------------------------------------------------------------------------

    async def _run(self, route: str, handle: Callable[[], Awaitable[Promotion]]) -> Response:
        started = time.perf_counter()

        def elapsed() -> float:
            return round((time.perf_counter() - started) * 1000, 2)

        try:
            promotion = await handle()
        except Rejection as exc:
            log_event(_log, logging.WARNING, "webhook rejected", route=route, status=exc.status, reason=exc.reason)
            return reply(exc.status, "rejected", reason=exc.reason)
        except _Answer as answer:
            log_event(
                _log,
                logging.INFO,
                "webhook ignored",
                route=route,
                status=202,
                delivery_id=answer.delivery_id,
                reason=answer.reason,
                ms=elapsed(),
            )
            return reply(202, "ignored", reason=answer.reason, delivery_id=answer.delivery_id)
        fields: dict[str, Any] = {
            "route": route,
            "delivery_id": promotion.delivery_id,
            "model": promotion.model,
            "version": promotion.version,
        }
        try:
            outcome = await self.gate.hand_off(promotion)
        except STORAGE_ERRORS as exc:
            log_event(
                _log,
                logging.ERROR,
                "webhook not accepted: storage unavailable",
                status=503,
                error=type(exc).__name__,
                ms=elapsed(),
                **fields,
            )
            return reply(503, "unavailable", reason="storage unavailable; deliver again", **fields)
        log_event(_log, logging.INFO, f"webhook {outcome}", status=202, ms=elapsed(), **fields)
        return reply(202, outcome, delivery_id=promotion.delivery_id)

    # --- health -----------------------------------------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                services = await self.runtime.services()
        except STORAGE_ERRORS as exc:
            checks = {"queue": f"unreachable ({type(exc).__name__})", "table": "unknown"}
        else:
            for name, ping in (("queue", services.queue.ping), ("table", services.store.ping)):
                try:
                    async with asyncio.timeout(HEALTH_TIMEOUT_SECONDS):
                        await ping()
                    checks[name] = "ok"
                except STORAGE_ERRORS as exc:
                    checks[name] = f"unreachable ({type(exc).__name__})"
        healthy = all(v == "ok" for v in checks.values())
        body = {
            "status": "ok" if healthy else "unavailable",
            **checks,
            "dispatch_target": self.settings.dispatch_target.value,
        }
        return JSONResponse(body, status_code=200 if healthy else 503)


def create_app(settings: ListenerSettings, *, runtime: Runtime | None = None, with_worker: bool = False) -> Starlette:
    """Build the ASGI app. `with_worker` also runs the queue worker in the app's lifespan (the local serve mode);
    in Azure the queue trigger does that work instead."""
    owned = runtime is None
    active = runtime or Runtime(settings)
    gate = Gate(active)
    routes = WebhookRoutes(gate)
    alert_routes = AlertRoutes(gate)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(active, stop)) if with_worker else None
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                await worker
            if owned:
                await active.aclose()

    app = Starlette(
        routes=[
            Route(contract.Routes.WEBHOOK_MLFLOW, routes.mlflow, methods=["POST"]),
            Route(contract.Routes.WEBHOOK_DATABRICKS, routes.databricks, methods=["POST"]),
            Route(contract.Routes.WEBHOOK_DATABRICKS_JOB, routes.databricks_job, methods=["POST"]),
            Route(contract.Routes.ALERTS_ALERTMANAGER, alert_routes.alertmanager, methods=["POST"]),
            Route(contract.Routes.ALERTS_AZURE_MONITOR, alert_routes.azure_monitor, methods=["POST"]),
            Route(contract.Routes.HEALTH, routes.health, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.runtime = active
    return app
