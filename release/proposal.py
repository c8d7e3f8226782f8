"""A change proposed as a pull request: branch from the base, commit, push, offline diff in the body, open or update.

Promote and rollback both end here. Running it twice for the same change (a redelivered webhook, a re-run job)
produces no second branch, commit or pull request: an identical commit already on the branch is reused and the
open pull request is updated in place.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.git import Git
from release.github import GitHub, GitHubError
from stacks.files import load_stack_config, stack_file
from stacks.pin import Pinned
from stacks.settings import StackSettings, pinned_model
from stacks.settings_errors import SettingsError

MAX_BODY = 60_000  # GitHub's limit is 65,536 characters
DIFF_TIMEOUT = 900.0
# Put in the body of a pull request the release workflow closed because a newer one replaced it: such a pull
# request was not rejected by a reviewer, so the same proposal may be opened again.
SUPERSEDED = "<!-- mlops-serving:superseded -->"


class ProposalError(RuntimeError):
    """The change cannot be proposed; the message says why."""


@dataclass(frozen=True)
class Change:
    """What to propose: `apply` edits the working tree of a checkout of `base` (it may stage or not)."""

    stack: str
    branch: str
    title: str
    message: str
    intro: str
    apply: Callable[[Path], None]


@dataclass(frozen=True)
class OfflineDiff:
    ok: bool
    markdown: str


@dataclass(frozen=True)
class Proposal:
    """The outcome: `commit` is None when the base already had the change (nothing proposed)."""

    branch: str
    base: str
    commit: str | None
    pushed: bool
    reused: bool
    body: str
    diff_ok: bool
    pr_number: int | None = None
    pr_url: str | None = None
    pr_action: str = "none"  # "created" | "updated" | "unchanged" | "none"
    skipped: str = ""  # why nothing was proposed although the base lacks the change (e.g. a reviewer rejected it)
    superseded: tuple[int, ...] = ()  # pull requests closed because this one replaces them


def settings_at(git: Git, ref: str, stack: str) -> StackSettings:
    """`stack`'s validated settings at git `ref`, read from that commit's files (not the working tree)."""
    name = stack_file(Path(), stack).name
    project = git.show(ref, "Pulumi.yaml")
    text = git.show(ref, name)
    if project is None:
        raise ProposalError(f"{ref} has no Pulumi.yaml")
    if text is None:
        raise SettingsError(name, [f"{name}: no such stack file at {ref}"])
    with tempfile.TemporaryDirectory(prefix="release-pin-") as scratch:
        root = Path(scratch)
        (root / "Pulumi.yaml").write_text(project, encoding="utf-8", newline="")
        (root / name).write_text(text, encoding="utf-8", newline="")
        return load_stack_config(root, stack).settings()


def pin_at(git: Git, ref: str, stack: str) -> Pinned:
    """The model `stack` pins at git `ref`."""
    model = pinned_model(settings_at(git, ref, stack))
    return Pinned(model.name, model.version, model.image_digest)


def offline_diff(repo_dir: Path, base: str, stack: str) -> OfflineDiff:
    """`python -m stacks diff --base <base> <stack> --markdown`, run in `repo_dir` (its working tree is "after")."""
    env = dict(os.environ)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "PULUMI_SKIP_UPDATE_CHECK": "true"})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "stacks", "diff", "--base", base, stack, "--markdown"],
            cwd=repo_dir,
            capture_output=True,
            text=True,
            env=env,
            timeout=DIFF_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return OfflineDiff(False, f"The offline diff of `{stack}` did not finish in {DIFF_TIMEOUT:.0f} s.")
    if proc.returncode == 0 and proc.stdout.strip():
        return OfflineDiff(True, proc.stdout.strip())
    tail = "\n".join((proc.stderr.strip() or proc.stdout.strip() or "(no output)").splitlines()[-30:])
    return OfflineDiff(
        False,
        f"**The offline diff of `{stack}` failed** (exit {proc.returncode}); the checks on this pull request "
        f"will fail the same way:\n\n```\n{tail}\n```",
    )


def _fence_safe(text: str) -> str:
    return text if len(text) <= MAX_BODY else text[: MAX_BODY - 200] + "\n\n_(truncated: the diff is too long)_"


def render_body(change: Change, diff: OfflineDiff, marker: str) -> str:
    return f"{change.intro.strip()}\n\n{_fence_safe(diff.markdown)}\n\n{marker}\n"


def upsert_pull_request(github: GitHub, *, branch: str, base: str, title: str, body: str) -> tuple[str, int, str]:
    """Open a pull request from `branch` into `base`, or update the open one; returns (action, number, url)."""
    head = f"{github.owner}:{branch}"
    pulls_path = f"/repos/{github.repository}/pulls"

    def find_open() -> dict[str, object] | None:
        found = github.paginate(pulls_path, {"head": head, "state": "open"}, what=f"listing pull requests of {head}")
        return found[0] if found else None

    existing = find_open()
    if existing is None:
        try:
            created = github.request(
                "POST",
                pulls_path,
                json={"title": title, "head": branch, "base": base, "body": body, "maintainer_can_modify": True},
                what=f"opening a pull request {branch} -> {base}",
            )
            return "created", int(created["number"]), str(created["html_url"])
        except GitHubError as exc:
            # Another run opened it between our look and our POST: update that one instead.
            if exc.status != 422:
                raise
            existing = find_open()
            if existing is None:
                raise
    number = int(str(existing["number"]))
    if existing.get("title") == title and existing.get("body") == body:
        return "unchanged", number, str(existing["html_url"])
    updated = github.request(
        "PATCH", f"{pulls_path}/{number}", json={"title": title, "body": body}, what=f"updating pull request #{number}"
    )
    return "updated", number, str(updated["html_url"])


def rejected_pull(github: GitHub, branch: str) -> dict[str, Any] | None:
    """A pull request from `branch` that was closed without merging, not by the release workflow: a reviewer's no."""
    closed = github.paginate(
        f"/repos/{github.repository}/pulls",
        {"head": f"{github.owner}:{branch}", "state": "closed"},
        what=f"listing closed pull requests of {branch}",
    )
    for pull in closed:
        if not pull.get("merged_at") and SUPERSEDED not in str(pull.get("body") or ""):
            return dict(pull)
    return None


