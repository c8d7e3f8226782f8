"""The stack settings: every shipped stack file is valid, and a broken one fails with one line per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks.files import load_stack_config, stack_names
from stacks.settings_errors import SettingsError
from tests.offline_cli import stacks_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's Pulumi files, to break on purpose."""
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1))


def problems_of(project: Path, stack: str) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_stack_config(project, stack).settings()
    return caught.value.problems


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_shipped_stack_files_are_valid(stack: str) -> None:
    settings = load_stack_config(ROOT, stack).settings()
    assert settings.model is not None
    assert settings.model.name == "mlops.models.wine_quality"
    assert settings.model.version >= 1


def test_the_shipped_stacks_are_the_ones_found() -> None:
    assert stack_names(ROOT) == ["prod", "staging"]


def test_unknown_key_names_the_key_and_the_file(project: Path) -> None:
    edit(project / "Pulumi.prod.yaml", "    minReplicas: 3\n", "    minReplicas: 3\n    replicaz: 4\n")
    assert problems_of(project, "prod") == ["Pulumi.prod.yaml: mlops-serving:serving.replicaz: is not a known setting"]


def test_unknown_top_level_key_is_reported(project: Path) -> None:
    edit(
        project / "Pulumi.prod.yaml",
        "  mlops-serving:protect: true\n",
        "  mlops-serving:protect: true\n  mlops-serving:colour: blue\n",
    )
    assert problems_of(project, "prod") == ["Pulumi.prod.yaml: mlops-serving:colour: is not a known setting"]


def test_missing_key_names_the_key(project: Path) -> None:
    edit(project / "Pulumi.staging.yaml", "    name: mlops.models.wine_quality\n", "")
    assert problems_of(project, "staging") == ["Pulumi.staging.yaml: mlops-serving:model.name: is required"]


def test_wrong_type_says_what_is_expected(project: Path) -> None:
    edit(project / "Pulumi.prod.yaml", "  mlops-serving:protect: true\n", "  mlops-serving:protect: maybe\n")
    [problem] = problems_of(project, "prod")
    assert problem.startswith("Pulumi.prod.yaml: mlops-serving:protect: expected a valid boolean")
    assert '(got "maybe")' in problem


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "    version: 1\n",
            "    version: 0\n",
            "Pulumi.prod.yaml: mlops-serving:model.version: expected a positive integer, e.g. 3 (got 0)",
        ),
        (
            "    version: 1\n",
            "    version: 1.5\n",
            "Pulumi.prod.yaml: mlops-serving:model.version: expected a positive integer, e.g. 3 (got 1.5)",
        ),
        (
            "    version: 1\n",
            '    version: "v2"\n',
            'Pulumi.prod.yaml: mlops-serving:model.version: expected a positive integer, e.g. 3 (got "v2")',
        ),
        (
            "      minCount: 3\n",
            "      minCount: 0\n",
            "Pulumi.prod.yaml: mlops-serving:cluster.userPool.minCount: expected greater than or equal to 1 (got 0)",
        ),
        (
            "      minCount: 3\n      maxCount: 10\n",
            "      minCount: 12\n      maxCount: 10\n",
            "Pulumi.prod.yaml: mlops-serving:cluster.userPool: minCount (12) must not exceed maxCount (10)",
        ),
        (
            "    minReplicas: 3\n",
            "    minReplicas: 30\n",
            "Pulumi.prod.yaml: mlops-serving:serving: minReplicas (30) must not exceed maxReplicas (12)",
        ),
    ],
)
def test_bad_value_names_key_and_limit(project: Path, old: str, new: str, expected: str) -> None:
    edit(project / "Pulumi.prod.yaml", old, new)
    assert problems_of(project, "prod") == [expected]


def test_region_that_does_not_exist_is_rejected_with_suggestions(project: Path) -> None:
    edit(project / "Pulumi.prod.yaml", "mlops-serving:location: westeurope", "mlops-serving:location: westeuropa")
    [problem] = problems_of(project, "prod")
    assert problem.startswith("Pulumi.prod.yaml: mlops-serving:location: expected an Azure region name")
    assert "westeurope" in problem


