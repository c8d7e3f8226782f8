"""React to a drift alert: run the retraining job in Databricks, or open an issue when none is configured.

    python -m release.drift [--event-path $GITHUB_EVENT_PATH | --payload '{...}']

The `model-drift` repository_dispatch comes from the webhook listener when a drift alert fires (Alertmanager or Azure
Monitor). With `DATABRICKS_RETRAIN_JOB_ID` set (a repository variable), the job is started with `run-now` and the
alert's `delivery_id` as its idempotency token, so a redelivered dispatch or a re-run of the workflow starts no
second run; while a run of the job is still active, none is started. Without it, an issue says what drifted and how
to configure retraining; later episodes of the same alert comment on the open issue instead of opening another.

Exit codes: 0 done (or nothing to do); 1 Databricks or GitHub failed; 2 invalid payload or settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from release.github import GitHub, GitHubError
from stacks.identifiers import MODEL_NAME_PATTERN, STACK_NAME_PATTERN
from webhook_listener import contract

EVENT_TYPE = contract.Events.DRIFT
JOB_ID_VARIABLE = "DATABRICKS_RETRAIN_JOB_ID"
ISSUE_LABEL = "model-drift"

Text = Annotated[str, StringConstraints(min_length=1, max_length=500)]
DeliveryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,200}$")]


class DriftPayload(BaseModel):
    """The `client_payload` of the listener's `model-drift` dispatch (the listener's `DriftAlert`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    alert: Text
    model: Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)] | None = None
    version: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}$")] | None = None
    target_stack: Annotated[str, StringConstraints(pattern=STACK_NAME_PATTERN)]
    fired_at: Text
    severity: str | None = None
    summary: str | None = None
    delivery_id: DeliveryId
    source: Literal["alertmanager", "azure-monitor", "manual"]


class DriftError(RuntimeError):
    """Something outside refused (Databricks or GitHub); the message says what to check."""