def close_superseded(github: GitHub, pattern: re.Pattern[str]) -> tuple[int, ...]:
    """Of the open pull requests whose head branch matches `pattern` (group `version`), keep the newest version;
    close the others with a comment naming the one that replaces them. Returns the numbers closed.

    Every proposal run does this after opening its own pull request, so two runs racing end with one open."""
    pulls_path = f"/repos/{github.repository}/pulls"
    open_pulls = github.paginate(pulls_path, {"state": "open"}, what="listing open pull requests")
    matching = []
    for pull in open_pulls:
        found = pattern.fullmatch(str(pull.get("head", {}).get("ref", "")))
        if found:
            matching.append((int(found.group("version")), int(pull["number"]), pull))
    if len(matching) < 2:
        return ()
    newest_version, newest_number, _ = max(matching)
    closed = []
    for version, number, pull in sorted(matching):
        if (version, number) == (newest_version, newest_number):
            continue
        github.request(
            "POST",
            f"/repos/{github.repository}/issues/{number}/comments",
            json={"body": f"Superseded by #{newest_number} (v{newest_version}); closed by the release workflow."},
            what=f"commenting on superseded pull request #{number}",
        )
        github.request(
            "PATCH",
            f"{pulls_path}/{number}",
            json={"state": "closed", "body": f"{pull.get('body') or ''}\n{SUPERSEDED}\n"},
            what=f"closing superseded pull request #{number}",
        )
        closed.append(number)
    return tuple(closed)


