"""`python -m stacks preview` and `diff`, run as users and CI run them, on the real stack files.

The command line runs in this process (`tests.offline_cli`), except in the end-to-end tests at the end, which run
it as a command and check what a user sees on stderr.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from offline.preview import StackRun
from tests.conftest import ROOT
from tests.offline_cli import stacks_cli
from tests.release.gitrepo import PROJECT_DIRS

TREE = ("__main__.py", "Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml")
PACKAGES = PROJECT_DIRS


@pytest.fixture(scope="module")
def staging_json() -> dict[str, Any]:
    proc = stacks_cli("preview", "staging", "--json")
    assert proc.returncode == 0, proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def test_preview_json_lists_every_resource_the_program_declares(
    staging_json: dict[str, Any], staging: StackRun
) -> None:
    assert staging_json["stack"] == "staging"
    declared = sorted((r.type, r.name) for r in staging.run.resources)
    listed = sorted((r["type"], r["name"]) for r in staging_json["resources"])
    assert listed == declared
    for resource in staging_json["resources"]:
        assert set(resource) >= {"type", "name", "parent", "inputs", "protect", "secret_inputs", "provider"}


def test_preview_json_masks_every_secret_input(staging_json: dict[str, Any]) -> None:
    masked = [r for r in staging_json["resources"] if r["secret_inputs"]]
    assert masked, "the program has secret inputs (webhook secret, build token, ...)"
    for resource in masked:
        for key in resource["secret_inputs"]:
            assert resource["inputs"][key] == "[secret]"
    assert staging_json["outputs"]["kubeconfig"] == "[secret]"


def test_preview_json_is_stable_between_runs(staging_json: dict[str, Any]) -> None:
    again = stacks_cli("preview", "staging", "--json")
    assert json.loads(again.stdout) == staging_json


def test_preview_tree_nests_components_and_shows_secrets_masked() -> None:
    proc = stacks_cli("preview", "prod")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "mlops:platform:AksCluster  cluster" in text
    assert "azure-native:containerservice:ManagedCluster" in text
    assert "kubeconfig: [secret]" in text


def test_diff_staging_prod_shows_only_what_differs() -> None:
    proc = stacks_cli("diff", "staging", "prod", "--json")
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    config_paths = {c["path"] for c in diff["config"]}
    assert {"protect", "cluster.tier", "serving.minReplicas", "shared.owner"} <= config_paths
    assert "location" not in config_paths  # both in westeurope
    for change in diff["config"] + [f for r in diff["resources"] for f in r["fields"]]:
        assert change["before"] != change["after"]
    kinds = {(r["type"], r["kind"]) for r in diff["resources"]}
    # What staging owns and prod reads: gone in prod.
    assert ("azure-native:containerregistry:Registry", "delete") in kinds
    assert ("docker-build:index:Image", "delete") in kinds
    assert ("pulumi:pulumi:StackReference", "add") in kinds
    assert diff["comparison"] is True
    assert "only in staging" in diff["summary"]


def test_diff_staging_prod_reads_as_a_comparison_with_no_line_whose_sides_read_the_same() -> None:
    proc = stacks_cli("diff", "staging", "prod")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Compare staging | prod: ")
    assert "rolls out" not in proc.stdout
    pairs = [line.split(": ", 1)[1].split("  |  ") for line in proc.stdout.splitlines() if "  |  " in line]
    assert len(pairs) > 50
    for pair in pairs:
        assert pair[0] != pair[1], pair


def make_repo(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in TREE:
        shutil.copy(ROOT / name, dest / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    for cmd in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "base"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *cmd], cwd=dest, check=True)
    return dest


def test_diff_against_base_after_a_pin_bump_is_rebuild_and_rollout_only(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    stack_file = repo / "Pulumi.staging.yaml"
    stack_file.write_text(stack_file.read_text().replace("    version: 1\n", "    version: 2\n"))
    proc = stacks_cli("--project-dir", str(repo), "diff", "--base", "HEAD", "staging", "--json")
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert [(c["path"], c["before"], c["after"]) for c in diff["config"]] == [("model.version", 1, 2)]
    changed = {(r["type"], r["name"]): r for r in diff["resources"]}
    assert changed["docker-build:index:Image", "model-image-image"]["impact"] == "image rebuilt and pushed"
    assert changed["docker-build:index:Image", "model-image-sbom"]["impact"] == "rebuilt, nothing pushed"
    canary = (
        "canary 10% -> 50% -> 100%, analysis ready, error-ratio, latency-p99, latency-vs-stable, drift, "
        "synthetic-traffic"
    )
    assert changed["kubernetes:argoproj.io/v1alpha1:Rollout", "model-rollout"]["impact"] == canary
    allowed = {
        "image rebuilt and pushed",
        "rebuilt, nothing pushed",
        canary,
        "updated, used by the next release",
    }
    assert {r["impact"] for r in diff["resources"]} <= allowed
    # Nothing is created or deleted: the smoke test is part of the release, not a resource per version.
    assert [r["name"] for r in diff["resources"] if r["kind"] in ("add", "delete")] == []


def test_diff_markdown_reads_as_a_pr_comment(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    stack_file = repo / "Pulumi.staging.yaml"
    stack_file.write_text(stack_file.read_text().replace("    version: 1\n", "    version: 2\n"))
    proc = stacks_cli("--project-dir", str(repo), "diff", "--base", "HEAD", "staging", "--markdown")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("### Offline diff for `staging`")
    assert "image rebuilt and pushed" in proc.stdout
    assert "| `model.version` | `1` | `2` |" in proc.stdout


DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def test_a_prod_pin_bump_by_digest_shows_the_old_and_new_digests_in_full(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    old = DIGEST.search((repo / "Pulumi.prod.yaml").read_text())
    assert old is not None
    new = "sha256:" + "e4" * 32
    model = ("--model", "mlops.models.wine_quality")
    pinned = stacks_cli("--project-dir", str(repo), "pin", "prod", *model, "--version", "2", "--digest", new)
    assert pinned.returncode == 0, pinned.stderr
    proc = stacks_cli("--project-dir", str(repo), "diff", "--base", "HEAD", "prod")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert f"  ~ model.imageDigest: {old.group()} → {new}" in lines
    image = [line for line in lines if ".containers[name=server].image: " in line]
    assert len(image) == 1, proc.stdout
    assert DIGEST.findall(image[0]) == [old.group(), new]


def test_an_alert_threshold_change_shows_the_expressions_changed_line(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    stack_file = repo / "Pulumi.staging.yaml"
    text = stack_file.read_text()
    assert "threshold: 0.25\n" in text
    stack_file.write_text(text.replace("threshold: 0.25\n", "threshold: 0.3\n"))
    proc = stacks_cli("--project-dir", str(repo), "diff", "--base", "HEAD", "staging")
    assert proc.returncode == 0, proc.stderr
    lines = [line.strip() for line in proc.stdout.splitlines()]
    expression = lines.index("inputs.rules[alert=ModelDataDrift].expression:")
    changed = [line for line in lines[expression:] if line.startswith(("- ", "+ "))][:2]
    assert changed == ["- ) > 0.25", "+ ) > 0.3"], proc.stdout


def test_diff_of_an_unchanged_tree_is_empty(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    proc = stacks_cli("--project-dir", str(repo), "diff", "--base", "HEAD", "prod", "--json")
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    assert diff["resources"] == []
    assert diff["config"] == []
    assert diff["summary"] == "no changes"


def test_preview_works_on_any_stack_file(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    dev = (repo / "Pulumi.staging.yaml").read_text().replace("westeurope", "northeurope")
    (repo / "Pulumi.dev.yaml").write_text(dev)
    proc = stacks_cli("--project-dir", str(repo), "preview", "dev", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["config"]["location"] == "northeurope"
    assert any(r["type"] == "docker-build:index:Image" for r in doc["resources"])


def test_unknown_stack_names_the_stacks_there_are() -> None:
    proc = stacks_cli("preview", "qa")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "Pulumi.qa.yaml: no such stack file (stacks here: prod, staging)"


def test_a_run_leaves_no_event_loop_for_the_garbage_collector_to_close() -> None:
    """Pulumi's RPC threads make loops they never close; finalized by the GC they print "Exception ignored"."""
    from offline.preview import run_stack

    before = {id(o) for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)}
    run_stack(ROOT, "staging")
    current = asyncio.get_event_loop_policy().get_event_loop()
    left_open = [
        o
        for o in gc.get_objects()
        if isinstance(o, asyncio.AbstractEventLoop) and id(o) not in before and o is not current and not o.is_closed()
    ]
    assert left_open == []