class SettingsProblem(ValueError):
    """The payload or the settings are unusable; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_payload(document: Any) -> DriftPayload:
    if not isinstance(document, dict):
        raise SettingsProblem(["client_payload: expected a JSON object"])
    try:
        return DriftPayload.model_validate(document)
    except ValidationError as exc:
        raise SettingsProblem(
            [f"client_payload.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        ) from None


def payload_from_event(path: Path) -> DriftPayload:
    """The payload of a `repository_dispatch` event file ($GITHUB_EVENT_PATH)."""
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SettingsProblem([f"{path}: cannot read the event: {exc}"]) from None
    if not isinstance(event, dict):
        raise SettingsProblem([f"{path}: the event is not a JSON object"])
    action = event.get("action")
    if action is not None and action != EVENT_TYPE:
        raise SettingsProblem([f"{path}: event type is {action!r}, expected {EVENT_TYPE!r}"])
    if "client_payload" not in event:
        raise SettingsProblem([f"{path}: no client_payload (is this a repository_dispatch event?)"])
    return parse_payload(event["client_payload"])


def retrain_job_id(env: Mapping[str, str]) -> int | None:
    """The configured retraining job, or None; a value that is not a job id is an error naming the variable."""
    raw = env.get(JOB_ID_VARIABLE, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsProblem([f"{JOB_ID_VARIABLE}: expected a Databricks job id (a positive integer), got {raw!r}"])
    if not env.get("DATABRICKS_HOST", "").strip():
        raise SettingsProblem([f"DATABRICKS_HOST: required when {JOB_ID_VARIABLE} is set (the workspace URL)"])
    return int(raw)


# --- Databricks -----------------------------------------------------------------------------------------------


class Retrainer(Protocol):
    def active_run(self, job_id: int) -> int | None:
        """The id of a run of `job_id` that has not finished, if any."""

    def run_now(self, job_id: int, idempotency_token: str) -> int:
        """Start `job_id` (at most once per token); return the run id."""

    def run_url(self, job_id: int, run_id: int) -> str: ...


class DatabricksRetrainer:
    """The Jobs API through the Databricks SDK; authentication from the environment (in the workflow: a fresh GitHub
    OIDC token exchanged for an Entra token, `DATABRICKS_AUTH_TYPE=github-oidc-azure`)."""

    def __init__(self, host: str | None = None, **config: Any) -> None:
        from databricks.sdk import WorkspaceClient

        self._client = WorkspaceClient(host=host, **config)

    def active_run(self, job_id: int) -> int | None:
        for run in self._call(lambda: list(self._client.jobs.list_runs(job_id=job_id, active_only=True, limit=1))):
            if run.run_id is not None:
                return int(run.run_id)
        return None

    def run_now(self, job_id: int, idempotency_token: str) -> int:
        # The token makes run-now idempotent: "If a run with the provided token already exists, the request does not
        # create a new run but returns the ID of the existing run instead" (Jobs API 2.2 run-now; at most 64 chars).
        started = self._call(lambda: self._client.jobs.run_now(job_id=job_id, idempotency_token=idempotency_token))
        if started.response.run_id is None:
            raise DriftError(f"Databricks started job {job_id} but returned no run id")
        return int(started.response.run_id)

    def run_url(self, job_id: int, run_id: int) -> str:
        return f"{self._client.config.host}/jobs/{job_id}/runs/{run_id}"

    @staticmethod
    def _call(call: Callable[[], Any]) -> Any:
        from databricks.sdk.errors.base import DatabricksError

        try:
            return call()
        except DatabricksError as exc:
            raise DriftError(
                f"Databricks refused the call ({type(exc).__name__}: {exc}); check {JOB_ID_VARIABLE}, DATABRICKS_HOST "
                "and that the workflow's identity may run the job (CAN MANAGE RUN)"
            ) from None


# --- GitHub issue ---------------------------------------------------------------------------------------------


def issue_title(payload: DriftPayload) -> str:
    return f"Model drift: {payload.model or 'the served model'} ({payload.alert}, {payload.target_stack})"


def _marker(payload: DriftPayload) -> str:
    return f"<!-- model-drift delivery-id: {payload.delivery_id} -->"


def _episode(payload: DriftPayload) -> str:
    lines = [
        f"- alert: `{payload.alert}` from {payload.source}, fired at {payload.fired_at}",
        f"- model: `{payload.model or 'unknown'}`" + (f" version {payload.version}" if payload.version else ""),
        f"- stack: `{payload.target_stack}`",
    ]
    if payload.severity:
        lines.append(f"- severity: {payload.severity}")
    if payload.summary:
        lines.append(f"- {payload.summary}")
    return "\n".join([*lines, "", _marker(payload)])


def issue_body(payload: DriftPayload) -> str:
    return (
        "The model is seeing data it was not trained on, and no retraining job is configured, so nothing was "
        "retrained.\n\n"
        f"{_episode(payload)}\n\n"
        f"To retrain automatically next time, set the repository variable `{JOB_ID_VARIABLE}` to the Databricks job "
        "that retrains and registers the model (see docs/release-workflow.md); then promote the new version as usual."
    )


@dataclass(frozen=True)
class Outcome:
    action: Literal["retrain-started", "retrain-running", "issue-opened", "issue-commented", "already-recorded"]
    detail: str
    url: str | None = None


def record_issue(github: GitHub, payload: DriftPayload) -> Outcome:
    """Open the drift issue, or comment on the open one with the same title; never twice for one delivery."""
    title = issue_title(payload)
    issues = github.paginate(f"/repos/{github.repository}/issues", {"state": "open"}, what="list open issues")
    existing = next((i for i in issues if i.get("title") == title and "pull_request" not in i), None)
    if existing is None:
        created = github.request(
            "POST",
            f"/repos/{github.repository}/issues",
            json={"title": title, "body": issue_body(payload), "labels": [ISSUE_LABEL]},
            what="open the drift issue",
        )
        return Outcome("issue-opened", f"opened issue #{created['number']}", created.get("html_url"))
    number = existing["number"]
    texts = [existing.get("body") or ""]
    texts += [
        c.get("body") or ""
        for c in github.paginate(f"/repos/{github.repository}/issues/{number}/comments", what="read the issue")
    ]
    if any(_marker(payload) in text for text in texts):
        return Outcome("already-recorded", f"issue #{number} already records this alert", existing.get("html_url"))
    github.request(
        "POST",
        f"/repos/{github.repository}/issues/{number}/comments",
        json={"body": f"Drifted again:\n\n{_episode(payload)}"},
        what="comment on the drift issue",
    )
    return Outcome("issue-commented", f"commented on issue #{number}", existing.get("html_url"))


# --- the command ----------------------------------------------------------------------------------------------


def respond(
    payload: DriftPayload,
    *,
    job_id: int | None,
    retrainer: Callable[[], Retrainer],
    github: Callable[[], GitHub],
) -> Outcome:
    if job_id is None:
        client = github()
        try:
            return record_issue(client, payload)
        finally:
            client.close()
    databricks = retrainer()
    running = databricks.active_run(job_id)
    if running is not None:
        return Outcome(
            "retrain-running",
            f"job {job_id} is already running (run {running}); not starting another",
            databricks.run_url(job_id, running),
        )
    run_id = databricks.run_now(job_id, payload.delivery_id[:64])
    return Outcome("retrain-started", f"started job {job_id}, run {run_id}", databricks.run_url(job_id, run_id))


def _summary(payload: DriftPayload, outcome: Outcome) -> str:
    link = f" ({outcome.url})" if outcome.url else ""
    return (
        f"### Model drift: {payload.model or 'model'} on {payload.target_stack}\n\n"
        f"Alert `{payload.alert}` ({payload.source}, fired {payload.fired_at}): {outcome.detail}{link}\n"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--event-path", type=Path, help="the repository_dispatch event (default $GITHUB_EVENT_PATH)")
    parser.add_argument("--payload", help="the client_payload as JSON, instead of an event file")
    return parser


def main(argv: list[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        if args.payload is not None:
            try:
                payload = parse_payload(json.loads(args.payload))
            except json.JSONDecodeError as exc:
                raise SettingsProblem([f"--payload: not JSON: {exc}"]) from None
        else:
            event_path = args.event_path or env.get("GITHUB_EVENT_PATH")
            if not event_path:
                raise SettingsProblem(["no payload: pass --event-path or --payload"])
            payload = payload_from_event(Path(event_path))
        job_id = retrain_job_id(env)
        outcome = respond(
            payload,
            job_id=job_id,
            retrainer=lambda: DatabricksRetrainer(host=env.get("DATABRICKS_HOST")),
            github=lambda: GitHub.from_env(env),
        )
    except SettingsProblem as exc:
        print("invalid model-drift input:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    except (DriftError, GitHubError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{outcome.action}: {outcome.detail}" + (f" ({outcome.url})" if outcome.url else ""))
    summary_path = env.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as summary:
            summary.write(_summary(payload, outcome))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
