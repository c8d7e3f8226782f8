"""A stand-in for the Databricks Jobs API 2.2 on 127.0.0.1: the calls `release.drift` makes through the SDK.

It keeps jobs and runs, checks the bearer token, and answers as the service does:
* `POST /api/2.2/jobs/run-now`: a run with the same `idempotency_token` returns that run's id instead of starting
  another (https://docs.databricks.com/api/workspace/jobs/runnow); an unknown job is 400 INVALID_PARAMETER_VALUE
  "Job <id> does not exist." (as reported in astronomer/astronomer-providers#1254).
* `GET /api/2.2/jobs/runs/list?job_id=&active_only=true`: the job's runs not yet terminated, newest first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.release.jsonapi import JsonApiServer

TOKEN = "dapi-test-token"


@dataclass
class FakeDatabricks:
    jobs: set[int] = field(default_factory=set)
    runs: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    url: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def finish_all(self) -> None:
        with self._lock:
            for run in self.runs:
                run["state"] = {"life_cycle_state": "TERMINATED", "result_state": "SUCCESS"}

    def started(self) -> list[dict[str, Any]]:
        return list(self.runs)

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        status, payload = self._answer(method, raw_path, headers, body)
        return status, payload, {}

    def _answer(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self._lock:
            self.calls.append((method, parts.path, body if method == "POST" else query))
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return 401, {"error_code": "UNAUTHENTICATED", "message": "Invalid access token."}
            if (method, parts.path) == ("POST", "/api/2.2/jobs/run-now"):
                return self._run_now(body)
            if (method, parts.path) == ("GET", "/api/2.2/jobs/runs/list"):
                job_id = int(query.get("job_id", "0"))
                active = query.get("active_only") == "true"
                runs = [
                    r
                    for r in reversed(self.runs)
                    if r["job_id"] == job_id and (not active or r["state"]["life_cycle_state"] != "TERMINATED")
                ]
                return 200, ({"runs": runs, "has_more": False} if runs else {"has_more": False})
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"No API found for '{method} {parts.path}'"}

    def _run_now(self, body: dict[str, Any]) -> tuple[int, Any]:
        job_id = int(body["job_id"])
        if job_id not in self.jobs:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": f"Job {job_id} does not exist."}
        token = body.get("idempotency_token")
        if token is not None and len(token) > 64:
            return 400, {"error_code": "INVALID_PARAMETER_VALUE", "message": "idempotency_token is too long"}
        for run in self.runs:
            if token is not None and run["idempotency_token"] == token:
                return 200, {"run_id": run["run_id"], "number_in_job": run["run_id"]}
        run_id = 1000 + len(self.runs)
        self.runs.append(
            {
                "run_id": run_id,
                "job_id": job_id,
                "idempotency_token": token,
                "state": {"life_cycle_state": "RUNNING"},
            }
        )
        return 200, {"run_id": run_id, "number_in_job": run_id}


def DatabricksServer(fake: FakeDatabricks | None = None) -> JsonApiServer[FakeDatabricks]:
    """Runs a FakeDatabricks on 127.0.0.1 in a thread."""
    return JsonApiServer(fake or FakeDatabricks(), "fake-databricks")
