"""One pull-request comment per stack with the offline diff, found again by a hidden marker and updated in place.

Two halves, so that fork pull requests work without giving fork code a token that can write:

    python -m release.pr_comment render --stack staging --base <sha> --out offline-diff/
        unprivileged (`pull_request`): runs the offline diff and writes `<stack>.md` and `<stack>.json`
        (PR number, head sha) for upload as an artifact. Needs no token and no secret.
    python -m release.pr_comment post --dir offline-diff/ --head-sha <workflow_run.head_sha>
        privileged (`workflow_run`, base-branch code only): treats the artifact as untrusted data, checks that the
        PR's current head is the commit the diff was made for, and creates or updates one comment per stack.
    python -m release.pr_comment upsert --pr 12 --stack staging --body-file diff.md
        the same upsert for one stack, with a body at hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from release.github import GitHub, GitHubError
from stacks.identifiers import STACK_NAME, STACK_NAME_PATTERN

MAX_COMMENT = 60_000  # GitHub's limit is 65,536 characters
_ANY_MARKER = re.compile(r"<!--\s*mlops-serving:[^>]*-->")
StackName = Annotated[str, StringConstraints(pattern=STACK_NAME_PATTERN)]
Sha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]


def marker(stack: str) -> str:
    return f"<!-- mlops-serving:offline-diff:{stack} -->"


class DiffMeta(BaseModel):
    """`<stack>.json` next to `<stack>.md` in the artifact: untrusted when read back, so strictly checked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stack: StackName
    pr: int = Field(ge=1, le=10**9)
    head_sha: Sha
    base_sha: Sha | None = None
    ok: bool


def comment_body(stack: str, markdown: str) -> str:
    """The comment: our marker first, the diff after it, with any marker-like text in the diff neutralised."""
    text = _ANY_MARKER.sub("", markdown).strip()
    if len(text) > MAX_COMMENT:
        text = text[: MAX_COMMENT - 100] + "\n\n_(truncated: the diff is too long for one comment)_"
    return f"{marker(stack)}\n{text}\n"


@dataclass(frozen=True)
class Upserted:
    action: str  # "created" | "updated" | "unchanged"
    comment_id: int
    url: str


def upsert_comment(github: GitHub, pr: int, stack: str, body: str) -> Upserted:
    """Create the stack's comment on `pr`, or update the oldest bot comment carrying its marker."""
    path = f"/repos/{github.repository}/issues/{pr}/comments"
    comments = github.paginate(path, what=f"listing comments of #{pr}")
    tag = marker(stack)
    # Only a bot's comment (ours): a person quoting the marker must not have their comment overwritten.
    mine = sorted(
        (
            c
            for c in comments
            if isinstance(c, dict)
            and str(c.get("body") or "").startswith(tag)
            and (c.get("user") or {}).get("type") == "Bot"
        ),
        key=lambda c: int(c["id"]),
    )
    if not mine:
        created = github.request("POST", path, json={"body": body}, what=f"commenting on #{pr}")
        return Upserted("created", int(created["id"]), str(created.get("html_url", "")))
    existing = mine[0]
    if existing.get("body") == body:
        return Upserted("unchanged", int(existing["id"]), str(existing.get("html_url", "")))
    updated = github.request(
        "PATCH",
        f"/repos/{github.repository}/issues/comments/{int(existing['id'])}",
        json={"body": body},
        what=f"updating comment {existing['id']} on #{pr}",
    )
    return Upserted("updated", int(updated["id"]), str(updated.get("html_url", "")))


def _event() -> dict[str, Any]:
    path = os.environ.get("GITHUB_EVENT_PATH")
    if not path:
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def render(args: argparse.Namespace) -> int:
    """Unprivileged half: run the diff, write `<stack>.md` + `<stack>.json` to `--out`."""
    pull = _event().get("pull_request") or {}
    pr = args.pr or pull.get("number")
    head = args.head_sha or (pull.get("head") or {}).get("sha")
    if not pr or not head:
        print("error: no pull request in the event; pass --pr and --head-sha", file=sys.stderr)
        return 2
    from release.proposal import offline_diff  # the diff needs the whole project; posting needs only httpx

    diff = offline_diff(args.repo_dir.resolve(), args.base, args.stack)
    meta = DiffMeta(stack=args.stack, pr=int(pr), head_sha=str(head), base_sha=_sha_or_none(args.base), ok=diff.ok)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stack}.md").write_text(diff.markdown + "\n", encoding="utf-8")
    (args.out / f"{args.stack}.json").write_text(meta.model_dump_json(), encoding="utf-8")
    print(f"offline diff of {args.stack} for #{pr} written to {args.out} ({'ok' if diff.ok else 'FAILED'})")
    return 0 if diff.ok else 1


def _sha_or_none(ref: str) -> str | None:
    return ref if re.fullmatch(r"[0-9a-f]{40}", ref) else None


