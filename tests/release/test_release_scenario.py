"""The whole release, as the workflows run it, in one scenario.

promote v1 -> deploy staging -> propose prod -> deploy prod -> promote v2 and v3 quickly -> roll prod back ->
promote v4, driving the workflows' Python entry points (`release.promote`, `release.rollback`,
`release.record_deployment`, `release.deploy_plan`) in-process against a local git remote, the GitHub stand-in
and a real `mlflow server`. At every step: every check a pull request runs (both stacks' offline preview, the
offline diff) is green, no promotion or rollback is dropped or proposed again, and prod runs a digest staging built.

A "deploy" here is what `pulumi up` would be given: the stack's offline preview on the merged `main` (its
`modelImage` output is the image the deploy serves) followed by `release.record_deployment`, as deploy.yml does.

Speed: the program runs in-process (no interpreter start per run), and a run is reused when the same stack file
contents and the same StackReference outputs come back (the program code never changes within the scenario, so
the same inputs give the same result); the offline diff runs `python -m stacks diff --base` in-process, its base
preview also in-process. Everything else is the product's code as the workflows call it.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from offline import cli as stacks_cli
from offline import diff as stacks_diff
from offline import preview as stacks_preview
from offline.harness import ProgramOptions, ProgramRun, run_program
from release import promote as promote_cmd
from release import proposal, record_deployment, rollback
from release.deploy_plan import changed_files, prod_only
from release.proposal import OfflineDiff
from stacks.files import load_stack_config
from stacks.pin import pin
from stacks.settings import pinned_model
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import IDENTITY, ProjectRepo

MODEL = "mlops.models.wine_quality"
ALIAS = "champion"


def _memoized_run_program(real: Any) -> Any:
    cache: dict[str, ProgramRun] = {}

    def run(program: Path, config: Any, *, project: str, stack: str, options: ProgramOptions | None = None) -> Any:
        outputs = options.stack_outputs if options is not None else {}
        key = json.dumps([stack, project, config, outputs], sort_keys=True, default=str)
        if key not in cache:
            cache[key] = real(program, config, project=project, stack=stack, options=options)
        return cache[key]

    return run


def _preview_at_ref_in_process(project_dir: Path, ref: str, stack: str) -> dict[str, Any]:
    """offline.diff.preview_at_ref without its subprocess: the ref's tree, previewed in this process."""
    archive = subprocess.run(
        ["git", "-C", str(project_dir), "archive", "--format=tar", ref], capture_output=True, check=False
    )
    assert archive.returncode == 0, archive.stderr
    with tempfile.TemporaryDirectory(prefix="stacks-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        return preview(Path(tmp), stack)


def preview(project_dir: Path, stack: str) -> dict[str, Any]:
    """`python -m stacks preview <stack> --json`, in-process; raises what the program raises."""
    with contextlib.redirect_stdout(io.StringIO()):
        return stacks_preview.preview_document(stacks_preview.run_stack(project_dir, stack))


def _offline_diff_in_process(repo_dir: Path, base: str, stack: str) -> OfflineDiff:
    """release.proposal.offline_diff without its subprocess: `python -m stacks diff --base ... --markdown`."""
    out = io.StringIO()
    path = list(sys.path)
    try:
        with contextlib.redirect_stdout(out):
            code = stacks_cli.main(["--project-dir", str(repo_dir), "diff", "--base", base, stack, "--markdown"])
    finally:
        sys.path[:] = path
    text = out.getvalue().strip()
    return OfflineDiff(code == 0 and bool(text), text or f"exit {code}")


@dataclass
class Release:
    """The repository, GitHub and the registry, and what the workflows have done so far."""

    repo: ProjectRepo
    github: FakeGitHub
    registry: str
    monkeypatch: pytest.MonkeyPatch
    built: dict[str, int] = field(default_factory=dict)  # digest -> version, every image staging built
    running: dict[str, tuple[int, str]] = field(default_factory=dict)  # stack -> (version, digest)
    diffs: list[OfflineDiff] = field(default_factory=list)

    def client(self) -> Any:
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.registry, registry_uri=self.registry)

    # --- git, as a fresh checkout of main and a merge button ----------------------------------------------------

    def checkout_main(self) -> str:
        self.repo.git("fetch", "--quiet", "origin")
        self.repo.git("checkout", "--quiet", "main")
        self.repo.git("reset", "--quiet", "--hard", "origin/main")
        return self.repo.git("rev-parse", "HEAD")

    def push_to_main(self, message: str) -> str:
        self.repo.git("add", "--update")
        self.repo.git(*IDENTITY, "commit", "--quiet", "-m", message)
        self.repo.git("push", "--quiet", "origin", "main")
        return self.repo.git("rev-parse", "HEAD")

    def merge(self, number: int) -> tuple[str, str]:
        """Merges the pull request as GitHub's button does (a merge commit); returns (before, after) of main."""
        pull = self.github.pulls[number]
        assert pull["state"] == "open", f"#{number} is {pull['state']}"
        before = self.checkout_main()
        self.repo.git("fetch", "--quiet", "origin", pull["head"]["ref"])
        message = f"Merge pull request #{number} from {self.github.repository.split('/')[0]}/{pull['head']['ref']}"
        self.repo.git(*IDENTITY, "merge", "--quiet", "--no-ff", "-m", message, "FETCH_HEAD")
        self.repo.git("push", "--quiet", "origin", "main")
        self.github.merge(number)
        return before, self.repo.git("rev-parse", "HEAD")

    # --- the checks of a pull request ---------------------------------------------------------------------------

    def checks_pass(self, ref: str) -> dict[str, dict[str, Any]]:
        """Both stacks' offline preview at `ref` (the pull-request workflow's checks); returns the documents."""
        self.repo.git("checkout", "--quiet", ref)
        try:
            return {stack: preview(self.repo.work, stack) for stack in ("staging", "prod")}
        finally:
            self.repo.git("checkout", "--quiet", "main")

    def pull_checks_pass(self, number: int) -> None:
        pull = self.github.pulls[number]
        self.repo.git("fetch", "--quiet", "origin", pull["head"]["ref"])
        self.checks_pass("FETCH_HEAD")
        assert "**The offline diff" not in pull["body"], pull["body"]

    # --- the workflows --------------------------------------------------------------------------------------------

    def registry_promotes(self, version: int) -> str:
        self.client().set_registered_model_alias(MODEL, ALIAS, str(version))
        return json.dumps(
            {"model": MODEL, "version": str(version), "alias": ALIAS, "target_stack": "staging"}
            | {"delivery_id": f"delivery-v{version}-{len(self.github.requests)}", "source": "mlflow"}
        )

    def promote_workflow(self, payload: str) -> int:
        self.checkout_main()
        argv = ["--payload", payload, "--repo-dir", str(self.repo.work), "--base", "main"]
        return promote_cmd.main([*argv, "--tracking-uri", self.registry])

    def deploy_workflow(self, before: str, after: str) -> None:
        """deploy.yml for a push: staging (unless the push is prod-only), then propose prod, then prod."""
        self.checkout_main()
        docs = self.checks_pass(after)
        skip_staging = prod_only(changed_files(before, after, self.repo.work))
        if not skip_staging:
            image = docs["staging"]["outputs"]["modelImage"]
            self.built[image["digest"]] = int(image["version"])
            self.record("staging", image)
            assert self.propose_prod(json.dumps(image)) == 0
        self.deploy_prod(docs["prod"])

    def deploy_prod(self, doc: dict[str, Any]) -> None:
        image = doc["outputs"]["modelImage"]
        assert image["digest"] in self.built, f"prod would run {image['digest']}, an image staging never built"
        assert self.built[image["digest"]] == int(image["version"])
        self.record("prod", image)

    def record(self, stack: str, image: dict[str, Any]) -> None:
        self.monkeypatch.setenv("MODEL_IMAGE", json.dumps(image))
        argv = ["--stack", stack, "--outputs-env", "MODEL_IMAGE", "--project-dir", str(self.repo.work)]
        assert record_deployment.main([*argv, "--tracking-uri", self.registry, "--run-url", "https://ci.test/1"]) == 0
        self.running[stack] = (int(image["version"]), image["digest"])

    def propose_prod(self, built_image: str) -> int:
        argv = ["--from-stack", "staging", "--to-stack", "prod", "--repo-dir", str(self.repo.work), "--base", "main"]
        return promote_cmd.main([*argv, "--built-image", built_image])

    def rollback_workflow(self, stack: str, version: int) -> int:
        self.checkout_main()
        argv = ["--stack", stack, "--to-version", str(version), "--repo-dir", str(self.repo.work), "--base", "main"]
        return rollback.main([*argv, "--tracking-uri", self.registry])

    # --- what the reviewers see ----------------------------------------------------------------------------------

    def open_heads(self) -> list[str]:
        return sorted(p["head"]["ref"] for p in self.github.open_pulls())

    def pull(self, head: str) -> int:
        (number,) = [n for n, p in self.github.pulls.items() if p["head"]["ref"] == head and p["state"] == "open"]
        return number

    def prod_pin(self) -> tuple[int, str | None]:
        pinned = pinned_model(load_stack_config(self.repo.work, "prod").settings())
        return pinned.version, pinned.image_digest


