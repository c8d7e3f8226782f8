"""The workflows: actionlint-clean, third-party actions pinned by commit, logic in Python, least privilege."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from stacks.files import stack_names
from tests.release.gitrepo import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
PINNED = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"#\s*v\d+\.\d+\.\d+\s*$")
MAX_RUN_LINES = 5


def workflow_files() -> list[Path]:
    return sorted(WORKFLOWS.glob("*.yml"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe", pure=True).load(path.read_text())  # YAML 1.2: `on` stays a string
    return data


def jobs(path: Path) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = load(path)["jobs"]
    return result


def all_uses(path: Path) -> list[str]:
    found = []
    for job in jobs(path).values():
        if "uses" in job:
            found.append(job["uses"])
        found += [step["uses"] for step in job.get("steps", []) if "uses" in step]
    return found


def test_the_expected_workflows_exist() -> None:
    names = {p.name for p in workflow_files()}
    assert {"pull-request.yml", "deploy.yml", "promote-model.yml", "rollback.yml"} <= names
    assert not list(WORKFLOWS.glob("*.yaml")), "use .yml: .ci/run lints .github/workflows/*.yml"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_third_party_action_is_pinned_by_commit_sha(path: Path) -> None:
    uses = all_uses(path)
    assert uses
    lines = path.read_text().splitlines()
    for ref in uses:
        if ref.startswith("./"):
            assert (ROOT / ref).is_file(), f"{path.name}: local {ref} does not exist"
            continue
        assert PINNED.match(ref), f"{path.name}: {ref} is not pinned by a full 40-hex commit sha"
        for line in (line for line in lines if ref in line):
            assert VERSION_COMMENT.search(line), f"{path.name}: `{line.strip()}` needs a `# vX.Y.Z` comment"


def test_an_action_is_pinned_to_the_same_commit_everywhere() -> None:
    pins: dict[str, set[str]] = {}
    for path in workflow_files():
        for ref in all_uses(path):
            if not ref.startswith("./"):
                action, _, sha = ref.partition("@")
                pins.setdefault(action, set()).add(sha)
    assert {action: shas for action, shas in pins.items() if len(shas) > 1} == {}


def test_actionlint_passes_on_every_workflow() -> None:
    proc = subprocess.run(
        [str(ACTIONLINT), "-no-color", *map(str, workflow_files())],
        cwd=ROOT,  # a git checkout: actionlint then also checks calls to the local reusable workflow
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_really_lints() -> None:
    broken = (WORKFLOWS / "deploy.yml").read_text().replace("steps.up.outputs", "steps.nope.outputs", 1)
    proc = subprocess.run(
        [str(ACTIONLINT), "-no-color", "-stdin-filename", "deploy.yml", "-"],
        input=broken,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 1
    assert 'property "nope" is not defined' in proc.stdout


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_run_steps_are_short_the_logic_lives_in_python(path: Path) -> None:
    for name, job in jobs(path).items():
        for step in job.get("steps", []):
            if "run" not in step:
                continue
            lines = [line for line in step["run"].splitlines() if line.strip() and not line.strip().startswith("#")]
            assert len(lines) <= MAX_RUN_LINES, f"{path.name} {name}: a {len(lines)}-line run step; move it to Python"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_untrusted_values_reach_run_steps_only_through_env(path: Path) -> None:
    for name, job in jobs(path).items():
        for step in job.get("steps", []):
            assert "${{" not in step.get("run", ""), f"{path.name} {name}: pass expressions through env, not inline"


PROTECTED_ENVIRONMENTS = {"staging", "production", "release"}


def steps_of(job: dict[str, Any]) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = job.get("steps", [])
    return steps


def uses_of(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).startswith(f"{action}@")


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_least_privilege(path: Path) -> None:
    workflow = load(path)
    assert workflow["permissions"] == {"contents": "read"}, f"{path.name}: the default must be contents: read"
    for name, job in jobs(path).items():
        granted = job.get("permissions", {})
        runs = " ".join(step.get("run", "") for step in steps_of(job))
        if granted.get("id-token") == "write" and not job.get("uses"):
            # An OIDC token is only worth what the identity trusting its subject can do: a protected environment's
            # identity, or the read-only preview identity on pull requests.
            preview = job.get("env", {}).get("ARM_CLIENT_ID") == "${{ vars.AZURE_PREVIEW_CLIENT_ID }}"
            assert job.get("environment") in PROTECTED_ENVIRONMENTS or preview, f"{path.name} {name}: id-token"
        if granted.get("pull-requests") == "write":
            writes = ("release.pr_comment", "release.promote", "release.rollback")
            comments = any(uses_of(s, "pulumi/actions") and s["with"].get("comment-on-pr") for s in steps_of(job))
            assert any(w in runs for w in writes) or job.get("uses") or comments, f"{path.name} {name}"
        if granted.get("contents") == "write":
            assert any(w in runs for w in ("release.promote", "release.rollback")) or job.get("uses")


def test_pull_request_runs_write_nothing_and_cancel_older_runs() -> None:
    workflow = load(WORKFLOWS / "pull-request.yml")
    assert list(workflow["on"]) == ["pull_request"], "pull_request_target would hand fork code a writing token"
    assert workflow["concurrency"] == {
        "group": "pull-request-${{ github.event.pull_request.number }}",
        "cancel-in-progress": True,
    }
    for name, job in workflow["jobs"].items():
        writes = {k for k, v in job.get("permissions", {}).items() if v == "write"}
        assert writes <= ({"id-token", "pull-requests"} if name == "preview" else set()), name
    preview = workflow["jobs"]["preview"]
    assert preview["needs"] == "preview-gate"
    assert preview["if"] == "needs.preview-gate.outputs.run == 'true'", "only where GitHub issues an OIDC token"
    for job in workflow["jobs"].values():
        if "strategy" in job:
            assert sorted(job["strategy"]["matrix"]["stack"]) == sorted(stack_names(ROOT))


def test_the_pull_request_workflow_uses_nothing_that_can_deploy() -> None:
    """The branch's code runs here, so only the read-only preview identity (federated to the
    `pull_request` subject), a Stack Read Pulumi token from OIDC, and GITHUB_TOKEN reach it."""
    workflow = load(WORKFLOWS / "pull-request.yml")
    text = json.dumps(workflow)  # what runs, without the comments
    assert "secrets." not in text, "no repository secret: the ones that can deploy live in environments"
    assert "vars.AZURE_CLIENT_ID" not in text, "the deploy identities' client ids belong to the deploy jobs"
    assert not any("environment" in job for job in workflow["jobs"].values())
    preview = workflow["jobs"]["preview"]
    assert preview["env"]["ARM_CLIENT_ID"] == "${{ vars.AZURE_PREVIEW_CLIENT_ID }}"
    steps = steps_of(preview)
    login = next(s for s in steps if uses_of(s, "azure/login"))
    assert login["with"]["client-id"] == "${{ vars.AZURE_PREVIEW_CLIENT_ID }}"
    auth = next(s for s in steps if uses_of(s, "pulumi/auth-actions"))
    assert auth["with"]["requested-token-type"] == "urn:pulumi:token-type:access_token:team"
    assert auth["with"]["scope"] == "team:${{ vars.PULUMI_PREVIEW_TEAM }}"
    (preview_step,) = [s for s in steps if uses_of(s, "pulumi/actions")]
    assert preview_step["with"]["command"] == "preview"
    assert preview_step["with"]["comment-on-pr"] is True, "the real preview is posted on the pull request"
    assert "env" not in preview_step, "the Pulumi token comes from pulumi/auth-actions, no secret"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_secrets_and_deploy_identities_are_used_only_in_protected_environments(path: Path) -> None:
    for name, job in jobs(path).items():
        text = json.dumps(job)
        if "secrets." in text or "vars.AZURE_CLIENT_ID" in text:
            assert job.get("environment") in PROTECTED_ENVIRONMENTS, f"{path.name} {name}: outside an environment"


@pytest.mark.parametrize("path", workflow_files(), ids=lambda p: p.name)
def test_every_tool_gets_fresh_credentials(path: Path) -> None:
    """Finding 2: nothing relies on the az CLI's federated login lasting (azure-cli#28708, azure/login#372)."""
    for name, job in jobs(path).items():
        env = job.get("env", {})
        assert env.get("DATABRICKS_AUTH_TYPE") in (None, "github-oidc-azure"), f"{path.name} {name}"
        steps = steps_of(job)
        for i, step in enumerate(steps):
            assert step.get("env", {}).get("DATABRICKS_AUTH_TYPE") in (None, "github-oidc-azure")
            if "MLFLOW_TRACKING_URI" in json.dumps(step) + json.dumps(env) and "databricks" in json.dumps(step):
                assert env.get("DATABRICKS_AUTH_TYPE") == "github-oidc-azure", f"{path.name} {name}"
                assert {"ARM_CLIENT_ID", "ARM_TENANT_ID", "DATABRICKS_HOST"} <= set(env), f"{path.name} {name}"
            run = step.get("run", "")
            if re.search(r"(^|\s)az\s", run) or "release.publish_listener" in run:
                assert uses_of(steps[i - 1], "azure/login"), f"{path.name} {name}: log in right before `{run}`"
            if (
                uses_of(step, "pulumi/actions")
                and step["with"]["command"] == "up"
                and "az acr login" in json.dumps(steps)
            ):
                assert "az acr login" in steps[i - 1].get("run", ""), "registry login right before the build"


