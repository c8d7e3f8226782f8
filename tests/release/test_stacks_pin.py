"""`stacks pin`: only the pinned value changes, byte for byte; bad input is refused with the file untouched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stacks.pin import pin
from stacks.settings_errors import SettingsError
from tests import offline_cli
from tests.offline_cli import CliResult
from tests.release.gitrepo import ROOT

STACKS = ("staging", "prod")
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
MODEL = "mlops.models.wine_quality"
OTHER_MODEL = "mlops.models.churn"


def pinned_digest(project: Path, stack: str) -> str | None:
    """The digest a stack file pins: prod must keep pinning one (it never builds), staging builds without."""
    for line in stack_path(project, stack).read_text().splitlines():
        if line.strip().startswith("imageDigest:"):
            return line.split(":", 1)[1].strip()
    return None


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The real project file and stack files, copied: pins happen there, never in the checkout."""
    for name in ("Pulumi.yaml", "Pulumi.staging.yaml", "Pulumi.prod.yaml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    return tmp_path


def stack_path(project: Path, stack: str) -> Path:
    return project / f"Pulumi.{stack}.yaml"


def model_line_index(lines: list[str], key: str) -> int:
    """The line of `key` inside the `mlops-serving:model:` block."""
    start = lines.index("  mlops-serving:model:\n")
    for i in range(start + 1, len(lines)):
        if not lines[i].startswith("    "):
            break
        if lines[i].strip().startswith(f"{key}:"):
            return i
    raise AssertionError(f"no {key} in the model block")


@pytest.mark.parametrize("stack", STACKS)
def test_pin_changes_only_the_version_line_byte_for_byte(project: Path, stack: str) -> None:
    path = stack_path(project, stack)
    before = path.read_bytes()
    lines = before.decode().splitlines(keepends=True)
    old_version = lines[model_line_index(lines, "version")].split(":", 1)[1].strip()
    new_version = int(old_version) + 6

    result = pin(project, stack, MODEL, str(new_version), pinned_digest(project, stack))

    assert result.changed
    assert (result.old_version, result.new_version) == (int(old_version), new_version)
    expected = list(lines)
    expected[model_line_index(lines, "version")] = f"    version: {new_version}\n"
    assert path.read_bytes() == "".join(expected).encode()


@pytest.mark.parametrize("stack", STACKS)
def test_second_pin_changes_nothing(project: Path, stack: str) -> None:
    path = stack_path(project, stack)
    digest = pinned_digest(project, stack)
    first = pin(project, stack, MODEL, 9, digest)
    after_first = path.read_bytes()
    stamp = path.stat().st_mtime_ns

    second = pin(project, stack, MODEL, "9", digest)

    assert first.changed
    assert not second.changed
    assert path.read_bytes() == after_first
    assert path.stat().st_mtime_ns == stamp, "an unchanged pin must not rewrite the file"
    assert "already pinned at version 9" in second.describe()


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", 0, -1, "", "3 # comment", "3\nmlops-serving:protect: true"])
def test_bad_version_is_refused_naming_key_and_file(project: Path, bad: str | int) -> None:
    path = stack_path(project, "staging")
    before = path.read_bytes()

    with pytest.raises(SettingsError) as raised:
        pin(project, "staging", MODEL, bad)

    assert path.read_bytes() == before
    assert len(raised.value.problems) == 1
    problem = raised.value.problems[0]
    assert problem.startswith("Pulumi.staging.yaml: mlops-serving:model.version: expected a positive integer")


def test_bad_digest_is_refused(project: Path) -> None:
    path = stack_path(project, "prod")
    before = path.read_bytes()
    with pytest.raises(SettingsError) as raised:
        pin(project, "prod", MODEL, 2, "sha256:not-hex")
    assert path.read_bytes() == before
    assert raised.value.problems[0].startswith("Pulumi.prod.yaml: mlops-serving:model.imageDigest: ")


def test_another_model_is_refused_unless_allowed(project: Path) -> None:
    path = stack_path(project, "staging")
    before = path.read_bytes()
    with pytest.raises(SettingsError) as raised:
        pin(project, "staging", OTHER_MODEL, 2)
    assert path.read_bytes() == before
    assert "pins mlops.models.wine_quality, not mlops.models.churn" in raised.value.problems[0]
    assert "--allow-model-change" in raised.value.problems[0]

    # A model the stack serves must be one it declares (modelRegistry.models): declared, the pin goes through.
    declared = before.decode().replace(
        "    models:\n      - wine_quality\n", "    models:\n      - wine_quality\n      - churn\n"
    )
    assert declared != before.decode()
    path.write_text(declared)
    before = declared.encode()
    result = pin(project, "staging", OTHER_MODEL, 2, allow_model_change=True)

    lines = before.decode().splitlines(keepends=True)
    expected = list(lines)
    expected[model_line_index(lines, "name")] = "    name: mlops.models.churn\n"
    expected[model_line_index(lines, "version")] = "    version: 2\n"
    assert path.read_text() == "".join(expected)
    assert result.model == OTHER_MODEL


def test_digest_is_added_after_version_then_removed_by_a_plain_pin(project: Path) -> None:
    path = stack_path(project, "staging")
    original = path.read_text()
    lines = original.splitlines(keepends=True)
    at = model_line_index(lines, "version")

    rolled_back = pin(project, "staging", MODEL, 1, DIGEST)

    assert rolled_back.changed
    assert rolled_back.new_digest == DIGEST
    assert path.read_text() == "".join([*lines[: at + 1], f"    imageDigest: {DIGEST}\n", *lines[at + 1 :]])
    assert not pin(project, "staging", MODEL, 1, DIGEST).changed

    replaced = pin(project, "staging", MODEL, 1, OTHER_DIGEST)
    assert (replaced.old_digest, replaced.new_digest) == (DIGEST, OTHER_DIGEST)
    assert path.read_text() == "".join([*lines[: at + 1], f"    imageDigest: {OTHER_DIGEST}\n", *lines[at + 1 :]])

    bumped = pin(project, "staging", MODEL, 2)
    assert bumped.new_digest is None
    expected = list(lines)
    expected[at] = "    version: 2\n"
    assert path.read_text() == "".join(expected), "a plain bump removes the stale imageDigest and nothing else"


def test_comments_around_the_digest_survive_its_removal(project: Path) -> None:
    path = stack_path(project, "staging")
    lines = path.read_text().splitlines(keepends=True)
    at = model_line_index(lines, "version")
    with_comments = [
        *lines[: at + 1],
        f"    imageDigest: {DIGEST}  # rolled back by hand\n",
        "    # keep me: about the model block\n",
        *lines[at + 1 :],
    ]
    path.write_text("".join(with_comments))

    pin(project, "staging", MODEL, 3)

    expected = [*lines[:at], "    version: 3\n", "    # keep me: about the model block\n", *lines[at + 1 :]]
    assert path.read_text() == "".join(expected)

    pin(project, "staging", MODEL, 3, DIGEST)  # and back: the comment stays below the inserted digest

    again = [*lines[:at], "    version: 3\n", f"    imageDigest: {DIGEST}\n", *expected[at + 1 :]]
    assert path.read_text() == "".join(again)


def test_quoted_version_keeps_its_quotes_and_crlf_files_keep_crlf(project: Path) -> None:
    path = stack_path(project, "prod")
    text = path.read_text().replace("    version: 1\n", '    version: "1"\n')
    path.write_bytes(text.replace("\n", "\r\n").encode())

    pin(project, "prod", MODEL, 4, pinned_digest(project, "prod"))

    expected = text.replace('    version: "1"\n', '    version: "4"\n').replace("\n", "\r\n").encode()
    assert path.read_bytes() == expected


def test_other_indentation_is_kept(project: Path) -> None:
    path = stack_path(project, "staging")
    # Re-indent the whole file at 4 spaces per level (sequences too).
    reindented = "".join(
        " " * (2 * (len(line) - len(line.lstrip(" ")))) + line.lstrip(" ") for line in path.read_text().splitlines(True)
    )
    path.write_text(reindented)

    pin(project, "staging", MODEL, 5)

    assert path.read_text() == reindented.replace("        version: 1\n", "        version: 5\n")


def test_an_edit_that_would_reformat_other_lines_is_refused(project: Path) -> None:
    path = stack_path(project, "staging")
    flow = path.read_text().replace(
        "  mlops-serving:model:\n    name: mlops.models.wine_quality\n    version: 1\n",
        "  mlops-serving:model: {name: mlops.models.wine_quality, version: 1}\n",
    )
    path.write_text(flow)

    with pytest.raises(SettingsError) as raised:
        pin(project, "staging", MODEL, 2)

    assert path.read_text() == flow
    assert "refusing to write" in raised.value.problems[0]


def test_missing_stack_file_is_reported(project: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        pin(project, "qa", MODEL, 2)
    assert "Pulumi.qa.yaml: no such stack file" in raised.value.problems[0]


def stacks_cli(project: Path, *args: str) -> CliResult:
    return offline_cli.stacks_cli("--project-dir", str(project), *args, cwd=ROOT)


def test_cli_prints_one_line_and_is_idempotent(project: Path) -> None:
    first = stacks_cli(project, "pin", "staging", "--model", MODEL, "--version", "3")
    second = stacks_cli(project, "pin", "staging", "--model", MODEL, "--version", "3")

    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == "Pulumi.staging.yaml: mlops.models.wine_quality version 1 -> 3\n"
    assert (second.returncode, second.stdout) == (
        0,
        "Pulumi.staging.yaml: mlops.models.wine_quality already pinned at version 3\n",
    )


def test_cli_digest_and_bad_input(project: Path) -> None:
    shipped = pinned_digest(project, "prod")
    done = stacks_cli(project, "pin", "prod", "--model", MODEL, "--version", "1", "--digest", DIGEST)
    bad = stacks_cli(project, "pin", "prod", "--model", MODEL, "--version", "abc")

    assert done.returncode == 0
    assert done.stdout == f"Pulumi.prod.yaml: mlops.models.wine_quality imageDigest {shipped} -> {DIGEST}\n"
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("Pulumi.prod.yaml: mlops-serving:model.version: expected a positive integer")
    assert '(got "abc")' in bad.stderr
