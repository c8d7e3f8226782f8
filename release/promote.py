"""Propose a model version for a stack as a pull request: the pin bump, and the offline diff that shows what it does.

    python -m release.promote [--event-path $GITHUB_EVENT_PATH | --payload '{...}']   # the listener's dispatch
    python -m release.promote --from-stack staging --to-stack prod                      # staging's pin, for prod

The dispatch path validates the `model-promoted` payload the webhook listener sends, asks the registry whether the
version holds the promoted alias or stage now (a dispatch that does not match is logged and ignored), pins the
version in the target stack's file on `promote/<stack>/<model>-v<version>`, commits (`Promote <model> v<version> to
<stack>` with a `Delivery-Id:` trailer), pushes, and opens or updates the pull request. A redelivered webhook
updates the same branch and pull request; a pull request a reviewer closed unmerged is not opened again; open
promotion pull requests of older versions are closed with a comment. Neither path proposes a version the target
stack was rolled back from (`release/rolled-back/<stack>.json`), nor, on the dispatch path, one whose canary the
stack aborted (the registry's `aborted_<stack>_at` tag), unless `--allow-rolled-back`.
Exit codes: 0 proposed, ignored or nothing to do; 1 proposed but the offline diff failed, or a git/GitHub/registry
failure; 2 invalid payload or stack file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError

from release import rolled_back
from release.git import Git, GitError
from release.github import GitHub, GitHubError
from release.proposal import Change, ProposalError, close_superseded, pin_at, propose, report, settings_at
from release.record_deployment import (
    ABORT_PREFIX,
    RecordError,
    RegistryError,
    image_from_outputs,
    registry_client,
    tag_key,
)
from stacks.files import stack_file
from stacks.identifiers import MODEL_NAME_PATTERN, STACK_NAME_PATTERN
from stacks.model_version import parse_model_version
from stacks.pin import Pinned, pin
from stacks.settings_errors import SettingsError
from webhook_listener import contract

EVENT_TYPE = contract.Events.PROMOTED

ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN)]
StackName = Annotated[str, StringConstraints(pattern=STACK_NAME_PATTERN)]
# The payload carries the version as a string (MLflow's and Databricks' webhooks do); the one version rule checks it.
Version = Annotated[str, AfterValidator(lambda value: str(parse_model_version(value)))]
DeliveryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,200}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9 ._-]+$")]


class PromotionPayload(BaseModel):
    """The `client_payload` of the listener's `model-promoted` repository_dispatch (the listener's `Promotion`)."""

    model_config = ConfigDict(extra="ignore", frozen=True, coerce_numbers_to_str=True)

    model: ModelName
    version: Version
    stage: Label | None = None
    alias: Label | None = None
    target_stack: StackName
    delivery_id: DeliveryId
    source: Literal["mlflow", "databricks", "databricks-job", "manual"]


class PayloadError(ValueError):
    """The dispatch payload is unusable; `problems` holds one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def parse_payload(data: Any) -> PromotionPayload:
    if not isinstance(data, dict):
        raise PayloadError([f"client_payload: expected a JSON object, got {type(data).__name__}"])
    try:
        return PromotionPayload.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "client_payload"
            shown = f" (got {json.dumps(err['input'])})" if err["type"] != "missing" and "input" in err else ""
            problems.append(f"client_payload.{where}: {err['msg']}{shown}")
        raise PayloadError(problems) from None


def payload_from_event(path: Path) -> PromotionPayload:
    """The payload of a `repository_dispatch` event file ($GITHUB_EVENT_PATH)."""
    try:
        event = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PayloadError([f"{path}: cannot read the event: {exc}"]) from None
    if not isinstance(event, dict):
        raise PayloadError([f"{path}: the event is not a JSON object"])
    action = event.get("action")
    if action is not None and action != EVENT_TYPE:
        raise PayloadError([f"{path}: event type is {action!r}, expected {EVENT_TYPE!r}"])
    if "client_payload" not in event:
        raise PayloadError([f"{path}: no client_payload (is this a repository_dispatch event?)"])
    return parse_payload(event["client_payload"])


