"""Golden files of what `python -m stacks diff` prints (text, `--json`, `--markdown`), for the changes reviewers see.

Each scenario diffs two stored preview documents (`tests/goldens/diff/previews/`): the shipped stacks, and the
same project after one change, previewed by the real program. The goldens pin how the diff reads a change, so they
do not move when the mock cloud makes up other values; they change only when the diff's reading does.

Regenerate after a deliberate change, then review the goldens' git diff as a reviewer would:

    UPDATE_GOLDENS=1 pytest tests/test_diff_goldens.py -p no:cacheprovider         # the goldens, from the previews
    UPDATE_GOLDENS=previews pytest tests/test_diff_goldens.py -p no:cacheprovider  # the previews too (a minute)

`previews` runs the program again under the mocks on a copy of the project (one `python -m stacks preview` per
stack and scenario), for when the program or the stack files changed what the scenarios show.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from offline.diff import MARKDOWN_BUDGET, StackDiff, diff_documents, render_markdown, render_text
from tests.conftest import ROOT

GOLDENS = Path(__file__).resolve().parent / "goldens" / "diff"
PREVIEWS = GOLDENS / "previews"
UPDATE = os.environ.get("UPDATE_GOLDENS", "") in ("1", "previews")
UPDATE_PREVIEWS = os.environ.get("UPDATE_GOLDENS", "") == "previews"
MODEL = "mlops.models.wine_quality"
# The digest a prod promotion pins: any well-formed digest staging could have built.
PROMOTED_DIGEST = "sha256:" + "e4" * 32


def _run_stacks(project: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "stacks", "--project-dir", str(project), *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PULUMI_SKIP_UPDATE_CHECK": "true", "DO_NOT_TRACK": "true"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _edit(relative: str, old: str, new: str) -> Callable[[Path], None]:
    def apply(project: Path) -> None:
        path = project / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relative} no longer holds {old!r}: update the scenario"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return apply


def _pin(stack: str, *extra: str) -> Callable[[Path], None]:
    def apply(project: Path) -> None:
        _run_stacks(project, "pin", stack, "--model", MODEL, *extra)

    return apply


@dataclass(frozen=True)
class Scenario:
    before: str  # a stored preview (`previews/<name>.json`)
    after: str
    stack: str | None  # the stack a `--base` diff is for; None for a comparison of two stacks
    change: Callable[[Path], None] | None = None  # how the project changes to give `after`

    @property
    def comparison(self) -> bool:
        return self.stack is None


SCENARIOS = {
    "shipped-staging": Scenario("staging", "staging", "staging"),
    "shipped-prod": Scenario("prod", "prod", "prod"),
    "pin-bump": Scenario("staging", "pin-bump", "staging", _pin("staging", "--version", "2")),
    "prod-promotion": Scenario(
        "prod", "prod-promotion", "prod", _pin("prod", "--version", "2", "--digest", PROMOTED_DIGEST)
    ),
    "alert-threshold": Scenario(
        "staging", "alert-threshold", "staging", _edit("Pulumi.staging.yaml", "threshold: 0.25\n", "threshold: 0.3\n")
    ),
    # Renaming the cluster changes its resource name, a parameter of its ARM path: Azure makes a new cluster.
    "cluster-replaced": Scenario(
        "staging",
        "cluster-replaced",
        "staging",
        _edit(
            "components/aks_cluster.py",
            'cluster_name = args.placement.naming.resource("aks")',
            'cluster_name = args.placement.naming.resource("k8s")',
        ),
    ),
    "staging-prod": Scenario("staging", "prod", None),
}
_COPIED = ("__main__.py", "Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml")
_PACKAGES = ("stacks", "offline", "components", "model_image", "listener", "monitoring")


def _copy_project(dest: Path) -> Path:
    for name in _COPIED:
        shutil.copy(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in _PACKAGES:
        shutil.copytree(ROOT / package, dest / package, ignore=ignore)
    return dest


def _normalised(text: str, project: Path) -> str:
    """The preview with the scratch project's absolute path (the one value that depends on the machine) replaced."""
    return text.replace(str(project), "<project>")