def test_zones_in_a_region_without_zones_are_rejected(project: Path) -> None:
    edit(project / "Pulumi.prod.yaml", "mlops-serving:location: westeurope", "mlops-serving:location: westcentralus")
    [problem] = problems_of(project, "prod")
    assert "westcentralus has no availability zones" in problem


def test_owner_only_sections_are_refused_on_a_referencing_stack(project: Path) -> None:
    edit(
        project / "Pulumi.prod.yaml",
        "  mlops-serving:cluster:\n",
        "  mlops-serving:registry:\n    sku: Basic\n  mlops-serving:cluster:\n",
    )
    [problem] = problems_of(project, "prod")
    assert "registry belong to the shared-services owner (acme-ml/mlops-serving/staging)" in problem


def test_all_four_kinds_of_problem_are_reported_together(project: Path) -> None:
    path = project / "Pulumi.prod.yaml"
    edit(path, "    minReplicas: 3\n", "    minReplicas: 3\n    replicaz: 4\n")  # unknown key
    edit(path, "    name: mlops.models.wine_quality\n", "")  # missing key
    edit(path, "  mlops-serving:protect: true\n", "  mlops-serving:protect: maybe\n")  # wrong type
    edit(path, "    version: 1\n", "    version: -2\n")  # bad value
    problems = problems_of(project, "prod")
    assert len(problems) == 4
    keys = sorted(p.split(": ")[1] for p in problems)
    assert keys == [
        "mlops-serving:model.name",
        "mlops-serving:model.version",
        "mlops-serving:protect",
        "mlops-serving:serving.replicaz",
    ]
    assert all(p.startswith("Pulumi.prod.yaml: ") for p in problems)


def test_cli_reports_problems_one_per_line_without_traceback(project: Path) -> None:
    path = project / "Pulumi.prod.yaml"
    edit(path, "    minReplicas: 3\n", "    minReplicas: 3\n    replicaz: 4\n")
    edit(path, "    version: 1\n", "    version: 0\n")
    proc = stacks_cli("--project-dir", str(project), "preview", "prod")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "Pulumi.prod.yaml: mlops-serving:model.version: expected a positive integer, e.g. 3 (got 0)",
        "Pulumi.prod.yaml: mlops-serving:serving.replicaz: is not a known setting",
    ]


def test_every_setting_is_documented_in_the_project_file() -> None:
    from stacks.files import project_file
    from stacks.settings import StackSettings

    declared = project_file(ROOT)["config"]
    for name, field in StackSettings.model_fields.items():
        key = field.alias or name
        assert key in declared, f"Pulumi.yaml does not document {key}"
        assert declared[key].get("description"), f"Pulumi.yaml has no description for {key}"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "mlops.models.wine_quality_scored_by_the_regional_panel",
            "gives the Kubernetes name 'wine-quality-scored-by-the-regional-panel'; it must have 1 to 40 characters",
        ),
        ("mlops.models.wine_quality_" + "x" * 40, "must also be a Kubernetes label value"),
    ],
)
def test_a_model_name_that_cannot_name_its_pods_is_refused_in_the_stack_file(
    project: Path, name: str, expected: str
) -> None:
    edit(project / "Pulumi.prod.yaml", "    name: mlops.models.wine_quality\n", f"    name: {name}\n")
    [problem] = problems_of(project, "prod")
    assert problem.startswith("Pulumi.prod.yaml: mlops-serving:model")
    assert expected in problem


def test_the_key_vault_retention_is_documented_as_fixed_once_the_vault_exists() -> None:
    from stacks.files import project_file
    from stacks.settings import KeyVaultSettings

    field = KeyVaultSettings.model_fields["soft_delete_retention_days"]
    assert field.description is not None
    assert "Fixed when the vault is created" in field.description
    doc = " ".join(project_file(ROOT)["config"]["keyVault"]["description"].split())
    assert "softDeleteRetentionDays is fixed when the vault is created" in doc
    assert "mlops-serving:keyVault.softDeleteRetentionDays" in doc
