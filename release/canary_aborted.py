"""What the deploy does when the analysis aborted the canary: record the abort, and choose the revert.

    python -m release.canary_aborted --stack staging --reason "<failed check and value>" --canary-hash <hash> \
        --stable-model <m> --stable-version 2 --canary-model <m> --canary-version 3

By the time this runs the controller has already sent all traffic back to the stable version; what is left is to
make the repository agree, and only when the new model version is to blame. What each side served comes from the
cluster (`release.await_rollout` reads the stable and canary ReplicaSets' labels); without it, from the registry
(the registered model's `deployed_<stack>_version`, written after every promoted release).
- The canary served another version of the same model than the stable pods, and it is the one the stack file
  pins: the new version is to blame. It is tagged `aborted_<stack>_at`, `_reason`, `_run` and `_hash` (so
  `release.promote` never proposes it to the stack again), and the step outputs `revert-to` (the stable version),
  `revert-from` (the aborted one) and `revert-reason`, which the deploy workflow hands to rollback.yml: the pull
  request that reverts the pin, with the reason.
- The canary served the version the stable pods serve: it was of something else (the image's code, the serving
  settings, the cluster); nothing is tagged or reverted, and the step says so.
- The stable pods served another model, or the version to return to is one the stack was rolled back from, or
  nothing says what the stack ran: the version is tagged, no revert is chosen; roll back by hand (rollback.yml).
- The version already carries this canary's hash: a later deploy found the same aborted release; nothing again.
The outputs are written before the tags, so a registry that refuses the tag does not hold the revert back.
Exit codes: 0 done or nothing to do; 1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release import rolled_back
from release.record_deployment import (
    ABORT_PREFIX,
    TAG_PREFIX,
    Abort,
    NothingToRecord,
    RecordError,
    RegistryError,
    one_line,
    pinned_abort,
    record,
    registry_client,
    tag_key,
)
from release.rollback import MAX_REASON
from stacks.model_version import parse_model_version
from stacks.settings_errors import SettingsError


@dataclass(frozen=True)
class Decision:
    """What to do about an aborted canary: tag the version or not, revert to which version (None: no revert)."""

    tag: bool
    revert_to: int | None
    why: str


@dataclass(frozen=True)
class Served:
    """What the stable and the canary pods served, (model, version) each, as the cluster says."""

    stable: tuple[str, int]
    canary: tuple[str, int]


def decide(
    client: Any, abort: Abort, canary_hash: str, served: Served | None = None, rolled_back_from: Iterable[int] = ()
) -> Decision:
    """From what the pods served (else the registry's record of what the stack ran) and the aborted version's tags."""
    from mlflow.exceptions import MlflowException

    model, version, stack = abort.model, abort.version, abort.stack
    try:
        tags: dict[str, str] = dict(client.get_model_version(model, str(version)).tags or {})
        model_tags: dict[str, str] = dict(client.get_registered_model(model).tags or {})
    except MlflowException as exc:
        raise RegistryError(f"{model} v{version}: {exc.message}") from None
    if canary_hash and tags.get(tag_key(stack, "hash", ABORT_PREFIX)) == canary_hash:
        at = tags.get(tag_key(stack, "at", ABORT_PREFIX), "?")
        return Decision(False, None, f"this canary ({canary_hash}) was recorded as aborted at {at}; nothing again")
    if served is not None:
        return _from_cluster(abort, served, set(rolled_back_from))
    running = model_tags.get(tag_key(stack, "version", TAG_PREFIX), "")
    if not running.isdigit():
        return Decision(
            True,
            None,
            f"{model} has no `{tag_key(stack, 'version')}` tag: the stack ran another model or none before, so "
            "there is no version to return to by itself; roll back by hand (rollback.yml)",
        )
    if int(running) == version:
        return Decision(
            False,
            None,
            f"{stack} already ran {model} v{version} before this release: the canary was of something else (the "
            "image's code, the serving settings or the cluster), not of a new model version; nothing is tagged or "
            "reverted: fix it forward, or revert that change",
        )
    return _revert(abort, int(running), set(rolled_back_from))


def _from_cluster(abort: Abort, served: Served, rolled_back_from: set[int]) -> Decision:
    model, version, stack = abort.model, abort.version, abort.stack
    if served.canary == served.stable:
        return Decision(
            False,
            None,
            f"the canary served {model} v{version}, as the stable pods do: it was of something else (the image's "
            "code, the serving settings or the cluster), not of a new model version; nothing is tagged or reverted: "
            "fix it forward, or revert that change",
        )
    if served.canary != (model, version):
        return Decision(
            False,
            None,
            f"the aborted canary served {served.canary[0]} v{served.canary[1]}, but Pulumi.{stack}.yaml here pins "
            f"{model} v{version}: not this commit's release; nothing is tagged or reverted",
        )
    if served.stable[0] != model:
        return Decision(
            True,
            None,
            f"the stable pods serve another model ({served.stable[0]} v{served.stable[1]}): no version of {model} to "
            "return to by itself; roll back by hand (rollback.yml)",
        )
    return _revert(abort, served.stable[1], rolled_back_from)


def _revert(abort: Abort, target: int, rolled_back_from: set[int]) -> Decision:
    if target in rolled_back_from:
        return Decision(
            True,
            None,
            f"{abort.stack} was rolled back from {abort.model} v{target}, the version to return to: no revert is "
            "chosen by itself; roll back by hand (rollback.yml) to a version that is not on release/rolled-back",
        )
    return Decision(
        True, target, f"revert {abort.stack} from {abort.model} v{abort.version} to v{target}, the version it ran"
    )


def served_from_args(args: argparse.Namespace) -> Served | None:
    """What the pods served, when the wait could read both sides (else None: the registry decides)."""
    parts = (args.stable_model, args.stable_version, args.canary_model, args.canary_version)
    if not all(parts):
        return None
    try:
        stable_version, canary_version = (
            parse_model_version(args.stable_version),
            parse_model_version(args.canary_version),
        )
    except ValueError as exc:
        raise RecordError(f"--stable-version/--canary-version: expected {exc}") from None
    return Served((args.stable_model, stable_version), (args.canary_model, canary_version))


def write_outputs(path: str | None, values: dict[str, str]) -> None:
    """Appends `name=value` lines to the step's `$GITHUB_OUTPUT` (values are one line each)."""
    if not path:
        return
    with Path(path).open("a", encoding="utf-8") as out:
        for name, value in values.items():
            out.write(f"{name}={value}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.canary_aborted", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--reason", required=True, help="the failed check and its value (release.await_rollout)")
    parser.add_argument("--canary-hash", default="", help="the aborted canary's pod template hash")
    for role in ("stable", "canary"):
        parser.add_argument(f"--{role}-model", default="", help=f"the model the {role} pods served (await_rollout)")
        parser.add_argument(f"--{role}-version", default="", help=f"the version the {role} pods served")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--tracking-uri")
    parser.add_argument("--registry-uri")
    parser.add_argument("--run-url", help="default: this GitHub Actions run")
    parser.add_argument("--outputs", help="where to write the step outputs (default: $GITHUB_OUTPUT)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = one_line(args.reason, MAX_REASON)
    try:
        abort, catalog = pinned_abort(args.project_dir, args.stack, reason, run=args.run_url)
        client = registry_client(args.tracking_uri, args.registry_uri, catalog)
        rolled_back_from = rolled_back.read_file(args.project_dir, abort.stack).get(abort.model, [])
        decision = decide(client, abort, args.canary_hash, served_from_args(args), rolled_back_from)
        print(decision.why)
        if decision.revert_to is not None:
            write_outputs(
                args.outputs or os.environ.get("GITHUB_OUTPUT"),
                {"revert-to": str(decision.revert_to), "revert-from": str(abort.version), "revert-reason": reason},
            )
        if decision.tag:
            record(client, abort, extra={tag_key(abort.stack, "hash", ABORT_PREFIX): args.canary_hash})
            print(f"{abort.model} v{abort.version}: " + ", ".join(f"{k}={v}" for k, v in abort.version_tags().items()))
    except NothingToRecord as exc:
        print(exc)
        return 0
    except SettingsError as exc:
        print(*exc.problems, sep="\n", file=sys.stderr)
        return 2
    except (RecordError, rolled_back.RolledBackError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"error: the model registry refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