def _write_preview(name: str, text: str) -> None:
    doc = json.loads(text)
    PREVIEWS.mkdir(parents=True, exist_ok=True)
    (PREVIEWS / f"{name}.json").write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _regenerate_previews() -> None:
    with tempfile.TemporaryDirectory(prefix="diff-goldens-") as tmp:
        shipped = Path(tmp) / "shipped"
        shipped.mkdir()
        _copy_project(shipped)
        for stack in ("staging", "prod"):
            _write_preview(stack, _normalised(_run_stacks(shipped, "preview", stack, "--json"), shipped))
        for scenario in SCENARIOS.values():
            if scenario.change is None or scenario.stack is None:
                continue
            project = Path(tmp) / scenario.after
            project.mkdir()
            _copy_project(project)
            scenario.change(project)
            text = _run_stacks(project, "preview", scenario.stack, "--json")
            _write_preview(scenario.after, _normalised(text, project))


@pytest.fixture(scope="module")
def previews() -> dict[str, dict[str, Any]]:
    if UPDATE_PREVIEWS:
        _regenerate_previews()
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted(PREVIEWS.glob("*.json")):
        docs[path.stem] = json.loads(path.read_text(encoding="utf-8"))
    return docs


def scenario_diff(previews: dict[str, dict[str, Any]], name: str) -> StackDiff:
    """The diff as `python -m stacks diff` makes it (offline/cli.py): labels, and a comparison for two stacks."""
    s = SCENARIOS[name]
    if s.comparison:
        return diff_documents(previews[s.before], previews[s.after], s.before, s.after, comparison=True)
    return diff_documents(previews[s.before], previews[s.after], f"{s.stack}@base", f"{s.stack}@working-tree")