class NothingToDo(Exception):
    """Nothing is proposed, on purpose; the message says why (it is logged, and the run succeeds)."""


# MLflow's answer when the model, the version or the alias does not exist (a REST 404), as opposed to a failure.
_ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"})


def branch_name(stack: str, model: str, version: int | str) -> str:
    return f"promote/{stack}/{model}-v{version}"


def branch_pattern(stack: str, model: str) -> re.Pattern[str]:
    """The promotion branches of `model` for `stack`, the version as group `version`."""
    return re.compile(rf"promote/{re.escape(stack)}/{re.escape(model)}-v(?P<version>[0-9]+)")


def registry_mismatch(payload: PromotionPayload, client: Any) -> str | None:
    """None when the registry says the version holds the promoted alias (or is in the promoted stage) now; else why
    not. A registry failure (not an answer) raises RegistryError."""
    from mlflow.exceptions import MlflowException

    model, version = payload.model, payload.version
    try:
        if payload.alias:
            try:
                holder = client.get_model_version_by_alias(model, payload.alias)
            except MlflowException as exc:
                if exc.error_code in _ABSENT:
                    return f"the registry has no alias {payload.alias!r} on {model}"
                raise
            if str(holder.version) != version:
                return f"alias {payload.alias!r} of {model} is on v{holder.version}, not v{version}"
            return None
        if payload.stage:
            try:
                found = client.get_model_version(model, version)
            except MlflowException as exc:
                if exc.error_code in _ABSENT:
                    return f"the registry has no {model} v{version}"
                raise
            if str(found.current_stage).lower() != payload.stage.lower():
                return f"{model} v{version} is in stage {found.current_stage!r}, not {payload.stage!r}"
            return None
    except MlflowException as exc:
        raise RegistryError(f"{model} v{version}: {exc.message}") from None
    return "the payload names neither an alias nor a stage: nothing the registry can confirm"


def aborted_in_registry(client: Any, model: str, version: str, stack: str) -> str | None:
    """Why `model` v`version` is not proposed to `stack` again: the `aborted_<stack>_*` tags the deploy wrote when
    its canary was aborted (`release.record_deployment --aborted`); None when it carries none."""
    from mlflow.exceptions import MlflowException

    try:
        tags: dict[str, str] = dict(getattr(client.get_model_version(model, version), "tags", None) or {})
    except MlflowException as exc:
        raise RegistryError(f"{model} v{version}: {exc.message}") from None
    at = tags.get(tag_key(stack, "at", ABORT_PREFIX))
    if at is None:
        return None
    reason = tags.get(tag_key(stack, "reason", ABORT_PREFIX), "no reason recorded")
    return f"its canary on {stack} was aborted at {at} ({reason})"


def rolled_back_versions(git: Git, base: str, stack: str, model: str) -> dict[int, str]:
    """The versions of `model` that `stack` was rolled back from on `base`, each with where that is recorded: the
    tree's `release/rolled-back/<stack>.json` (which every merge method keeps), and the rollback commits'
    `Rolled-Back-From:` trailers (which a squash merge may drop)."""
    found = {version: rolled_back.path_of(stack) for version in rolled_back.read_at(git, base, stack).get(model, [])}
    path = stack_file(Path(), stack).name
    log = git.out("log", "--format=%H%x1f%B%x1e", base, "--", path)
    for entry in log.split("\x1e"):
        sha, _, body = entry.strip().partition("\x1f")
        if not body.startswith(f"Roll back {model} to v"):
            continue
        version = rolled_back.version_in_trailer(body)
        if version is not None:
            found.setdefault(version, sha[:12])
    return found


def marker(stack: str) -> str:
    return f"<!-- mlops-serving:promote:{stack} -->"