def test_deploy_is_staging_then_prod_behind_reviewers_one_at_a_time() -> None:
    workflow = load(WORKFLOWS / "deploy.yml")
    assert workflow["on"]["push"] == {"branches": ["main"]}
    staging, prod = workflow["jobs"]["staging"], workflow["jobs"]["prod"]
    assert prod["environment"] == "production"
    assert staging["environment"] == "staging"
    for stack, job in (("staging", staging), ("prod", prod)):
        assert job["concurrency"] == {"group": f"deploy-{stack}", "cancel-in-progress": False}
        steps = job["steps"]
        up = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/actions"))
        assert steps[up]["with"]["command"] == "up"
        assert steps[up]["with"]["stack-name"] == "${{ steps.stack.outputs.name }}"
        assert f"release.backend --stack {stack}" in next(s["run"] for s in steps if s.get("id") == "stack")
        records = [i for i, s in enumerate(steps) if f"release.record_deployment --stack {stack}" in s.get("run", "")]
        assert records == [len(steps) - 1], "recorded last: a record that fails or skips stops nothing"
        assert records[0] > up
    propose = workflow["jobs"]["propose-prod"]
    assert propose["uses"] == "./.github/workflows/promote-model.yml"
    assert propose["needs"] == "staging"
    assert propose["with"]["built-image"] == "${{ needs.staging.outputs.model-image }}"
    assert staging["outputs"]["model-image"] == "${{ steps.up.outputs.modelImage }}"


