"""What the deploy does when the analysis aborted the canary: record the abort in the registry, ask for the revert.

    python -m release.canary_aborted --stack staging --reason "<the failed check and its value>"

By the time this runs the controller has already sent all traffic back to the stable version; what is left is to
make the repository agree. It
1. tags the version the stack pins with `aborted_<stack>_at`, `_reason` and `_run` (`release.record_deployment
   --aborted`), so the dispatch path of `release.promote` never proposes it to the stack again, and
2. starts the rollback workflow (`rollback.yml`, a `workflow_dispatch` through the GitHub API) with
   `version: previous`, `from-version: <aborted>` and the reason: it opens the pull request that reverts the pin and
   adds the version to `release/rolled-back/<stack>.json`.
The job token needs `actions: write` for step 2; a `workflow_dispatch` made with the job's GITHUB_TOKEN does start a
run ("with the exception of workflow_dispatch and repository_dispatch", docs.github.com/actions/concepts/security/
github_token). Exit codes: 0 both done (or day zero: nothing pinned); 1 the registry or GitHub failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from release.github import GitHub, GitHubError
from release.record_deployment import (
    NothingToRecord,
    RecordError,
    RegistryError,
    abort_from_args,
    record,
    registry_client,
)
from release.rollback import MAX_REASON, PREVIOUS
from stacks.settings import SettingsError

ROLLBACK_WORKFLOW = "rollback.yml"


def rollback_inputs(stack: str, version: int, reason: str) -> dict[str, str]:
    """The rollback workflow's inputs for reverting `version` on `stack` (every workflow_dispatch input is a
    string: docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event)."""
    return {"stack": stack, "version": PREVIOUS, "from-version": str(version), "reason": reason}


def dispatch_rollback(github: GitHub, ref: str, inputs: dict[str, str]) -> None:
    """POST .../actions/workflows/rollback.yml/dispatches: GitHub answers 204 and starts the run on `ref`."""
    github.request(
        "POST",
        f"/repos/{github.repository}/actions/workflows/{ROLLBACK_WORKFLOW}/dispatches",
        json={"ref": ref, "inputs": inputs},
        what=f"starting {ROLLBACK_WORKFLOW}",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.canary_aborted", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--reason", required=True, help="the failed check and its value (release.await_rollout)")
    parser.add_argument("--ref", help="the branch the rollback workflow runs on (default: $GITHUB_REF_NAME)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--tracking-uri")
    parser.add_argument("--registry-uri")
    parser.add_argument("--run-url", help="default: this GitHub Actions run")
    parser.add_argument("--no-dispatch", action="store_true", help="record the abort only; start no rollback")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = " ".join(args.reason.split())[:MAX_REASON]
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
        ref = args.ref or os.environ.get("GITHUB_REF_NAME", "")
        if not args.no_dispatch and not ref:
            raise RecordError("no branch for the rollback workflow: pass --ref or set GITHUB_REF_NAME")
        record(registry_client(args.tracking_uri, args.registry_uri, catalog), abort)
        print(f"{abort.model} v{abort.version}: " + ", ".join(f"{k}={v}" for k, v in abort.version_tags().items()))
        if args.no_dispatch:
            return 0
        with GitHub.from_env() as github:
            dispatch_rollback(github, ref, rollback_inputs(abort.stack, abort.version, reason))
    except NothingToRecord as exc:
        print(exc)
        return 0
    except SettingsError as exc:
        print(*exc.problems, sep="\n", file=sys.stderr)
        return 2
    except RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RegistryError, GitHubError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"started {ROLLBACK_WORKFLOW} on {ref}: revert {abort.model} v{abort.version} on {abort.stack}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