def _refused_by_the_cloud() -> None:
    import pulumi_kubernetes as k8s

    kubeconfig = "users:\n- name: u\n  user:\n    exec:\n      command: kubelogin\n"
    kubeconfig += "      args: [--login, devicecode]\n"
    k8s.Provider("device-code", kubeconfig=kubeconfig)


def _failing_in_an_apply() -> None:
    import pulumi
    import pulumi_kubernetes as k8s

    def refuse(name: str) -> str:
        raise ValueError(f"no such name: {name}")

    name = pulumi.Output.from_input("n").apply(refuse)
    k8s.core.v1.ConfigMap("first", metadata=k8s.meta.v1.ObjectMetaArgs(name=name))
    k8s.core.v1.ConfigMap("second", metadata=k8s.meta.v1.ObjectMetaArgs(name=name))


@pytest.mark.parametrize(
    ("program", "error"),
    [(_refused_by_the_cloud, "devicelogin"), (_failing_in_an_apply, "no such name")],
)
def test_a_failed_run_leaves_nothing_for_the_garbage_collector_to_report(
    program: Any, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Futures holding a failed run's error (or Pulumi's wrappers of it), reported by the collector, format a
    traceback at any allocation: on Python 3.11 that parses source inside whatever `ast.parse` set the collection
    off and breaks it with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905)."""
    from offline.harness import run_program

    caplog.set_level(logging.ERROR)
    with pytest.raises(Exception, match=error):
        run_program(program, {}, project="mlops-serving", stack="staging")
    # The next run clears Pulumi's record of the last one: what the failed run left is garbage from here on.
    run_program(lambda: None, {}, project="mlops-serving", stack="staging")
    gc.collect()
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


def test_preview_of_several_stacks_runs_staging_once_for_itself_and_for_prod(
    staging_json: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from offline import harness, preview

    ran: list[str] = []
    real = harness.run_program

    def counted(*args: Any, **kwargs: Any) -> Any:
        ran.append(kwargs["stack"])
        return real(*args, **kwargs)

    monkeypatch.setattr(preview, "run_program", counted)
    proc = stacks_cli("preview", "staging", "prod", "--json")
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert list(docs) == ["staging", "prod"]
    assert docs["staging"] == staging_json
    assert docs["prod"]["stack"] == "prod"
    assert ran == ["staging", "prod"]


def test_preview_of_several_stacks_prints_each_tree() -> None:
    proc = stacks_cli("preview", "prod", "staging")
    assert proc.returncode == 0, proc.stderr
    headers = [line for line in proc.stdout.splitlines() if line.startswith("Previewing ")]
    assert headers == [
        "Previewing mlops-serving/prod (offline, mocked cloud)",
        "Previewing mlops-serving/staging (offline, mocked cloud)",
    ]


def run_command(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m stacks <args>` as a user runs it: its own process."""
    return subprocess.run(
        [sys.executable, "-m", "stacks", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def own_environment(repo: Path) -> dict[str, str]:
    """The environment `repo` would have from its own scripts/bootstrap.sh: its root, listener/ and model_image/
    first on the path (this venv's `.pth` names this checkout's, which come after)."""
    roots = [str(repo), str(repo / "listener"), str(repo / "model_image")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(roots)}


def test_project_dir_gives_the_stack_files_and_the_program_and_the_packages_stay_this_environments(
    tmp_path: Path,
) -> None:
    """`--project-dir` elsewhere runs that project's `__main__.py` and stack files with the packages this
    environment imports, all from one tree: nothing puts the project dir on the path (which would import its
    `components` beside this tree's `stacks` and `offline`). Only `diff --base` runs a tree with its own packages."""
    for name in TREE:
        shutil.copy(ROOT / name, tmp_path / name)
    for deployable in ("model_image", "listener"):  # what the program builds and packages
        shutil.copytree(ROOT / deployable, tmp_path / deployable, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "__init__.py").write_text('raise ImportError("the project dir\'s components")\n')
    proc = run_command("--project-dir", str(tmp_path), "preview", "staging", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["stack"] == "staging"


def test_a_normal_preview_of_both_stacks_prints_nothing_on_stderr() -> None:
    proc = run_command("preview", "staging", "prod")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Previewing mlops-serving/prod (offline, mocked cloud)" in proc.stdout


def test_a_normal_diff_against_the_base_prints_nothing_on_stderr(tmp_path: Path) -> None:
    repo = make_repo(tmp_path)
    stack_file = repo / "Pulumi.staging.yaml"
    stack_file.write_text(stack_file.read_text().replace("    version: 1\n", "    version: 2\n"))
    proc = run_command("diff", "--base", "HEAD", "staging", cwd=repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "image rebuilt and pushed" in proc.stdout


def changes_after_editing(
    repo: Path, file: str, old: str, new: str, *, resource_type: str, path_suffix: str
) -> tuple[list[tuple[Any, Any]], str]:
    """Edits `file` in the working tree and runs `diff --base HEAD staging` as a command, in the repository's own
    environment: the (before, after) pairs of the fields of `resource_type` whose path ends with `path_suffix`, and
    the diff's summary."""
    module = repo / file
    text = module.read_text()
    assert old in text
    module.write_text(text.replace(old, new))
    proc = run_command("diff", "--base", "HEAD", "staging", "--json", cwd=repo, env=own_environment(repo))
    assert proc.returncode == 0, proc.stderr
    diff = json.loads(proc.stdout)
    pairs = [
        (f["before"], f["after"])
        for r in diff["resources"]
        if r["type"] == resource_type
        for f in r["fields"]
        if f["path"].endswith(path_suffix)
    ]
    return pairs, str(diff["summary"])


def test_diff_against_the_base_runs_each_tree_with_its_own_components(tmp_path: Path) -> None:
    """Both trees preview in one process; a change to a component's code must still read as a change."""
    service_ports, summary = changes_after_editing(
        make_repo(tmp_path),
        "components/model_workload.py",
        "SERVICE_PORT = 80\n",
        "SERVICE_PORT = 8081\n",
        resource_type="kubernetes:core/v1:Service",
        path_suffix=".port",
    )
    assert (80, 8081) in service_ports, summary


def test_diff_against_the_base_reads_each_trees_own_contracts(tmp_path: Path) -> None:
    """The deployables' contracts live outside the project's top-level packages: the working tree reads its own
    through its environment's path, the base its own because offline.isolation puts the base's deployable roots
    first (were they not, the base would read the working tree's edited contract and nothing would change)."""
    container_ports, summary = changes_after_editing(
        make_repo(tmp_path),
        "model_image/model_server/contract.py",
        "PORT: Final = 8080\n",
        "PORT: Final = 8081\n",
        resource_type="kubernetes:argoproj.io/v1alpha1:Rollout",
        path_suffix="containerPort",
    )
    assert (8080, 8081) in container_ports, summary