def test_prod_deploys_without_staging_when_the_push_changes_only_prod() -> None:
    """A prod rollback (a prod-only push) skips staging and deploys prod, whatever staging's state."""
    workflow = load(WORKFLOWS / "deploy.yml")
    plan, staging, prod = (workflow["jobs"][name] for name in ("plan", "staging", "prod"))
    assert "release.deploy_plan" in plan["steps"][-1]["run"]
    assert staging["if"] == "needs.plan.outputs.prod-only != 'true'"
    assert set(prod["needs"]) == {"plan", "staging"}
    assert "!cancelled()" in prod["if"], "a skipped staging must not skip prod"
    assert "needs.staging.result == 'success' || needs.plan.outputs.prod-only == 'true'" in prod["if"]


def test_the_listener_is_published_after_every_staging_up() -> None:
    steps = load(WORKFLOWS / "deploy.yml")["jobs"]["staging"]["steps"]
    up = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/actions"))
    (publish,) = [i for i, s in enumerate(steps) if "release.publish_listener" in s.get("run", "")]
    assert publish > up
    assert "if" not in steps[publish], "runs after every successful up, a brand-new app included"
    assert steps[publish]["env"] == {
        "RESOURCE_GROUP": "${{ steps.up.outputs.resourceGroupName }}",
        "APP_NAME": "${{ steps.up.outputs.listenerAppName }}",
    }


