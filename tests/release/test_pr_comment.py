"""`release.pr_comment`: one comment per stack, updated in place; the privileged half trusts nothing it downloads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from release.github import GitHub
from release.pr_comment import comment_body, load_artifact, main, marker, upsert_comment
from tests.release.ghfake import FakeGitHub
from tests.release.gitrepo import ROOT

HEAD = "a" * 40
BASE = "b" * 40
IN_ROOT = ("--project-dir", str(ROOT))  # the comment job runs in the base branch's checkout


def gh(fake: FakeGitHub) -> GitHub:
    return GitHub("test-token", fake.repository, fake.url, retries=0)


def test_one_comment_per_stack_updated_in_place(github: FakeGitHub) -> None:
    pr = github.add_pull("feature", "main", head_sha=HEAD)
    github.add_comment(pr, "LGTM")
    with gh(github) as client:
        first = upsert_comment(client, pr, "staging", comment_body("staging", "### diff v1"))
        prod = upsert_comment(client, pr, "prod", comment_body("prod", "### prod diff"))
        second = upsert_comment(client, pr, "staging", comment_body("staging", "### diff v2"))
        third = upsert_comment(client, pr, "staging", comment_body("staging", "### diff v2"))

    assert (first.action, prod.action, second.action, third.action) == ("created", "created", "updated", "unchanged")
    assert second.comment_id == first.comment_id == third.comment_id
    bodies = sorted(c["body"] for c in github.comments.values())
    assert bodies == sorted(["LGTM", f"{marker('staging')}\n### diff v2\n", f"{marker('prod')}\n### prod diff\n"])
    assert len(github.calls("PATCH")) == 1


def test_a_person_quoting_the_marker_keeps_their_comment(github: FakeGitHub) -> None:
    pr = github.add_pull("feature", "main", head_sha=HEAD)
    quoted = github.add_comment(pr, f"{marker('staging')}\nwhy does this say that?")
    with gh(github) as client:
        done = upsert_comment(client, pr, "staging", comment_body("staging", "### diff"))
    assert done.action == "created"
    assert github.comments[quoted]["body"].endswith("why does this say that?")


def test_comment_body_neutralises_foreign_markers_and_limits_size() -> None:
    body = comment_body("staging", f"x <!-- mlops-serving:offline-diff:prod --> y\n{'z' * 70_000}")
    assert body.startswith(f"{marker('staging')}\nx  y\n")
    assert marker("prod") not in body
    assert len(body) < 65_536
    assert body.rstrip().endswith("_(truncated: the diff is too long for one comment)_")


def write_artifact(directory: Path, stack: str, *, pr: int = 1, head: str = HEAD, text: str = "### d") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"stack": stack, "pr": pr, "head_sha": head, "base_sha": BASE, "ok": True}
    (directory / f"{stack}.json").write_text(json.dumps(meta))
    (directory / f"{stack}.md").write_text(text)


def test_post_verifies_the_head_then_comments_every_stack(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pr = github.add_pull("fork-branch", "main", head_sha=HEAD)
    write_artifact(tmp_path, "staging", pr=pr, text="### staging diff")
    write_artifact(tmp_path, "prod", pr=pr, text="### prod diff")

    assert main(["post", "--dir", str(tmp_path), "--head-sha", HEAD, *IN_ROOT]) == 0
    assert main(["post", "--dir", str(tmp_path), "--head-sha", HEAD, *IN_ROOT]) == 0  # a re-run updates nothing twice

    assert sorted(c["body"] for c in github.comments.values()) == [
        f"{marker('prod')}\n### prod diff\n",
        f"{marker('staging')}\n### staging diff\n",
    ]
    out = capsys.readouterr().out
    assert "#1 prod: comment created" in out
    assert "#1 staging: comment unchanged" in out


def test_post_skips_a_superseded_head_and_refuses_a_foreign_artifact(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pr = github.add_pull("fork-branch", "main", head_sha="c" * 40)  # pushed again since
    write_artifact(tmp_path, "staging", pr=pr)

    assert main(["post", "--dir", str(tmp_path), "--head-sha", HEAD, *IN_ROOT]) == 0
    assert "not posting a stale diff" in capsys.readouterr().out
    assert main(["post", "--dir", str(tmp_path), "--head-sha", "d" * 40, *IN_ROOT]) == 2
    assert "the artifact is for" in capsys.readouterr().err
    assert github.comments == {}


@pytest.mark.parametrize(
    ("meta", "error"),
    [
        ({"stack": "staging", "pr": "1; rm -rf /", "head_sha": HEAD, "ok": True}, "not a diff description"),
        ({"stack": "staging", "pr": 1, "head_sha": HEAD, "ok": True, "token": "x"}, "not a diff description"),
        ({"stack": "prod", "pr": 1, "head_sha": HEAD, "ok": True}, "describes stack 'prod'"),
        ({"stack": "staging", "pr": 1, "head_sha": "../../x", "ok": True}, "not a diff description"),
    ],
)
def test_untrusted_artifact_is_checked(tmp_path: Path, meta: dict[str, object], error: str) -> None:
    (tmp_path / "staging.json").write_text(json.dumps(meta))
    (tmp_path / "staging.md").write_text("### d")
    with pytest.raises(ValueError, match=r".") as raised:
        load_artifact(tmp_path)
    assert error in str(raised.value)


def test_artifact_mixing_pull_requests_is_refused(tmp_path: Path) -> None:
    write_artifact(tmp_path, "staging", pr=1)
    write_artifact(tmp_path, "prod", pr=2)
    with pytest.raises(ValueError, match="mixes pull requests"):
        load_artifact(tmp_path)
    with pytest.raises(ValueError, match="no offline diff"):
        load_artifact(tmp_path / "empty")


def test_upsert_command(github: FakeGitHub, tmp_path: Path) -> None:
    pr = github.add_pull("feature", "main")
    body = tmp_path / "diff.md"
    body.write_text("### from a file")
    assert main(["upsert", "--pr", str(pr), "--stack", "prod", "--body-file", str(body)]) == 0
    assert [c["body"] for c in github.comments.values()] == [f"{marker('prod')}\n### from a file\n"]


def test_bad_stack_name_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["upsert", "--pr", "1", "--stack", "../etc", "--body-file", "x"])
    assert raised.value.code == 2


def test_nothing_uploaded_is_not_an_error(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["post", "--dir", str(tmp_path / "missing"), "--head-sha", HEAD]) == 0
    assert "nothing to post" in capsys.readouterr().out
    assert github.requests == []


def test_posting_imports_only_what_the_comment_job_installs() -> None:
    """offline-diff-comment.yml installs httpx and pydantic only: posting must not import the project's stack
    settings or what they need; the identifier rules (standard library only) are all it takes from `stacks`."""
    code = (
        "import sys, release.pr_comment; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'ruamel', 'mlflow', 'pulumi', 'yaml'}), "
        "sorted(m for m in sys.modules if m.split('.')[0] == 'stacks'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[] ['stacks', 'stacks.identifiers']"


def test_a_stack_the_base_branch_does_not_have_is_refused(
    github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fork's artifact may name any stack; only the base branch's stacks get a comment."""
    pr = github.add_pull("fork-branch", "main", head_sha=HEAD)
    write_artifact(tmp_path, "staging", pr=pr)
    write_artifact(tmp_path, "prod-eu", pr=pr, text="### looks official")

    assert main(["post", "--dir", str(tmp_path), "--head-sha", HEAD, *IN_ROOT]) == 2

    assert "stack 'prod-eu' is not one of the base branch's (prod, staging)" in capsys.readouterr().err
    assert github.comments == {}
