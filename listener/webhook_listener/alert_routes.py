"""The alert routes: Prometheus Alertmanager's webhook and Azure Monitor's common alert schema.

They pass the same gate as the webhook routes (413, 415, then 401 before the body is parsed, then 400), and a firing
drift alert is handed off exactly like a promotion: recorded in the dedupe table, written to the queue, then
answered 202; the worker dispatches it as `model-drift`. Everything else verified is answered 202 `ignored` with the
reason and logged. Neither sender signs its body or stamps the time of sending, so there is no replay window: a
replayed alert needs the secret, and is then only a duplicate of an alert already handed off.

    POST /api/alerts/alertmanager    Authorization: Bearer <LISTENER_ALERTMANAGER_TOKEN>
    POST /api/alerts/azure-monitor   ?token=<LISTENER_AZURE_MONITOR_TOKEN> (plus the Functions key, `code`, in Azure)

One Alertmanager notification may carry several alerts; each firing drift alert is its own event. If storage fails
half-way the answer is 503 and Alertmanager sends the whole notification again: what was handed off is then a
duplicate and the rest is accepted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from webhook_listener import alerts
from webhook_listener.alert_schemas import AlertmanagerNotification, AzureCommonAlert
from webhook_listener.gate import STORAGE_ERRORS, Gate, Rejection, authenticated, describe, parse, reply
from webhook_listener.logs import get_logger, log_event
from webhook_listener.promotion import Ignored
from webhook_listener.schemas import DriftAlert
from webhook_listener.signatures import verify_bearer, verify_query_token

_log = get_logger("alerts")
MAX_REASONS = 5


class AlertRoutes:
    """Owns the two alert routes; the gate and hand-off are `gate.Gate`'s, as for the webhook routes."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.settings = gate.settings

    async def alertmanager(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await self.gate.admit(request)
            secret = self.settings.alertmanager_token
            token = secret.get_secret_value() if secret is not None else None
            authenticated(lambda: verify_bearer(request.headers, token, route="alertmanager"))
            notification = parse(body, AlertmanagerNotification)
            if missing := alerts.drift_dispatch_missing(self.settings):
                return self._ignored("alertmanager", [missing.reason], started)
            try:
                drifts, ignored = alerts.from_alertmanager(notification, self.settings)
            except ValidationError as exc:  # a label unfit for the event (e.g. a 600-character severity)
                raise Rejection(400, f"alert fields unfit for the event: {describe(exc)}") from None
        except Rejection as exc:
            return self._rejected("alertmanager", exc)
        if notification.truncatedAlerts:
            # `max_alerts` in the receiver cut the list: the cut alerts come again with the next notification.
            log_event(_log, logging.WARNING, "alerts truncated by the sender", truncated=notification.truncatedAlerts)
        if not drifts:
            return self._ignored("alertmanager", ignored, started)
        return await self._hand_off("alertmanager", drifts, len(ignored), started)

    async def azure_monitor(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = await self.gate.admit(request)
            secret = self.settings.azure_monitor_token
            token = secret.get_secret_value() if secret is not None else None
            authenticated(lambda: verify_query_token(request.query_params, token, route="azure-monitor"))
            alert = parse(body, AzureCommonAlert)
            try:
                decision = alerts.drift_dispatch_missing(self.settings) or alerts.from_azure_monitor(
                    alert, self.settings
                )
            except ValidationError as exc:  # alertContext labels of the wrong shape, or fields unfit for the event
                raise Rejection(400, f"alert fields unfit for the event: {describe(exc)}") from None
        except Rejection as exc:
            return self._rejected("azure-monitor", exc)
        if isinstance(decision, Ignored):
            return self._ignored("azure-monitor", [decision.reason], started)
        return await self._hand_off("azure-monitor", [decision], 0, started)

    # --- answers ----------------------------------------------------------------------------------------------

    @staticmethod
    def _ms(started: float) -> float:
        return round((time.perf_counter() - started) * 1000, 2)

    def _rejected(self, route: str, exc: Rejection) -> Response:
        log_event(_log, logging.WARNING, "alert rejected", route=route, status=exc.status, reason=exc.reason)
        return reply(exc.status, "rejected", reason=exc.reason)

    def _ignored(self, route: str, reasons: list[str], started: float) -> Response:
        reason = "; ".join(reasons[:MAX_REASONS]) + (
            f"; and {len(reasons) - MAX_REASONS} more" if len(reasons) > MAX_REASONS else ""
        )
        log_event(_log, logging.INFO, "alert ignored", route=route, status=202, reason=reason, ms=self._ms(started))
        return reply(202, "ignored", reason=reason)

    async def _hand_off(self, route: str, drifts: list[DriftAlert], ignored: int, started: float) -> Response:
        outcomes: list[str] = []
        for drift in drifts:
            fields: dict[str, Any] = {
                "route": route,
                "delivery_id": drift.delivery_id,
                "alert": drift.alert,
                "model": drift.model,
                "fired_at": drift.fired_at,
            }
            try:
                outcome = await self.gate.hand_off(drift)
            except STORAGE_ERRORS as exc:
                log_event(
                    _log,
                    logging.ERROR,
                    "alert not accepted: storage unavailable",
                    status=503,
                    error=type(exc).__name__,
                    ms=self._ms(started),
                    **fields,
                )
                return reply(503, "unavailable", reason="storage unavailable; deliver again")
            log_event(_log, logging.INFO, f"drift alert {outcome}", status=202, ms=self._ms(started), **fields)
            outcomes.append(outcome)
        status = "accepted" if "accepted" in outcomes else "duplicate"
        body = {"status": status, "delivery_ids": [d.delivery_id for d in drifts], "ignored": ignored}
        return JSONResponse(body, status_code=202)