def known_stacks(project_dir: Path) -> frozenset[str]:
    """The stacks of the checkout (in the comment job, the base branch's): `Pulumi.<stack>.yaml` files."""
    if not (project_dir / "Pulumi.yaml").is_file():
        raise ValueError(f"{project_dir}: no Pulumi.yaml; pass --project-dir, the base branch's checkout")
    return frozenset(
        path.name.removeprefix("Pulumi.").removesuffix(".yaml") for path in project_dir.glob("Pulumi.*.yaml")
    )


def load_artifact(directory: Path, known: frozenset[str] | None = None) -> list[tuple[DiffMeta, str]]:
    """Every `<stack>.json` + `<stack>.md` pair; raises ValueError on anything unexpected, and (with `known`) on a
    stack the base branch does not have: a fork's artifact may name anything."""
    pairs = []
    for meta_path in sorted(directory.glob("*.json")):
        try:
            meta = DiffMeta.model_validate_json(meta_path.read_text(encoding="utf-8"))
        except ValidationError as exc:
            raise ValueError(f"{meta_path.name}: not a diff description ({exc.error_count()} problems)") from None
        if meta_path.stem != meta.stack:
            raise ValueError(f"{meta_path.name}: describes stack {meta.stack!r}")
        if known is not None and meta.stack not in known:
            raise ValueError(
                f"{meta_path.name}: stack {meta.stack!r} is not one of the base branch's ({', '.join(sorted(known))})"
            )
        md = directory / f"{meta.stack}.md"
        if not md.is_file() or md.stat().st_size > 2 * MAX_COMMENT:
            raise ValueError(f"{md.name}: missing or too large")
        pairs.append((meta, md.read_text(encoding="utf-8", errors="replace")))
    if not pairs:
        raise ValueError(f"{directory}: no offline diff in the artifact")
    if len({meta.pr for meta, _ in pairs}) != 1 or len({meta.head_sha for meta, _ in pairs}) != 1:
        raise ValueError("the artifact mixes pull requests or commits")
    return pairs


def post(args: argparse.Namespace, github: GitHub) -> int:
    """Privileged half: verify, then upsert one comment per stack."""
    if not args.dir.is_dir() or not any(args.dir.iterdir()):
        print(f"no offline diff was uploaded ({args.dir} is empty); nothing to post")
        return 0
    pairs = load_artifact(args.dir, known_stacks(args.project_dir))
    pr, head = pairs[0][0].pr, pairs[0][0].head_sha
    if head != args.head_sha:
        print(f"error: the artifact is for {head}, the workflow run for {args.head_sha}; not posting", file=sys.stderr)
        return 2
    pull = github.request("GET", f"/repos/{github.repository}/pulls/{pr}", what=f"reading #{pr}")
    if (pull.get("head") or {}).get("sha") != args.head_sha:
        # A newer push superseded this run (its own run will comment), or the number does not belong to this run.
        print(f"#{pr} head is no longer {args.head_sha[:12]}; not posting a stale diff")
        return 0
    for meta, markdown in pairs:
        done = upsert_comment(github, pr, meta.stack, comment_body(meta.stack, markdown))
        print(f"#{pr} {meta.stack}: comment {done.action} {done.url}")
    return 0


def upsert(args: argparse.Namespace, github: GitHub) -> int:
    markdown = args.body_file.read_text(encoding="utf-8")
    done = upsert_comment(github, args.pr, args.stack, comment_body(args.stack, markdown))
    print(f"#{args.pr} {args.stack}: comment {done.action} {done.url}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.pr_comment", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="run the offline diff and write it for upload (no token needed)")
    r.add_argument("--stack", required=True, type=_stack)
    r.add_argument("--base", required=True, help="git ref or sha of the base the PR merges into")
    r.add_argument("--out", required=True, type=Path)
    r.add_argument("--pr", type=int, help="default: from $GITHUB_EVENT_PATH")
    r.add_argument("--head-sha", help="default: from $GITHUB_EVENT_PATH")
    r.add_argument("--repo-dir", type=Path, default=Path.cwd())
    p = sub.add_parser("post", help="post the rendered diffs of an artifact (privileged, verifies first)")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--head-sha", required=True, type=_sha, help="github.event.workflow_run.head_sha")
    p.add_argument("--project-dir", type=Path, default=Path.cwd(), help="the base branch's checkout (default: cwd)")
    u = sub.add_parser("upsert", help="create or update one stack's comment from a markdown file")
    u.add_argument("--pr", required=True, type=int)
    u.add_argument("--stack", required=True, type=_stack)
    u.add_argument("--body-file", required=True, type=Path)
    return parser


def _stack(text: str) -> str:
    if not STACK_NAME.match(text):
        raise argparse.ArgumentTypeError(f"not a stack name: {text!r}")
    return text


def _sha(text: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{40}", text):
        raise argparse.ArgumentTypeError(f"not a commit sha: {text!r}")
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "render":
        return render(args)
    try:
        with GitHub.from_env() as github:
            return post(args, github) if args.command == "post" else upsert(args, github)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except GitHubError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