@pytest.fixture
def release(
    project_repo: ProjectRepo, github: FakeGitHub, live_registry: str, monkeypatch: pytest.MonkeyPatch
) -> Release:
    monkeypatch.setattr(stacks_preview, "run_program", _memoized_run_program(run_program))
    monkeypatch.setattr(stacks_diff, "preview_at_ref", _preview_at_ref_in_process)
    diffs: list[OfflineDiff] = []

    def offline_diff(repo_dir: Path, base: str, stack: str) -> OfflineDiff:
        result = _offline_diff_in_process(repo_dir, base, stack)
        diffs.append(result)
        return result

    monkeypatch.setattr(proposal, "offline_diff", offline_diff)
    monkeypatch.setenv("GITHUB_REF_NAME", "main")
    scenario = Release(project_repo, github, live_registry, monkeypatch, diffs=diffs)
    # The registry starts clean of what an earlier test may have set on the shared server.
    for version in ("1", "2", "3", "4"):
        for key in list(scenario.client().get_model_version(MODEL, version).tags):
            scenario.client().delete_model_version_tag(MODEL, version, key)
    return scenario


@pytest.mark.integration
@pytest.mark.slow
def test_the_whole_release_sequence(release: Release, capsys: pytest.CaptureFixture[str]) -> None:
    # Day zero: staging pins v1; prod pins v1 by the digest staging builds for it. The shipped Pulumi.prod.yaml may
    # lack `imageDigest` in this branch, so the scenario fixes up its own copy (a non-owner stack pins a digest).
    release.checkout_main()
    v1_image = preview(release.repo.work, "staging")["outputs"]["modelImage"]
    if release.prod_pin() != (1, v1_image["digest"]):
        pin(release.repo.work, "prod", MODEL, 1, v1_image["digest"])
        release.push_to_main("Prod pins the digest staging builds for mlops.models.wine_quality v1")

    # 1. promote v1: staging already pins it, nothing to propose.
    assert release.promote_workflow(release.registry_promotes(1)) == 0
    assert release.open_heads() == []

    # 2. deploy staging (first deploy) -> propose prod (already pinned) -> deploy prod.
    first = release.checkout_main()
    release.deploy_workflow("", first)
    assert release.running == {"staging": (1, v1_image["digest"]), "prod": (1, v1_image["digest"])}
    assert release.open_heads() == [], "prod already pins what staging built"
    tags = release.client().get_model_version(MODEL, "1").tags
    assert tags["deployed_staging_digest"] == tags["deployed_prod_digest"] == v1_image["digest"]

    # 3. promote v2, then v3 quickly: v3's run closes v2's pull request as superseded; a late run of v2's dispatch
    #    (queued, never cancelled) is checked with the registry and ignored.
    v2_payload = release.registry_promotes(2)
    assert release.promote_workflow(v2_payload) == 0
    release.pull_checks_pass(release.pull("promote/staging/mlops.models.wine_quality-v2"))
    assert release.promote_workflow(release.registry_promotes(3)) == 0
    assert release.open_heads() == ["promote/staging/mlops.models.wine_quality-v3"]
    v2_pull = next(p for p in release.github.pulls.values() if p["head"]["ref"].endswith("-v2"))
    assert any(c["body"].startswith("Superseded by #") for c in release.github.comments.values())
    assert release.promote_workflow(v2_payload) == 0
    assert "ignored: it reports mlops.models.wine_quality v2 promoted, but alias 'champion'" in capsys.readouterr().out
    assert v2_pull["state"] == "closed"
    assert release.open_heads() == ["promote/staging/mlops.models.wine_quality-v3"]

    # 4. merge v3 -> deploy staging v3 -> prod is proposed v3 by the digest staging built.
    v3_staging = release.pull("promote/staging/mlops.models.wine_quality-v3")
    release.pull_checks_pass(v3_staging)
    release.deploy_workflow(*release.merge(v3_staging))
    assert release.running["staging"][0] == 3
    assert release.running["prod"][0] == 1, "prod waits for its own pull request"
    v3_digest = release.running["staging"][1]
    assert release.open_heads() == ["promote/prod/mlops.models.wine_quality-v3"]
    v3_prod = release.pull("promote/prod/mlops.models.wine_quality-v3")
    release.pull_checks_pass(v3_prod)
    assert v3_digest in release.github.pulls[v3_prod]["body"], "the reviewer sees the exact digest"

    # 5. deploy prod v3 (a prod-only push: staging is not deployed again).
    release.deploy_workflow(*release.merge(v3_prod))
    assert release.running == {"staging": (3, v3_digest), "prod": (3, v3_digest)}

    # 6. roll prod back to v1: the digest comes from the registry; merging deploys prod alone.
    assert release.rollback_workflow("prod", 1) == 0
    rollback_pull = release.pull("rollback/prod/mlops.models.wine_quality-v1")
    release.pull_checks_pass(rollback_pull)
    before, after = release.merge(rollback_pull)
    assert prod_only(changed_files(before, after, release.repo.work)), "a prod rollback does not wait on staging"
    release.deploy_workflow(before, after)
    assert release.running == {"staging": (3, v3_digest), "prod": (1, v1_image["digest"])}
    assert release.prod_pin() == (1, v1_image["digest"])

    # 7. the next push deploys staging again and proposes prod: v3 is not proposed again (it was rolled back).
    before = release.checkout_main()
    (release.repo.work / "NOTES.md").write_text("an unrelated change\n")
    release.repo.git("add", "NOTES.md")
    after = release.push_to_main("An unrelated change")
    release.deploy_workflow(before, after)
    assert "prod was rolled back from mlops.models.wine_quality v3" in capsys.readouterr().out
    assert release.open_heads() == []
    assert release.running["prod"] == (1, v1_image["digest"])

    # 8. promote v4: proposed, merged, deployed to staging, proposed for prod by digest, deployed to prod.
    assert release.promote_workflow(release.registry_promotes(4)) == 0
    v4_staging = release.pull("promote/staging/mlops.models.wine_quality-v4")
    release.pull_checks_pass(v4_staging)
    release.deploy_workflow(*release.merge(v4_staging))
    v4_digest = release.running["staging"][1]
    assert release.running["staging"][0] == 4
    v4_prod = release.pull("promote/prod/mlops.models.wine_quality-v4")
    release.pull_checks_pass(v4_prod)
    release.deploy_workflow(*release.merge(v4_prod))
    assert release.running == {"staging": (4, v4_digest), "prod": (4, v4_digest)}
    assert release.open_heads() == []

    # Every pull request's offline diff was green; nothing dropped, nothing re-proposed.
    assert release.diffs
    assert all(d.ok for d in release.diffs), [d.markdown for d in release.diffs if not d.ok]
    heads = [p["head"]["ref"] for p in release.github.pulls.values()]
    assert sorted(heads) == sorted(
        [
            "promote/staging/mlops.models.wine_quality-v2",
            "promote/staging/mlops.models.wine_quality-v3",
            "promote/prod/mlops.models.wine_quality-v3",
            "rollback/prod/mlops.models.wine_quality-v1",
            "promote/staging/mlops.models.wine_quality-v4",
            "promote/prod/mlops.models.wine_quality-v4",
        ]
    ), "each proposal exactly once"
    assert len(set(release.built)) == 3, "staging built v1, v3 and v4 once each"