def dispatch_change(repo_dir: Path, payload: PromotionPayload, base: str, *, allow_rolled_back: bool = False) -> Change:
    """The pin bump a dispatch asks for, as a change to propose. A version the stack was rolled back from (after an
    aborted canary, or by hand) is not proposed again unless `allow_rolled_back`."""
    stack = payload.target_stack
    git = Git(repo_dir)
    rolled_back_from = rolled_back_versions(git, base, stack, payload.model)
    if int(payload.version) in rolled_back_from and not allow_rolled_back:
        raise NothingToDo(
            f"dispatch {payload.delivery_id}: {stack} was rolled back from {payload.model} v{payload.version} "
            f"({rolled_back_from[int(payload.version)]}); not proposing it again (run with --allow-rolled-back)"
        )
    if not settings_at(git, base, stack).shared.owner:
        raise SettingsError(
            stack_file(repo_dir, stack).name,
            [
                f"target_stack {stack!r} does not build images (shared.owner is false); a registry promotion goes to "
                "the stack that does, and reaches this one through `--from-stack`"
            ],
        )
    if payload.stage:
        event = f"moved to stage {payload.stage}"
    elif payload.alias:
        event = f"alias {payload.alias} set"
    else:
        event = "promoted"
    trigger = f"{payload.source} registry: {payload.model} v{payload.version} {event}"
    message = (
        f"Promote {payload.model} v{payload.version} to {stack}\n\n"
        f"Pins {payload.model} version {payload.version} in Pulumi.{stack}.yaml ({trigger}).\n\n"
        f"Delivery-Id: {payload.delivery_id}\n"
    )
    intro = (
        f"## Promote `{payload.model}` v{payload.version} to `{stack}`\n\n"
        f"Proposed by the release workflow after a registry promotion ({trigger}; delivery `{payload.delivery_id}`).\n"
        f"Only the pin in `Pulumi.{stack}.yaml` changes. Merging deploys `{stack}` "
        "(the image is built for this version, which is then released as a canary, smoke-tested and judged step "
        "by step); "
        "prod is proposed separately once staging runs it."
    )

    def apply(directory: Path) -> None:
        pin(directory, stack, payload.model, payload.version)

    return Change(
        stack, branch_name(stack, payload.model, payload.version), message.splitlines()[0], message, intro, apply
    )


def built_digest(built_image: str, wanted: Pinned, source: str) -> str:
    """The digest in `source`'s `modelImage` output, checked to be the image of the pin being proposed."""
    try:
        image = image_from_outputs(json.loads(built_image), None)
    except (json.JSONDecodeError, RecordError) as exc:
        raise PayloadError([f"--built-image: not {source}'s modelImage output: {exc}"]) from None
    if (image.model, image.version) != (wanted.name, str(wanted.version)):
        raise PayloadError(
            [
                f"--built-image is {image.model} v{image.version}, but {source} pins {wanted.name} "
                f"v{wanted.version}; not proposing an image that does not match the pin"
            ]
        )
    return image.digest


