"""Roll back <stack> to <version>: the revert of the pin commit, proposed as a pull request.

    python -m release.rollback --stack staging --to-version 2 [--digest sha256:...] [--base main]
    python -m release.rollback --stack staging --to-version 2 --from-version 3 --reason "<why>"

Finds, in the history of `Pulumi.<stack>.yaml`, the commit that pinned the version the stack runs now. When the
version before it is the one asked for, the rollback is that commit's revert; otherwise (a rollback over several
versions, or a revert that no longer applies) the pin is set directly and the message says which commit it undoes.

The image: when the digest of the target version is known (`--digest`, or the `deployed_<stack>_digest` tag
`release.record_deployment` set on that model version in the registry, or the pin being reverted to already had
one), it is pinned as `imageDigest`, so the deploy serves the image already in the registry and builds nothing.

After an aborted canary the deploy calls this (rollback.yml) with the version the stack ran before (the registry's
`deployed_<stack>_version`), `--from-version <aborted>` (nothing to do once the stack no longer pins it: a newer
promotion merged first) and `--reason` (the failed check and its value, for the commit and the pull request).
Every rollback adds the version rolled back from to `release/rolled-back/<stack>.json`, keeping what the list held,
so it is not proposed to the stack again; a version on that list is not a rollback target either, unless
`--allow-rolled-back`.
Exit codes: 0 proposed or nothing to do; 1 git/GitHub/registry failure or a failed offline diff; 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release import rolled_back
from release.git import Git, GitError
from release.github import GitHub, GitHubError
from release.proposal import Change, ProposalError, pin_at, propose, report, settings_at
from release.record_deployment import TAG_PREFIX, RecordError, RegistryError, one_line, registry_client, tag_key
from stacks.files import stack_file
from stacks.identifiers import DIGEST
from stacks.model_version import parse_model_version
from stacks.pin import Pinned, pin
from stacks.settings import pinned_model
from stacks.settings_errors import SettingsError

# A reason travels in a commit message, a pull request body and a workflow input: one line, bounded.
MAX_REASON = 1000


@dataclass(frozen=True)
class PinCommit:
    """The commit that changed the pin from `before` to `after`."""

    sha: str
    subject: str
    before: Pinned | None
    after: Pinned


def _pin_or_none(git: Git, ref: str, stack: str) -> Pinned | None:
    try:
        return pin_at(git, ref, stack)
    except (SettingsError, ProposalError):
        return None


def find_pin_commit(git: Git, base: str, stack: str, current: Pinned) -> PinCommit | None:
    """The newest non-merge commit on `base` whose change to the stack file pinned `current` (name and version)."""
    path = stack_file(Path(), stack).name
    log = git.out("log", "--no-merges", "--format=%H%x09%s", base, "--", path)
    for line in log.splitlines():
        sha, _, subject = line.partition("\t")
        after = _pin_or_none(git, sha, stack)
        if after is None or (after.name, after.version) != (current.name, current.version):
            continue
        parents = git.parents(sha)
        before = _pin_or_none(git, parents[0], stack) if parents else None
        if before is None or (before.name, before.version) != (after.name, after.version):
            return PinCommit(sha, subject, before, after)
    return None


def registry_digest(model: str, version: int, stack: str, client: Any) -> tuple[str | None, str]:
    """The image digest recorded on the model version after a deploy: this stack's first, then any stack's
    (prod runs the image staging built, so staging's digest serves prod too)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_model_version(model, str(version))
    except MlflowException as exc:
        raise RegistryError(f"{model} v{version}: {exc.message}") from None
    tags: dict[str, str] = dict(getattr(found, "tags", None) or {})
    others = sorted(k for k in tags if k.startswith(f"{TAG_PREFIX}_") and k.endswith("_digest"))
    candidates = [tag_key(stack, "digest"), *others]
    for key in candidates:
        value = tags.get(key, "")
        if DIGEST.match(value):
            return value, f"registry tag `{key}` on {model} v{version}"
    return None, f"no `{TAG_PREFIX}_*_digest` tag on {model} v{version}"


def _resolve_digest(
    args: argparse.Namespace, model: str, version: int, stack: str, *, previous: PinCommit | None, catalog: str
) -> tuple[str | None, str]:
    if args.digest:
        if not DIGEST.match(args.digest):
            raise SettingsError("--digest", [f"--digest: expected sha256: and 64 hex digits, got {args.digest!r}"])
        return args.digest, "given with --digest"
    notes = []
    if not args.no_registry and (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        client = registry_client(args.tracking_uri, args.registry_uri, catalog)
        digest, note = registry_digest(model, version, stack, client)
        if digest:
            return digest, note
        notes.append(note)
    else:
        notes.append("the registry was not asked (no MLFLOW_TRACKING_URI)")
    before = previous.before if previous is not None else None
    if previous is not None and before is not None and before.version == version and before.image_digest:
        return before.image_digest, f"the pin before {previous.sha[:12]}"
    return None, "; ".join(notes)


def rollback_change(args: argparse.Namespace, git: Git, base: str) -> tuple[Change | None, str]:
    stack = args.stack
    settings = settings_at(git, base, stack)
    pinned = pinned_model(settings)
    current = Pinned(pinned.name, pinned.version, pinned.image_digest)
    if args.from_version is not None and current.version != args.from_version:
        return None, (
            f"{stack} pins {current.name} v{current.version} on {base}, not v{args.from_version}: "
            f"the rollback from v{args.from_version} is out of date"
        )
    target = args.to_version
    if current.version == target:
        return None, f"{stack} already runs {current.name} v{target} on {base}"
    earlier = rolled_back.read_at(git, base, stack)
    if target in earlier.get(current.name, []) and not args.allow_rolled_back:
        raise ProposalError(
            f"{stack} was rolled back from {current.name} v{target} ({rolled_back.path_of(stack)}); not returning "
            "to it (pass another version, or --allow-rolled-back)"
        )
    introduced = find_pin_commit(git, base, stack, current)
    digest, digest_source = _resolve_digest(
        args, current.name, target, stack, previous=introduced, catalog=pinned.catalog
    )
    revert = introduced is not None and introduced.before is not None and introduced.before.version == target
    model = current.name

    def apply(directory: Path) -> None:
        if revert and introduced is not None:
            done = Git(directory).run("revert", "--no-commit", "--no-edit", introduced.sha, check=False)
            if done.returncode != 0:  # it no longer applies: set the pin directly instead
                Git(directory).run("revert", "--abort", check=False)
                Git(directory).run("reset", "--quiet", "--hard", check=False)
        pin(directory, stack, model, target, digest)
        # In the tree, not only in the message: a squash merge can drop the trailer below. A revert of an earlier
        # rollback would take its entry out of the file again: the base's list is kept whole.
        rolled_back.add(directory, stack, model, current.version, keep=earlier)

    if revert and introduced is not None:
        undoes = f"This reverts commit {introduced.sha} ({introduced.subject}), which pinned v{current.version}."
    elif introduced is not None and introduced.before is not None:
        undoes = (
            f"Pins v{target} directly: the commit that pinned v{current.version}, {introduced.sha} "
            f"({introduced.subject}), replaced v{introduced.before.version}, not v{target}."
        )
    elif introduced is not None:
        undoes = (
            f"Pins v{target} directly: v{current.version} came with the stack file itself "
            f"({introduced.sha}, {introduced.subject})."
        )
    else:
        undoes = (
            f"Pins v{target} directly: no commit on {base} pinned v{current.version} (it was there from the start)."
        )
    if digest:
        image = f"Serves the image already built for v{target}: {digest} ({digest_source}); nothing is rebuilt."
    else:
        image = f"No image digest known for v{target} ({digest_source}): the deploy builds the image again."
    title = f"Roll back {model} to v{target} on {stack}"
    why = f"Reason: {args.reason}\n" if args.reason else ""
    message = f"{title}\n\n{why}{undoes}\n{image}\n\n{rolled_back.trailer(current.version)}\n"
    intro = (
        f"## {title}\n\n"
        f"`{stack}` runs `{model}` v{current.version}; this pins v{target} again.\n\n"
        + (f"- **Reason**: {args.reason}\n" if args.reason else "")
        + f"- {undoes}\n- {image}\n"
        f"- v{current.version} is recorded in `{rolled_back.path_of(stack)}`: it is not proposed to `{stack}` "
        "again.\n\n"
        "Merging starts the deploy workflow"
        + (" (the `prod` job waits for a required reviewer)." if stack == "prod" else ".")
    )
    change = Change(stack, f"rollback/{stack}/{model}-v{target}", title, message, intro, apply)
    return change, f"roll back {stack} to {model} v{target}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.rollback", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stack to roll back, e.g. staging or prod")
    parser.add_argument("--to-version", required=True, type=_version, help="the model version to serve again")
    parser.add_argument(
        "--from-version", type=_version, help="do nothing unless the stack pins this version (the aborted one)"
    )
    parser.add_argument("--reason", type=_reason, help="why, for the commit and the pull request (one line)")
    parser.add_argument(
        "--allow-rolled-back", action="store_true", help="return even to a version the stack was rolled back from"
    )
    parser.add_argument("--digest", help="the image digest of that version (default: from the registry tags)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--registry-uri", help="MLflow registry URI (default: $MLFLOW_REGISTRY_URI or tracking)")
    parser.add_argument("--no-registry", action="store_true", help="do not look the digest up in the registry")
    parser.add_argument("--repo-dir", type=Path, default=Path.cwd(), help="the checkout (default: cwd)")
    parser.add_argument("--base", help="base branch (default: $GITHUB_REF_NAME, else the current one)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--no-push", action="store_true", help="commit locally only; no push, no pull request")
    parser.add_argument("--no-pr", action="store_true", help="push, but do not call the GitHub API")
    return parser


def _reason(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a reason, got an empty one")
    return one_line(text, MAX_REASON)


def _version(text: str) -> int:
    try:
        return parse_model_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected {exc}, got {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    repo_dir = args.repo_dir.resolve()
    git = Git(repo_dir)
    try:
        base = args.base or os.environ.get("GITHUB_REF_NAME") or git.current_branch()
        if not base:
            raise ProposalError("no base branch: pass --base (the checkout is on a detached HEAD)")
        change, what = rollback_change(args, git, base)
        if change is None:
            print(f"{what}; nothing to do")
            return 0
        github = None if args.no_push or args.no_pr else GitHub.from_env()
        try:
            proposal = propose(
                repo_dir,
                change,
                base=base,
                marker=f"<!-- mlops-serving:rollback:{args.stack} -->",
                push=not args.no_push,
                remote=args.remote,
                github=github,
            )
        finally:
            if github is not None:
                github.close()
    except SettingsError as exc:
        print(*exc.problems, sep="\n", file=sys.stderr)
        return 2
    except rolled_back.RolledBackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (GitError, GitHubError, ProposalError, RegistryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(proposal, what))
    return 0 if proposal.diff_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