def concurrency_groups(path: Path) -> dict[str, str]:
    return {name: job["concurrency"]["group"] for name, job in jobs(path).items() if "concurrency" in job}


def test_promotions_and_rollbacks_never_cancel_each_other() -> None:
    """GitHub cancels the pending run of a group when a newer one queues. So a promotion's group holds runs of
    one proposal only (its stack and version): what a newer run cancels is a duplicate of itself. Rollbacks of a
    stack share one group, in turn (two write the same branch when they return to the same version), and
    `queue: max` keeps every pending one."""
    promote = concurrency_groups(WORKFLOWS / "promote-model.yml")
    rollback = concurrency_groups(WORKFLOWS / "rollback.yml")
    assert promote == {
        "from-registry": (
            "promote-staging-${{ github.event.client_payload.model }}-v${{ github.event.client_payload.version }}"
        ),
        "stack-to-stack": (
            "promote-${{ inputs.to-stack }}-"
            "${{ inputs.built-image != '' && fromJSON(inputs.built-image).version || github.run_id }}"
        ),
    }
    assert rollback == {"propose": "rollback-${{ inputs.stack }}"}
    assert jobs(WORKFLOWS / "rollback.yml")["propose"]["concurrency"]["queue"] == "max"
    for path in (WORKFLOWS / "promote-model.yml", WORKFLOWS / "rollback.yml"):
        for job in jobs(path).values():
            assert job["concurrency"]["cancel-in-progress"] is False


def test_the_comment_workflow_never_runs_pull_request_code() -> None:
    workflow = load(WORKFLOWS / "offline-diff-comment.yml")
    pr_workflow = load(WORKFLOWS / "pull-request.yml")
    assert workflow["on"]["workflow_run"]["workflows"] == [pr_workflow["name"]]
    (job,) = workflow["jobs"].values()
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert set(checkout.get("with", {})) <= {"persist-credentials"}, "checkout of the default branch only"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert not any("bootstrap" in r or "pip install -r" in r for r in runs), "installs nothing the PR could change"
    assert "--head-sha" in runs[-1]


def test_promotion_listens_to_the_event_the_listener_sends() -> None:
    from stacks.files import load_stack_config

    workflow = load(WORKFLOWS / "promote-model.yml")
    event_type = load_stack_config(ROOT, "staging").settings().release
    assert event_type is not None
    assert workflow["on"]["repository_dispatch"]["types"] == [event_type.dispatch.event_type]