def rendered(diff: StackDiff, stack: str | None) -> dict[str, str]:
    """The three forms, as the command prints them."""
    return {
        "txt": render_text(diff) + "\n",
        "json": json.dumps(diff.as_json(), indent=2, default=str) + "\n",
        "md": render_markdown(diff, stack) + "\n",
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_the_diff_reads_as_its_golden(previews: dict[str, dict[str, Any]], name: str) -> None:
    forms = rendered(scenario_diff(previews, name), SCENARIOS[name].stack)
    for ext, text in forms.items():
        golden = GOLDENS / f"{name}.{ext}"
        if UPDATE:
            golden.write_text(text, encoding="utf-8")
        assert golden.is_file(), f"{golden} is missing: run with UPDATE_GOLDENS=1 and review it"
        assert text == golden.read_text(encoding="utf-8"), (
            f"{name}.{ext} differs from its golden; if the change is meant, run with UPDATE_GOLDENS=1 and review"
        )


# --- what the goldens must show (checked on the goldens themselves, so a regenerated golden cannot lose them) ----

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _golden(name: str, ext: str) -> str:
    return (GOLDENS / f"{name}.{ext}").read_text(encoding="utf-8")


def test_a_prod_promotion_shows_the_old_and_new_digests_in_full(previews: dict[str, dict[str, Any]]) -> None:
    old = previews["prod"]["config"]["model"]["imageDigest"]
    for ext in ("txt", "md"):
        text = _golden("prod-promotion", ext)
        line = next(line for line in text.splitlines() if "model.imageDigest" in line)
        assert old in line, line
        assert PROMOTED_DIGEST in line, line
        image_lines = [line for line in text.splitlines() if "containers[name=server].image" in line]
        assert image_lines, text
        assert all(len(set(_DIGEST.findall(line))) == 2 for line in image_lines), image_lines


def test_an_alert_threshold_change_shows_the_expressions_changed_line() -> None:
    for ext in ("txt", "md"):
        lines = _golden("alert-threshold", ext).splitlines()
        removed = [line.strip() for line in lines if line.strip().startswith("- ") and "> 0.25" in line]
        added = [line.strip() for line in lines if line.strip().startswith("+ ") and "> 0.3" in line]
        assert removed == ["- ) > 0.25"], lines
        assert added == ["+ ) > 0.3"], lines


def test_the_staging_prod_comparison_has_no_line_whose_two_sides_read_the_same() -> None:
    text = _golden("staging-prod", "txt")
    assert text.startswith("Compare staging | prod: ")
    for rollout_word in ("rolls out", "to delete", "to change", "→"):
        assert rollout_word not in text
    for ext in ("txt", "md"):
        pairs = [
            line.split(": ", 1)[1].split("  |  ")
            for line in _golden("staging-prod", ext).splitlines()
            if "  |  " in line
        ]
        assert len(pairs) > 50
        for pair in pairs:
            assert len(pair) == 2, pair
            assert pair[0] != pair[1], pair


def test_a_cluster_rename_is_a_replacement_that_names_the_input_and_the_consequence() -> None:
    diff = json.loads(_golden("cluster-replaced", "json"))
    cluster = next(r for r in diff["resources"] if r["type"] == "azure-native:containerservice:ManagedCluster")
    assert cluster["kind"] == "replace"
    assert cluster["replaced_by"] == ["inputs.resourceName", "inputs.dnsPrefix"]
    assert cluster["impact"] == "replaced (a new cluster, every Kubernetes object on it created again)"
    line = "+- azure-native:containerservice:ManagedCluster  cluster-aks  (replaced (a new cluster"
    assert line in _golden("cluster-replaced", "txt")
    forced = "(forced by `inputs.resourceName`, `inputs.dnsPrefix`): replaced (a new cluster"
    assert forced in _golden("cluster-replaced", "md")


def test_the_markdown_keeps_the_summary_first_and_within_the_comment_limit() -> None:
    for name in SCENARIOS:
        text = _golden(name, "md")
        assert len(text) <= MARKDOWN_BUDGET
        assert text.splitlines()[2].startswith("**"), name


def test_a_diff_too_long_for_one_comment_is_elided_and_says_so(previews: dict[str, dict[str, Any]]) -> None:
    """Every resource of staging changed by a 2,000-character input, and 30 times as many created: far over
    GitHub's limit as a whole."""
    staging = previews["staging"]
    changed = [{**r, "inputs": {**r["inputs"], "note": "x" * 2000}} for r in staging["resources"]]
    created = [{**r, "name": f"{r['name']}-{i}"} for i, r in enumerate(staging["resources"] * 30)]
    big = {**staging, "resources": changed + created}
    diff = diff_documents(previews["staging"], big, "staging@base", "staging@working-tree")
    text = render_markdown(diff, "staging")
    assert len(text) <= MARKDOWN_BUDGET
    assert text.splitlines()[2] == f"**{diff.summary()}**"
    assert "Elided to stay within GitHub's comment size limit" in text
    assert "more resources, not listed" in text


# --- the rules behind the goldens, on values made to break them -------------------------------------------------


def _one_resource(inputs: dict[str, Any], type_: str = "test:index:Thing", **options: Any) -> dict[str, Any]:
    """A preview document holding one resource with these inputs and options."""
    resource: dict[str, Any] = dict.fromkeys(("protect", "provider", "ignore_changes", "parent"))
    resource |= {"depends_on": [], "replace_on_changes": [], "secret_inputs": [], "delete_before_replace": False}
    resource |= {"retain_on_delete": False, "type": type_, "name": "thing", "inputs": inputs, **options}
    return {"config": {}, "outputs": {}, "resources": [resource]}


def _text_of(before: Any, after: Any) -> list[str]:
    """The field lines of the text diff of one resource whose input `x` goes from `before` to `after`."""
    old, new = _one_resource({"x": before}), _one_resource({"x": after})
    return render_text(diff_documents(old, new, "a", "b")).splitlines()[4:]


def test_a_replacement_names_the_providers_rule_or_the_programs_replace_on_changes() -> None:
    deployment = "kubernetes:apps/v1:Deployment"
    spec = {"selector": {"matchLabels": {"app": "a"}}, "replicas": 1}
    moved = {"selector": {"matchLabels": {"app": "b"}}, "replicas": 1}
    [change] = diff_documents(
        _one_resource({"spec": spec}, deployment), _one_resource({"spec": moved}, deployment), "a", "b"
    ).resources
    assert (change.kind, change.replaced_by) == ("replace", ["inputs.spec.selector"])
    assert change.impact == "replaced"
    # Only the replica count: updated in place, whatever else the Deployment holds.
    scaled = _one_resource({"spec": {**spec, "replicas": 2}}, deployment)
    [change] = diff_documents(_one_resource({"spec": spec}, deployment), scaled, "a", "b").resources
    assert change.kind == "update"
    # The program's own rule, with the old one deleted first: the reviewer is told it is down meanwhile.
    opts: dict[str, Any] = {"replace_on_changes": ["config.items[*].key"], "delete_before_replace": True}
    before = _one_resource({"config": {"items": [{"key": "a"}]}}, **opts)
    after = _one_resource({"config": {"items": [{"key": "b"}]}}, **opts)
    [change] = diff_documents(before, after, "a", "b").resources
    assert change.replaced_by == ["inputs.config.items[*].key"]
    assert change.impact == "replaced, deleted first (down until the new one is up)"


def test_a_long_string_is_shortened_around_the_change_and_never_reads_the_same() -> None:
    head, tail = "a long sentence that says the same on both sides " * 4, " and goes on the same way" * 4
    [line] = _text_of(f"{head}for 15m{tail}", f"{head}for 10m{tail}")
    before, after = line.split(": ", 1)[1].split(" → ")
    assert "for 15m" in before
    assert "for 10m" in after
    assert before.startswith("…")
    assert before.endswith("…")
    assert len(before) < 100


def test_an_identifier_is_never_cut() -> None:
    base = "registry.example.io/" + "models/" * 20 + "wine:2@"
    old, new = base + "sha256:" + "ae" * 32, base + "sha256:" + "e4" * 32
    [line] = _text_of(old, new)
    assert line.endswith(f"inputs.x: {old} → {new}")


def test_values_that_print_alike_are_shown_as_json() -> None:
    [line] = _text_of(1, "1")
    assert line.endswith('inputs.x: 1 → "1"')


def test_json_in_a_string_is_shown_as_a_line_diff() -> None:
    lines = _text_of(json.dumps({"a": 1, "b": [1, 2], "c": "same"}), json.dumps({"a": 1, "b": [1, 3], "c": "same"}))
    assert lines[0].strip() == "inputs.x:"
    assert [" ".join(line.split()) for line in lines if line.strip()[:2] in ("- ", "+ ")] == ["- 2", "+ 3"]


def test_list_items_are_keyed_by_their_name_and_a_list_of_scalars_is_one_value() -> None:
    env = [{"name": "A", "value": "1"}, {"name": "MODEL_VERSION", "value": "1"}]
    moved = [{"name": "NEW", "value": "x"}, {"name": "MODEL_VERSION", "value": "2"}, {"name": "A", "value": "1"}]
    lines = _text_of({"env": env, "zones": []}, {"env": moved, "zones": ["1", "2", "3"]})
    assert [line.strip() for line in lines] == [
        "inputs.x.env[name=MODEL_VERSION].value: 1 → 2",
        'inputs.x.env[name=NEW]: (none) → {"name": "NEW", "value": "x"}',
        'inputs.x.zones: [] → ["1", "2", "3"]',
    ]


def test_each_markdown_resource_line_ends_with_its_impact_as_the_release_tools_read_it() -> None:
    """release/ reads a resource's impact as what follows the last ": " of its `- **...` line (tests/release)."""
    for name, scenario in SCENARIOS.items():
        if scenario.comparison:
            continue
        impacts = [r["impact"] for r in json.loads(_golden(name, "json"))["resources"]]
        lines = [line for line in _golden(name, "md").splitlines() if line.startswith("- **")]
        assert [line.rsplit(": ", 1)[1] for line in lines] == impacts, name


@pytest.mark.parametrize(
    ("resource_type", "field", "before", "after"),
    [
        # pulumi-azure-native provider/pkg/gen/replacement.go `forceNewMap`, for the types this program declares.
        ("azure-native:containerservice:AgentPool", "vmSize", "Standard_D4ds_v5", "Standard_D8ds_v5"),
        ("azure-native:containerservice:ManagedCluster", "location", "westeurope", "northeurope"),
        ("azure-native:authorization:RoleAssignment", "principalId", "a", "b"),
    ],
)
def test_an_azure_property_the_provider_marks_force_new_is_a_replacement(
    resource_type: str, field: str, before: str, after: str
) -> None:
    [change] = diff_documents(
        _one_resource({field: before}, resource_type), _one_resource({field: after}, resource_type), "a", "b"
    ).resources
    assert (change.kind, change.replaced_by) == ("replace", [f"inputs.{field}"])


def test_an_aks_network_plugin_change_is_a_replacement_and_a_tag_change_is_not() -> None:
    cluster = "azure-native:containerservice:ManagedCluster"
    before = {"networkProfile": {"networkPlugin": "azure"}, "tags": {"a": "1"}}
    plugin = {"networkProfile": {"networkPlugin": "kubenet"}, "tags": {"a": "1"}}
    tags = {"networkProfile": {"networkPlugin": "azure"}, "tags": {"a": "2"}}
    [change] = diff_documents(_one_resource(before, cluster), _one_resource(plugin, cluster), "a", "b").resources
    assert change.replaced_by == ["inputs.networkProfile.networkPlugin"]
    [change] = diff_documents(_one_resource(before, cluster), _one_resource(tags, cluster), "a", "b").resources
    assert change.kind == "update"
