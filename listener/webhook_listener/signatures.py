"""Request authentication for the three senders. Every comparison is constant-time (`hmac.compare_digest`).

* open-source MLflow: `X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "{delivery_id}.{timestamp}.{raw body}")>`
  with `X-MLflow-Delivery-Id` and `X-MLflow-Timestamp` (unix seconds); the timestamp is part of what is signed,
  so checking its age stops replays.
* Databricks registry webhooks: `X-Databricks-Signature: <hex HMAC-SHA256(secret, raw body)>`; nothing else is
  signed, so the age check uses the body's `event_timestamp` once the body is known to be genuine.
* The Databricks job (Unity Catalog), and Prometheus Alertmanager: `Authorization: Bearer <token>`, one token each.
* Azure Monitor action groups: a secret in the webhook URL's query (`?token=<secret>`), because an action group's
  plain webhook can send no header of our choosing (see the listener README for why not the Entra "secure webhook").
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

MLFLOW_SIGNATURE = "x-mlflow-signature"
MLFLOW_DELIVERY_ID = "x-mlflow-delivery-id"
MLFLOW_TIMESTAMP = "x-mlflow-timestamp"
DATABRICKS_SIGNATURE = "x-databricks-signature"
# Delivery ids become Table storage row keys, which must not contain a slash, backslash, # or ?.
DELIVERY_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")


class AuthenticationError(Exception):
    """The request is not from a sender we trust (answered with 401 and this message as the reason)."""


@dataclass(frozen=True)
class MlflowDelivery:
    delivery_id: str
    timestamp: int


def _hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def check_age(timestamp: float, now: float, tolerance_seconds: int) -> None:
    """Refuse a timestamp more than `tolerance_seconds` away from `now`, in either direction."""
    if abs(now - timestamp) > tolerance_seconds:
        raise AuthenticationError("timestamp outside the tolerance window")


def verify_mlflow(
    headers: Mapping[str, str], body: bytes, secret: str, *, now: float, tolerance_seconds: int
) -> MlflowDelivery:
    """Check an open-source MLflow delivery's signature and age; return its delivery id and timestamp."""
    signature = headers.get(MLFLOW_SIGNATURE)
    delivery_id = headers.get(MLFLOW_DELIVERY_ID)
    timestamp_text = headers.get(MLFLOW_TIMESTAMP)
    if not signature:
        raise AuthenticationError("missing X-MLflow-Signature")
    if not delivery_id or not timestamp_text:
        raise AuthenticationError("missing X-MLflow-Delivery-Id or X-MLflow-Timestamp")
    if not DELIVERY_ID_PATTERN.match(delivery_id):
        raise AuthenticationError("malformed X-MLflow-Delivery-Id")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise AuthenticationError("malformed X-MLflow-Timestamp") from None
    version, _, encoded = signature.partition(",")
    if version != "v1" or not encoded:
        raise AuthenticationError("unsupported signature scheme")
    try:
        presented = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise AuthenticationError("bad signature") from None
    expected = _hmac_sha256(secret, f"{delivery_id}.{timestamp_text}.".encode() + body)
    if not hmac.compare_digest(presented, expected):
        raise AuthenticationError("bad signature")
    # Only a genuine timestamp is worth judging: a forged one fails above.
    check_age(timestamp, now, tolerance_seconds)
    return MlflowDelivery(delivery_id=delivery_id, timestamp=timestamp)


def verify_databricks(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Check a Databricks registry webhook's hex HMAC-SHA256 of the raw body."""
    signature = headers.get(DATABRICKS_SIGNATURE)
    if not signature:
        raise AuthenticationError("missing X-Databricks-Signature")
    expected = _hmac_sha256(secret, body).hex()
    if not hmac.compare_digest(signature.strip().lower().encode("ascii", "replace"), expected.encode("ascii")):
        raise AuthenticationError("bad signature")


def verify_bearer(headers: Mapping[str, str], token: str | None, *, route: str = "job") -> None:
    """Check `Authorization: Bearer <token>` against the route's configured token (no token configured: refuse all)."""
    authorization = headers.get("authorization", "")
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise AuthenticationError("missing bearer token")
    if token is None:
        raise AuthenticationError(f"the {route} route is not configured")
    if not hmac.compare_digest(presented.strip().encode("utf-8"), token.encode("utf-8")):
        raise AuthenticationError("bad bearer token")


def verify_query_token(query: Mapping[str, str], token: str | None, *, route: str) -> None:
    """Check the URL's `token` parameter against the route's configured secret (none configured: refuse all)."""
    presented = query.get("token", "")
    if not presented:
        raise AuthenticationError("missing token parameter")
    if token is None:
        raise AuthenticationError(f"the {route} route is not configured")
    if not hmac.compare_digest(presented.encode("utf-8"), token.encode("utf-8")):
        raise AuthenticationError("bad token parameter")