def stack_to_stack_change(
    repo_dir: Path,
    source: str,
    target: str,
    base: str,
    *,
    built_image: str | None = None,
    allow_model_change: bool = False,
    allow_rolled_back: bool = False,
) -> Change | None:
    """`target` pinned to what `source` pins at `base`; None if it already is.

    A version `target` was rolled back from is not proposed again (NothingToDo) unless `allow_rolled_back`: the next
    proposal is the next version `source` runs.

    With `built_image` (the `modelImage` output of the deploy of `source` that just succeeded), its digest is pinned
    as `imageDigest`: `target` then runs exactly the image `source` tested, whatever `source` runs later. Without it,
    the digest `source` pins (if any) is carried over.
    """
    git = Git(repo_dir)
    if settings_at(git, base, source).model is None:
        raise NothingToDo(f"{source} pins no model yet (day zero): nothing to propose for {target}")
    wanted = pin_at(git, base, source)
    if built_image:
        wanted = Pinned(wanted.name, wanted.version, built_digest(built_image, wanted, source))
    now = pin_at(git, base, target)
    if (now.name, now.version, now.image_digest) == (wanted.name, wanted.version, wanted.image_digest):
        return None
    if now.name == wanted.name and wanted.version < now.version:
        # After a rollback of `source`, its pin is older than `target`'s: only a rollback lowers `target`.
        raise NothingToDo(
            f"{source} pins {wanted.name} v{wanted.version}, older than the v{now.version} {target} runs: a "
            f"downgrade of {target} is proposed only by a rollback (the rollback workflow), never as a promotion"
        )
    rolled_back_from = rolled_back_versions(git, base, target, wanted.name)
    if wanted.version in rolled_back_from and not allow_rolled_back and now.version != wanted.version:
        raise NothingToDo(
            f"{target} was rolled back from {wanted.name} v{wanted.version} ({rolled_back_from[wanted.version]}); "
            f"not proposing it again (a newer version will be, or run with --allow-rolled-back)"
        )
    base_sha = git.rev(base) or base
    if wanted.image_digest:
        image = f"the image `{source}` built and deployed, `{wanted.image_digest}`"
    else:
        image = f"the image `{source}` pins for it"
    if (now.name, now.version) == (wanted.name, wanted.version):
        title = f"Repin the image of {wanted.name} v{wanted.version} on {target}"
    else:
        title = f"Promote {wanted.name} v{wanted.version} to {target}"
    message = (
        f"{title}\n\n"
        f"Pins in Pulumi.{target}.yaml what Pulumi.{source}.yaml pins at {base_sha[:12]}: "
        f"{wanted.name} version {wanted.version}"
        f"{f' (imageDigest {wanted.image_digest})' if wanted.image_digest else ''}.\n\n"
        f"Promoted-From: {source}@{base_sha}\n"
    )
    intro = (
        f"## {title}\n\n"
        f"`{source}` runs `{wanted.name}` v{wanted.version}; `{target}` runs `{now.name}` v{now.version}. "
        f"This pins `{target}` to {image}: nothing is rebuilt. Merging starts the deploy workflow, whose "
        f"`{target}` job waits for a required reviewer (environment `production`)."
    )

    def apply(directory: Path) -> None:
        pin(
            directory,
            target,
            wanted.name,
            wanted.version,
            wanted.image_digest,
            allow_model_change=allow_model_change,
        )

    branch = branch_name(target, wanted.name, wanted.version)
    return Change(target, branch, message.splitlines()[0], message, intro, apply)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.promote", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--event-path", type=Path, help="repository_dispatch event file (default: $GITHUB_EVENT_PATH)")
    source.add_argument("--payload", help="the client_payload as JSON, instead of an event file")
    source.add_argument("--from-stack", help="propose the pin this stack runs ...")
    parser.add_argument("--to-stack", help="... for this stack (with --from-stack)")
    parser.add_argument("--repo-dir", type=Path, default=Path.cwd(), help="the checkout (default: cwd)")
    parser.add_argument("--base", default=None, help="base branch (default: $GITHUB_REF_NAME, else the current one)")
    parser.add_argument("--remote", default="origin")
    parser.add_argument("--no-push", action="store_true", help="commit locally only; no push, no pull request")
    parser.add_argument("--no-pr", action="store_true", help="push, but do not call the GitHub API")
    parser.add_argument("--allow-model-change", action="store_true", help="with --from-stack: the model may differ")
    parser.add_argument(
        "--allow-rolled-back",
        action="store_true",
        help="propose even a version the stack was rolled back from, or whose canary there was aborted",
    )
    parser.add_argument("--tracking-uri", help="MLflow tracking URI of the registry (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--registry-uri", help="MLflow registry URI (default: $MLFLOW_REGISTRY_URI, or the tracking)")
    parser.add_argument(
        "--no-registry-check",
        action="store_true",
        help="dispatch: do not confirm the promotion with the registry (local use only; CI always confirms)",
    )
    parser.add_argument(
        "--built-image",
        help="with --from-stack: the source stack's modelImage output (JSON) from its deploy; its digest is pinned",
    )
    return parser


def _base(args: argparse.Namespace, git: Git) -> str:
    base = args.base or os.environ.get("GITHUB_REF_NAME") or git.current_branch()
    if not base:
        raise ProposalError("no base branch: pass --base (the checkout is on a detached HEAD)")
    return str(base)