def test_pulumi_cli_matches_the_sdk_pin() -> None:
    sdk = re.search(r"^pulumi==([^\s\\]+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    assert sdk is not None
    for path in workflow_files():
        pinned = load(path).get("env", {}).get("PULUMI_VERSION")
        uses_pulumi = any(u.startswith("pulumi/actions@") for u in all_uses(path))
        if uses_pulumi:
            assert pinned == sdk.group(1), f"{path.name}: PULUMI_VERSION {pinned} != SDK {sdk.group(1)}"


def test_the_listener_is_published_before_the_deployment_is_recorded() -> None:
    """Day zero: nothing pinned, nothing to record; the listener must be published all the same."""
    steps = load(WORKFLOWS / "deploy.yml")["jobs"]["staging"]["steps"]
    index = {name: next(i for i, s in enumerate(steps) if name in s.get("run", "")) for name in ("publish", "record")}
    assert index["publish"] < index["record"]


def test_no_deploy_job_uses_a_long_lived_pulumi_token() -> None:
    """The deploy jobs exchange their OIDC token for a Pulumi token that lives as long as the job."""
    for name in ("staging", "prod"):
        job = jobs(WORKFLOWS / "deploy.yml")[name]
        assert "PULUMI_ACCESS_TOKEN" not in json.dumps(job), name
        steps = steps_of(job)
        auth = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/auth-actions"))
        up = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/actions"))
        assert auth < up
        assert int(steps[auth]["with"]["token-expiration"]) <= 2 * 3600
        assert job["permissions"]["id-token"] == "write"


def test_the_release_app_token_is_scoped_to_what_a_proposal_needs() -> None:
    for path in (WORKFLOWS / "promote-model.yml", WORKFLOWS / "rollback.yml"):
        for name, job in jobs(path).items():
            for step in steps_of(job):
                if uses_of(step, "actions/create-github-app-token"):
                    granted = {k: v for k, v in step["with"].items() if k.startswith("permission-")}
                    assert granted == {"permission-contents": "write", "permission-pull-requests": "write"}, name
                    assert "skip-token-revoke" not in step["with"], "revoked when the job ends"


def test_staging_keeps_and_attaches_the_sbom_of_the_image_it_built() -> None:
    workflow = load(WORKFLOWS / "deploy.yml")
    steps = workflow["jobs"]["staging"]["steps"]
    up = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/actions"))
    built = "steps.up.outputs.modelImageSbomDir != ''"  # no output on day zero or for a pinned digest
    (keep,) = [i for i, s in enumerate(steps) if uses_of(s, "actions/upload-artifact")]
    (setup,) = [i for i, s in enumerate(steps) if uses_of(s, "oras-project/setup-oras")]
    (attach,) = [i for i, s in enumerate(steps) if "oras attach" in s.get("run", "")]
    assert up < keep < setup < attach
    for i in (keep, setup, attach):
        assert steps[i]["if"] == built, steps[i].get("name")
    assert steps[keep]["uses"] == "actions/upload-artifact@bbbca2ddaa5d8feaa63e36b76fdaad77386f024f"
    assert steps[keep]["with"]["path"] == "${{ steps.up.outputs.modelImageSbomDir }}/model-image.cdx.json"
    assert steps[keep]["with"]["if-no-files-found"] == "error"
    assert re.fullmatch(r"\d+\.\d+\.\d+", str(steps[setup]["with"]["version"])), "a pinned ORAS release"
    run = steps[attach]["run"]
    assert steps[attach]["working-directory"] == "${{ steps.up.outputs.modelImageSbomDir }}"
    assert steps[attach]["env"]["MODEL_IMAGE"] == "${{ steps.up.outputs.modelImage }}"
    assert steps[attach]["env"]["SBOM_TYPE"] == "application/vnd.cyclonedx+json"
    assert 'oras attach --artifact-type "$SBOM_TYPE" "$subject" "model-image.cdx.json:$SBOM_TYPE"' in run
    assert 'oras discover --format json --artifact-type "$SBOM_TYPE" "$subject"' in run
    # Attached to the digest the deployments run (`<registry>/<repository>@<digest>`), not to a tag.
    expr = re.search(r"jq -r '([^']+)'", run)
    assert expr is not None
    image = {"ref": "acr.azurecr.io/models/wine:3-0123abcd@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64}
    proc = subprocess.run(
        ["jq", "-r", expr.group(1)], input=json.dumps(image), capture_output=True, text=True, check=False
    )
    assert proc.stdout.strip() == "acr.azurecr.io/models/wine@sha256:" + "a" * 64, proc.stderr
    # Prod builds nothing and attaches nothing: it runs the digest staging built (and attached to).
    prod = json.dumps(workflow["jobs"]["prod"])
    assert "oras" not in prod
    assert "upload-artifact" not in prod


@pytest.mark.parametrize(
    ("discover", "attached", "fails"),
    [
        ("echo '{\"referrers\": []}'", True, False),
        ('echo \'{"referrers": [{"digest": "sha256:1"}]}\'', False, False),
        ("exit 1", False, True),
    ],
    ids=["none yet", "already attached", "discover fails"],
)
def test_the_sbom_is_attached_once_and_a_failed_lookup_fails_the_step(
    tmp_path: Path, discover: str, attached: bool, fails: bool
) -> None:
    # GitHub runs a `run:` step as `bash -e {0}` (no pipefail): a failed `oras discover` must not read as "none yet".
    steps = jobs(WORKFLOWS / "deploy.yml")["staging"]["steps"]
    step = next(s for s in steps if "oras attach" in s.get("run", ""))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "oras.log"
    oras = bin_dir / "oras"
    oras.write_text(f'#!/bin/sh\necho "$1" >> {log}\nif [ "$1" = discover ]; then {discover}; fi\n')
    oras.chmod(0o755)
    image = {"ref": "acr.azurecr.io/models/wine:3-0123abcd@sha256:" + "a" * 64, "digest": "sha256:" + "a" * 64}
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MODEL_IMAGE": json.dumps(image)}
    env["SBOM_TYPE"] = step["env"]["SBOM_TYPE"]
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False)
    assert (proc.returncode != 0) == fails, proc.stderr
    assert ("attach" in log.read_text().split()) == attached
    keep = next(s for s in steps if s.get("name") == "Keep the model image's SBOM")
    assert keep["with"]["overwrite"] is True


def test_both_deploys_wait_for_the_canarys_outcome_before_recording_it() -> None:
    """`pulumi up` can end on the previous release's Healthy (docs/decisions/0001-canary-release.md): the job waits
    for the release itself, with the kubeconfig pulumi/actions masks and a token from the job's own OIDC token,
    after everything that does not depend on the model's release (staging's SBOM and listener publish) and before
    the registry is told the version runs."""
    for name in ("staging", "prod"):
        job = jobs(WORKFLOWS / "deploy.yml")[name]
        steps = steps_of(job)
        up = next(i for i, s in enumerate(steps) if uses_of(s, "pulumi/actions"))
        (wait_at,) = [i for i, s in enumerate(steps) if s.get("id") == "rollout"]
        record = next(i for i, s in enumerate(steps) if "release.record_deployment" in str(s.get("run", "")))
        assert up < wait_at < record, name
        if name == "staging":
            publish = next(i for i, s in enumerate(steps) if "release.publish_listener" in str(s.get("run", "")))
            assert publish < wait_at, "an aborted canary does not hold back the listener's code"
        wait = steps[wait_at]
        assert wait["if"] == (
            "${{ !cancelled() && steps.up.outcome == 'success' && steps.up.outputs.modelRollout != '' }}"
        ), "day zero: no Rollout, nothing to wait for; an unrelated failed step does not skip the wait"
        assert wait["env"] == {
            "MODEL_ROLLOUT": "${{ steps.up.outputs.modelRollout }}",
            "AKS_KUBECONFIG": "${{ steps.up.outputs.kubeconfig }}",
        }
        run = wait["run"]
        assert run.startswith(".venv/bin/python -m release.await_rollout ")
        assert '--rollout "$MODEL_ROLLOUT"' in run
        assert "--kubeconfig-env AKS_KUBECONFIG" in run
        assert "--auth github-oidc" in run
        assert {"ARM_TENANT_ID", "ARM_CLIENT_ID"} <= set(job["env"])
        assert job["permissions"]["id-token"] == "write"


def _canary_seconds(stack: str) -> int:
    """How long the stack file's canary holds its steps (`serving.canary`: steps x pause)."""
    from program import stack_args
    from stacks.files import load_stack_config

    release = stack_args.canary_release(load_stack_config(ROOT, stack).settings().serving.canary)
    return len(release.steps) * release.pause_seconds


@pytest.mark.parametrize(("job_name", "stack"), [("staging", "staging"), ("prod", "prod")])
def test_the_wait_outlasts_the_stacks_canary(job_name: str, stack: str) -> None:
    from components.model_canary import SMOKE_DEADLINE_SECONDS

    job = jobs(WORKFLOWS / "deploy.yml")[job_name]
    wait = next(s for s in steps_of(job) if s.get("id") == "rollout")
    found = re.search(r"--timeout (\d+)\b", wait["run"])
    assert found is not None, "the wait names its own timeout"
    waited = int(found.group(1))
    assert waited >= SMOKE_DEADLINE_SECONDS + _canary_seconds(stack), f"{job_name}: the wait ends before the canary"
    # The step's own bound leaves the command time to write its report; the job's leaves the step its bound.
    assert int(wait["timeout-minutes"]) * 60 > waited
    assert int(job["timeout-minutes"]) > int(wait["timeout-minutes"])


def test_staging_hands_the_canarys_outcome_to_later_jobs() -> None:
    staging = jobs(WORKFLOWS / "deploy.yml")["staging"]
    for output in ("outcome", "failed-check", "failed-value", "reason", "canary-hash"):
        assert staging["outputs"][f"rollout-{output}"] == f"${{{{ steps.rollout.outputs.{output} }}}}"


def test_an_aborted_canary_is_recorded_and_its_revert_proposed_in_the_same_run() -> None:
    """After the wait exits 3 the job is failed; one step still runs: it records the abort and chooses the revert
    (release/canary_aborted.py), and a job of the same run hands that to rollback.yml: no token that could start
    other workflows is needed, and the revert shows in the run that failed."""
    workflow = jobs(WORKFLOWS / "deploy.yml")
    rollback = load(WORKFLOWS / "rollback.yml")
    called = rollback["on"]["workflow_call"]["inputs"]
    for name in ("staging", "prod"):
        job = workflow[name]
        steps = steps_of(job)
        (wait_at,) = [i for i, s in enumerate(steps) if s.get("id") == "rollout"]
        abort = steps[wait_at + 1]
        assert abort["id"] == "aborted", name
        assert abort["if"] == "failure() && steps.rollout.outputs.outcome == 'aborted'"
        assert abort["env"]["REASON"] == "${{ steps.rollout.outputs.reason }}"
        assert abort["env"]["CANARY_HASH"] == "${{ steps.rollout.outputs.canary-hash }}"
        assert abort["run"].startswith(f".venv/bin/python -m release.canary_aborted --stack {name} ")
        assert '"--reason=$REASON"' in abort["run"], "through the environment, and never read as an option"
        assert "actions" not in job["permissions"]
        for output in ("revert-to", "revert-from", "revert-reason"):
            assert job["outputs"][output] == f"${{{{ steps.aborted.outputs.{output} }}}}"
        record = next(s for s in steps if "release.record_deployment" in str(s.get("run", "")))
        assert record["if"] == (
            "${{ !cancelled() && steps.up.outcome == 'success' && "
            "(steps.up.outputs.modelRollout == '' || steps.rollout.outputs.outcome == 'promoted') }}"
        ), "recorded once promoted (or day zero), whatever else failed"
        for role in ("stable", "canary"):
            for part in ("model", "version"):
                name_ = f"{role.upper()}_{part.upper()}"
                assert abort["env"][name_] == f"${{{{ steps.rollout.outputs.{role}-{part} }}}}"
                assert f'"--{role}-{part}=${name_}"' in abort["run"]

        revert = workflow[f"revert-{name}"]
        assert revert["needs"] == name
        assert revert["if"] == f"${{{{ failure() && needs.{name}.outputs.revert-to != '' }}}}"
        assert revert["uses"] == "./.github/workflows/rollback.yml"
        assert revert["with"] == {
            "stack": name,
            "version": f"${{{{ needs.{name}.outputs.revert-to }}}}",
            "from-version": f"${{{{ needs.{name}.outputs.revert-from }}}}",
            "reason": f"${{{{ needs.{name}.outputs.revert-reason }}}}",
        }
        assert set(revert["with"]) <= set(called)
        assert revert["secrets"] == "inherit"


def test_every_job_that_runs_the_program_bootstraps_its_venv_first() -> None:
    # The program imports the deployables' contracts through the .pth bootstrap.sh writes into .venv; the Pulumi
    # language host uses .venv as found (pulumi/pulumi sdk/python/toolchain/pip.go, EnsureVenv) and pulumi/actions
    # runs no `pulumi install` (pulumi/actions src/run.ts).
    seen = 0
    for path in workflow_files():
        for name, job in jobs(path).items():
            steps = steps_of(job)
            pulumi = [i for i, step in enumerate(steps) if uses_of(step, "pulumi/actions")]
            bootstrap = [i for i, step in enumerate(steps) if "./scripts/bootstrap.sh" in str(step.get("run", ""))]
            if pulumi:
                seen += 1
                assert bootstrap, f"{path.name}:{name} runs pulumi/actions without ./scripts/bootstrap.sh"
                assert bootstrap[0] < pulumi[0], f"{path.name}:{name} bootstraps after pulumi/actions"
    assert seen == 3  # deploy staging, deploy prod, the pull-request preview