def propose(
    repo_dir: Path,
    change: Change,
    *,
    base: str,
    marker: str,
    push: bool = True,
    remote: str = "origin",
    github: GitHub | None = None,
    respect_rejection: bool = False,
) -> Proposal:
    """Commit `change` on a branch from `base`, push it, and open or update its pull request.

    With `respect_rejection`, a proposal whose pull request a reviewer closed unmerged is not made again."""
    git = Git(repo_dir)
    git.check_branch_name(change.branch)
    if not git.is_clean():
        raise ProposalError(f"{repo_dir} has uncommitted changes to tracked files; refusing to switch branches")
    base_sha = git.rev(base)
    if base_sha is None:
        raise ProposalError(f"unknown base {base!r}")
    base_branch = base.removeprefix(f"{remote}/").removeprefix("refs/heads/")
    existing = git.remote_branch(remote, change.branch) if push else git.rev(f"refs/heads/{change.branch}")
    restore = git.current_branch() or git.out("rev-parse", "HEAD")

    git.run("checkout", "--quiet", "-B", change.branch, base_sha)
    try:
        change.apply(repo_dir)
        git.run("add", "--update")
        if git.run("diff", "--cached", "--quiet", check=False).returncode == 0:
            return Proposal(change.branch, base_sha, None, False, False, "", True)
        if github is not None and respect_rejection:
            rejected = rejected_pull(github, change.branch)
            if rejected is not None:
                number = rejected["number"]
                why = f"pull request #{number} from {change.branch} was closed without merging; not reopening it"
                return Proposal(change.branch, base_sha, None, False, False, "", True, skipped=why)
        commit = git.commit(change.message)
        reused = False
        if existing is not None:
            if push:
                git.run("fetch", "--quiet", remote, f"refs/heads/{change.branch}")
            if git.tree(existing) == git.tree(commit) and git.parents(existing)[:1] == [base_sha]:
                git.run("reset", "--quiet", "--hard", existing)
                commit, reused = existing, True
        pushed = False
        if push and not reused:
            lease = f"--force-with-lease=refs/heads/{change.branch}:{existing or ''}"
            git.run("push", "--quiet", lease, remote, f"{commit}:refs/heads/{change.branch}")
            pushed = True
        diff = offline_diff(repo_dir, base_sha, change.stack)
        body = render_body(change, diff, marker)
        proposal = Proposal(change.branch, base_sha, commit, pushed, reused, body, diff.ok)
        if github is not None:
            action, number, url = upsert_pull_request(
                github, branch=change.branch, base=base_branch, title=change.title, body=body
            )
            proposal = Proposal(change.branch, base_sha, commit, pushed, reused, body, diff.ok, number, url, action)
        return proposal
    finally:
        # Leave the checkout where it was; the branch keeps the commit.
        git.run("reset", "--quiet", "--hard", check=False)
        git.run("checkout", "--quiet", restore, check=False)


def report(proposal: Proposal, what: str) -> str:
    """One line for the log, and the same facts for the Actions job summary and step outputs."""
    if proposal.skipped:
        line = f"{what}: nothing proposed: {proposal.skipped}"
    elif proposal.commit is None:
        line = f"{what}: nothing to propose, the base already has it"
    else:
        state = "reused" if proposal.reused else ("pushed" if proposal.pushed else "committed (not pushed)")
        line = f"{what}: branch {proposal.branch} {state} at {proposal.commit[:12]}"
        if proposal.pr_url:
            line += f"; pull request {proposal.pr_action}: {proposal.pr_url}"
        if not proposal.diff_ok:
            line += "; the offline diff FAILED (see the pull request body)"
        if proposal.superseded:
            line += f"; closed as superseded: {', '.join(f'#{n}' for n in proposal.superseded)}"
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(f"{line}\n")
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        with open(outputs, "a", encoding="utf-8") as handle:
            handle.write(f"branch={proposal.branch}\n")
            handle.write(f"commit={proposal.commit or ''}\n")
            handle.write(f"pr-url={proposal.pr_url or ''}\n")
            handle.write(f"pr-number={proposal.pr_number or ''}\n")
    return line
