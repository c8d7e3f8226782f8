"""`release.drift` (the model-drift workflow's logic) against the GitHub and Databricks Jobs stand-ins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from release.drift import DriftPayload, issue_title, main
from tests.release.databricksfake import TOKEN, DatabricksServer, FakeDatabricks
from tests.release.ghfake import FakeGitHub
from tests.release.test_workflows import WORKFLOWS, load
from webhook_listener.schemas import DriftAlert, Source

JOB = 4242
DELIVERY = "am-5f0c0b3cd6d1b4b2b9a3c2e1f0a9b8c7d6e5f4a3"


def payload(**overrides: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "alert": "ModelDataDrift",
        "model": "wine-quality",
        "version": "2",
        "target_stack": "staging",
        "fired_at": "2026-11-30T06:01:15.123456789Z",
        "severity": "warning",
        "summary": "3 of 11 features drifted",
        "delivery_id": DELIVERY,
        "source": "alertmanager",
    }
    document.update(overrides)
    return document


def event_file(tmp_path: Path, **overrides: Any) -> Path:
    path = tmp_path / f"event-{len(list(tmp_path.glob('event-*')))}.json"
    path.write_text(json.dumps({"action": "model-drift", "client_payload": payload(**overrides)}))
    return path


@pytest.fixture
def databricks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeDatabricks]:
    with DatabricksServer(FakeDatabricks(jobs={JOB})) as fake:
        monkeypatch.setenv("DATABRICKS_HOST", fake.url)
        monkeypatch.setenv("DATABRICKS_TOKEN", TOKEN)
        monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "no-databrickscfg"))
        for name in ("DATABRICKS_AUTH_TYPE", "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "ARM_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)
        yield fake


@pytest.fixture
def retrain_job(monkeypatch: pytest.MonkeyPatch, databricks: FakeDatabricks) -> int:
    monkeypatch.setenv("DATABRICKS_RETRAIN_JOB_ID", str(JOB))
    return JOB


@pytest.fixture(autouse=True)
def _no_job_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABRICKS_RETRAIN_JOB_ID", raising=False)


# --- no retraining job: an issue ------------------------------------------------------------------------------


def test_without_a_retraining_job_an_issue_says_what_drifted_and_how_to_retrain(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--event-path", str(event_file(tmp_path))]) == 0

    [issue] = github.issues.values()
    assert issue["title"] == "Model drift: wine-quality (ModelDataDrift, staging)"
    assert [label["name"] for label in issue["labels"]] == ["model-drift"]
    assert "DATABRICKS_RETRAIN_JOB_ID" in issue["body"]
    assert "3 of 11 features drifted" in issue["body"]
    assert capsys.readouterr().out.startswith("issue-opened: opened issue #")


def test_the_next_episode_comments_on_the_open_issue_and_a_redelivery_changes_nothing(
    github: FakeGitHub, tmp_path: Path
) -> None:
    assert main(["--event-path", str(event_file(tmp_path))]) == 0
    later = "am-00000000000000000000000000000000000000aa"
    assert main(["--event-path", str(event_file(tmp_path, delivery_id=later, fired_at="2026-12-01T00:00:00Z"))]) == 0
    assert main(["--event-path", str(event_file(tmp_path, delivery_id=later))]) == 0
    assert main(["--event-path", str(event_file(tmp_path))]) == 0

    assert len(github.issues) == 1
    [comment] = github.comments.values()
    assert "2026-12-01T00:00:00Z" in comment["body"]
    assert len(github.calls("POST", "/issues")) == 1


def test_a_pull_request_with_the_same_title_is_not_the_drift_issue(github: FakeGitHub, tmp_path: Path) -> None:
    github.add_pull("drift-notes", "main", title=issue_title(DriftPayload.model_validate(payload())))
    assert main(["--event-path", str(event_file(tmp_path))]) == 0
    assert len(github.issues) == 1
    assert github.comments == {}


def test_github_refusing_the_issue_is_exit_1_with_the_reason(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    github.fail_next(403, "Resource not accessible by integration")
    assert main(["--event-path", str(event_file(tmp_path))]) == 1
    assert "forbidden (403" in capsys.readouterr().err


# --- a retraining job: run it ---------------------------------------------------------------------------------


def test_with_a_retraining_job_the_job_runs_once_per_alert(
    github: FakeGitHub, databricks: FakeDatabricks, retrain_job: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--event-path", str(event_file(tmp_path))]) == 0

    [run] = databricks.started()
    assert (run["job_id"], run["idempotency_token"]) == (retrain_job, DELIVERY)
    out = capsys.readouterr().out
    assert out.startswith(f"retrain-started: started job {retrain_job}, run {run['run_id']}")
    assert github.issues == {}
    # The workflow re-run after the run finished: the idempotency token returns the same run.
    databricks.finish_all()
    assert main(["--event-path", str(event_file(tmp_path))]) == 0
    assert len(databricks.started()) == 1


def test_no_second_run_while_one_is_active(
    databricks: FakeDatabricks, retrain_job: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--event-path", str(event_file(tmp_path))]) == 0
    other = "azm-0000000000000000000000000000000000000bb"
    assert main(["--event-path", str(event_file(tmp_path, delivery_id=other, source="azure-monitor"))]) == 0
    assert len(databricks.started()) == 1
    assert "retrain-running: job 4242 is already running" in capsys.readouterr().out
    databricks.finish_all()
    assert main(["--event-path", str(event_file(tmp_path, delivery_id=other))]) == 0
    assert len(databricks.started()) == 2


def test_a_job_that_does_not_exist_is_exit_1_naming_the_variable(
    databricks: FakeDatabricks, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABRICKS_RETRAIN_JOB_ID", "77")
    assert main(["--event-path", str(event_file(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "Job 77 does not exist" in err
    assert "DATABRICKS_RETRAIN_JOB_ID" in err


def test_the_step_summary_links_the_run(
    databricks: FakeDatabricks, retrain_job: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    assert main(["--event-path", str(event_file(tmp_path))]) == 0
    assert f"{databricks.url}/jobs/{retrain_job}/runs/" in summary.read_text()


# --- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "DATABRICKS_RETRAIN_JOB_ID: expected a Databricks job id (a positive integer), got 'abc'"),
        ("0", "DATABRICKS_RETRAIN_JOB_ID: expected a Databricks job id"),
    ],
)
def test_a_bad_job_id_is_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    monkeypatch.setenv("DATABRICKS_RETRAIN_JOB_ID", value)
    assert main(["--event-path", str(event_file(tmp_path))]) == 2
    assert message in capsys.readouterr().err


def test_a_job_without_a_workspace_is_exit_2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABRICKS_RETRAIN_JOB_ID", "5")
    monkeypatch.delenv("DATABRICKS_HOST", raising=False)
    assert main(["--event-path", str(event_file(tmp_path))]) == 2
    assert "DATABRICKS_HOST: required" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"alert": ""}, "client_payload.alert"),
        ({"target_stack": "Prod Stack"}, "client_payload.target_stack"),
        ({"delivery_id": "a/b"}, "client_payload.delivery_id"),
        ({"source": "mlflow"}, "client_payload.source"),
    ],
)
def test_a_malformed_payload_is_exit_2_naming_the_key(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: dict[str, Any], key: str
) -> None:
    assert main(["--event-path", str(event_file(tmp_path, **overrides))]) == 2
    assert key in capsys.readouterr().err
    assert github.requests == []


def test_another_event_type_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "event.json"
    path.write_text(json.dumps({"action": "model-promoted", "client_payload": payload()}))
    assert main(["--event-path", str(path)]) == 2
    assert "expected 'model-drift'" in capsys.readouterr().err


# --- the boundaries: what the listener sends, what the workflow runs ------------------------------------------


def test_the_listeners_drift_payload_is_what_this_command_reads() -> None:
    sent = DriftAlert(
        source=Source.AZURE_MONITOR,
        delivery_id="azm-" + "c" * 40,
        alert="ModelDataDrift",
        model=None,
        target_stack="prod",
        fired_at="2026-11-30T06:03:02.3929824Z",
    ).client_payload()
    read = DriftPayload.model_validate(sent)
    assert (read.source, read.model, read.target_stack) == ("azure-monitor", None, "prod")


def test_the_workflow_runs_this_command_on_the_event_the_listener_sends() -> None:
    from webhook_listener.settings import ListenerSettings

    workflow = load(WORKFLOWS / "model-drift.yml")
    default = ListenerSettings.model_fields["github_drift_event_type"].default
    assert workflow["on"] == {"repository_dispatch": {"types": [default]}}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "issues": "write", "id-token": "write"}
    step = job["steps"][-1]
    assert step["run"] == '.venv/bin/python -m release.drift --event-path "$GITHUB_EVENT_PATH"'
    assert step["env"]["DATABRICKS_RETRAIN_JOB_ID"] == "${{ vars.DATABRICKS_RETRAIN_JOB_ID }}"