def _payload(args: argparse.Namespace) -> PromotionPayload:
    if args.payload is not None:
        try:
            return parse_payload(json.loads(args.payload))
        except json.JSONDecodeError as exc:
            raise PayloadError([f"--payload: not JSON: {exc}"]) from None
    event_path = args.event_path or os.environ.get("GITHUB_EVENT_PATH")
    if not event_path:
        raise PayloadError(["no payload: pass --event-path, --payload or --from-stack"])
    return payload_from_event(Path(event_path))


def confirm_with_registry(args: argparse.Namespace, repo_dir: Path, payload: PromotionPayload, base: str) -> None:
    """Raises NothingToDo unless the registry confirms the promotion the payload reports."""
    if args.no_registry_check:
        print("warning: the promotion is not confirmed with the registry (--no-registry-check)", file=sys.stderr)
        return
    if not (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")):
        raise RecordError("no registry to confirm the promotion with: set MLFLOW_TRACKING_URI or pass --tracking-uri")
    model = settings_at(Git(repo_dir), base, payload.target_stack).model
    catalog = model.catalog if model is not None else "workspace"
    client = registry_client(args.tracking_uri, args.registry_uri, catalog)
    mismatch = registry_mismatch(payload, client)
    if mismatch is not None:
        raise NothingToDo(
            f"dispatch {payload.delivery_id} ignored: it reports {payload.model} v{payload.version} promoted, "
            f"but {mismatch}"
        )
    aborted = aborted_in_registry(client, payload.model, payload.version, payload.target_stack)
    if aborted is not None and not args.allow_rolled_back:
        raise NothingToDo(
            f"dispatch {payload.delivery_id}: not proposing {payload.model} v{payload.version} again: {aborted} "
            "(run with --allow-rolled-back)"
        )


def _change(args: argparse.Namespace, repo_dir: Path, base: str) -> tuple[Change | None, str, re.Pattern[str] | None]:
    if args.from_stack:
        if not args.to_stack:
            raise PayloadError(["--from-stack needs --to-stack"])
        change = stack_to_stack_change(
            repo_dir,
            args.from_stack,
            args.to_stack,
            base,
            built_image=args.built_image or None,
            allow_model_change=args.allow_model_change,
            allow_rolled_back=args.allow_rolled_back,
        )
        pattern = None
        if change is not None:
            pattern = branch_pattern(args.to_stack, pin_at(Git(repo_dir), base, args.from_stack).name)
        return change, f"promote {args.from_stack} -> {args.to_stack}", pattern
    payload = _payload(args)
    what = f"promote {payload.model} v{payload.version} -> {payload.target_stack}"
    change = dispatch_change(repo_dir, payload, base, allow_rolled_back=args.allow_rolled_back)
    confirm_with_registry(args, repo_dir, payload, base)
    return change, what, branch_pattern(payload.target_stack, payload.model)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    repo_dir = args.repo_dir.resolve()
    try:
        base = _base(args, Git(repo_dir))
        change, what, superseding = _change(args, repo_dir, base)
        if change is None:
            print(f"{what}: {args.to_stack} already pins what {args.from_stack} pins on {base}; nothing to do")
            return 0
        github = None if args.no_push or args.no_pr else GitHub.from_env()
        try:
            proposal = propose(
                repo_dir,
                change,
                base=base,
                marker=marker(change.stack),
                push=not args.no_push,
                remote=args.remote,
                github=github,
                respect_rejection=True,
            )
            if github is not None and superseding is not None and proposal.pr_number is not None:
                proposal = dataclasses.replace(proposal, superseded=close_superseded(github, superseding))
        finally:
            if github is not None:
                github.close()
    except NothingToDo as exc:
        print(f"nothing proposed: {exc}")
        return 0
    except PayloadError as exc:
        print("invalid model-promoted payload:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 2
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"error: the model registry could not confirm the promotion: {exc}", file=sys.stderr)
        return 1
    except SettingsError as exc:
        print(*exc.problems, sep="\n", file=sys.stderr)
        return 2
    except rolled_back.RolledBackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (GitError, GitHubError, ProposalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report(proposal, what))
    if args.no_push and proposal.commit is not None:
        # No pull request is opened: show its body (the offline diff) here, for whoever ran this locally.
        print("\n" + proposal.body)
    return 0 if proposal.diff_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
