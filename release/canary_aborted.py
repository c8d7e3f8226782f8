"""What the deploy does when the analysis aborted the canary: record the abort, and choose the revert.

    python -m release.canary_aborted --stack staging --reason "<failed check and value>" --canary-hash <hash>

By the time this runs the controller has already sent all traffic back to the stable version; what is left is to
make the repository agree, and only when the new model version is to blame. The registry knows what the stack ran
before: the registered model's `deployed_<stack>_version`, written after every promoted release.
- The stack file pins another version than that one: the new version is to blame. It is tagged `aborted_<stack>_at`,
  `_reason`, `_run` and `_hash` (so `release.promote` never proposes it to the stack again), and the step outputs
  `revert-to` (the version the stack ran), `revert-from` (the aborted one) and `revert-reason`, which the deploy
  workflow hands to rollback.yml: the pull request that reverts the pin, with the reason.
- It pins the version the stack already ran: the canary was of something else (the image's code, the serving
  settings, the cluster); nothing is tagged or reverted, and the step says so.
- No `deployed_<stack>_version` on the model (the stack ran another model, or never got this far): the version is
  tagged, no revert is chosen; roll back by hand (rollback.yml).
- The version already carries this canary's hash: a later deploy found the same aborted release; nothing again.
The outputs are written before the tags, so a registry that refuses the tag does not hold the revert back.
Exit codes: 0 done or nothing to do; 1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from release.record_deployment import (
    ABORT_PREFIX,
    TAG_PREFIX,
    Abort,
    NothingToRecord,
    RecordError,
    RegistryError,
    abort_from_args,
    one_line,
    record,
    registry_client,
    tag_key,
)
from release.rollback import MAX_REASON
from stacks.settings_errors import SettingsError


@dataclass(frozen=True)
class Decision:
    """What to do about an aborted canary: tag the version or not, revert to which version (None: no revert)."""

    tag: bool
    revert_to: int | None
    why: str


def decide(client: Any, abort: Abort, canary_hash: str) -> Decision:
    """Reads the registry: the aborted version's tags and the version the stack ran before."""
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
    return Decision(True, int(running), f"revert {stack} from {model} v{version} to v{running}, the version it ran")


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
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--tracking-uri")
    parser.add_argument("--registry-uri")
    parser.add_argument("--run-url", help="default: this GitHub Actions run")
    parser.add_argument("--outputs", help="where to write the step outputs (default: $GITHUB_OUTPUT)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = one_line(args.reason, MAX_REASON)
    record_args = argparse.Namespace(
        stack=args.stack,
        reason=reason,
        model=None,
        version=None,
        digest=None,
        outputs_file=None,
        outputs_env=None,
        at=None,
        run_url=args.run_url,
        project_dir=args.project_dir,
    )
    try:
        abort, catalog = abort_from_args(record_args)
        client = registry_client(args.tracking_uri, args.registry_uri, catalog)
        decision = decide(client, abort, args.canary_hash)
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
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"error: the model registry refused: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
