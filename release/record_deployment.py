"""After a successful deploy: tag the model version in the registry with where it runs, so the registry answers
"what runs where" (and a rollback finds the digest of an image already built).

    python -m release.record_deployment --stack staging [--outputs-env DEPLOY_OUTPUTS | --digest sha256:...]

Sets, on the model version the stack pins (read from `Pulumi.<stack>.yaml` unless --model/--version are given):

    deployed_<stack>_digest   the image digest serving it (sha256:...)
    deployed_<stack>_at       when the deploy finished (ISO 8601, UTC)
    deployed_<stack>_run      the CI run that deployed it (URL)

and on the registered model `deployed_<stack>_version`, `_digest` and `_at`: the version a stack runs now, in one
place. Keys use `_` only: Unity Catalog refuses `. , - = / :` in tag keys, so a `-` in a stack name becomes `_`.
Tags on older versions stay (they record where each image ran, which a rollback reads). The tracking and
registry URIs come from MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI (`databricks` with DATABRICKS_HOST in CI; Unity
Catalog models, `catalog: unity-catalog`, use `databricks-uc`).

    python -m release.record_deployment --stack staging --aborted --reason "<why>" [--version 3]

After a canary release the analysis aborted (`release.await_rollout` exit 3), records the abort on that version
instead: `aborted_<stack>_at`, `aborted_<stack>_reason` (the failed check and value, at most 1000 characters) and
`aborted_<stack>_run`. Nothing else changes: the stack still runs the version it ran before, and its tags say so.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stacks.files import load_stack_config
from stacks.identifiers import DIGEST, DIGEST_ANYWHERE, STACK_NAME
from stacks.model_version import parse_model_version
from stacks.settings import pinned_model
from stacks.settings_errors import SettingsError

TAG_PREFIX = "deployed"
ABORT_PREFIX = "aborted"
# "The maximum length of a tag value is 1000 characters" (learn.microsoft.com/azure/databricks/database-objects/tags,
# "Constraints"): the tightest of the registries the stacks use (the workspace registry's API guarantees 5000 bytes:
# docs.databricks.com/api/model-registry/v1/set-model-version-tag).
MAX_TAG_VALUE = 1000
# Unity Catalog tag keys may not contain . , - = / : (https://learn.microsoft.com/azure/databricks/database-objects/tags
# "Constraints"); stack names are [a-z0-9-], so `-` -> `_` keeps keys valid and distinct.
_TAG_KEY_FORBIDDEN = re.compile(r"[.,\-=/:]")


def tag_key(stack: str, field: str, prefix: str = TAG_PREFIX) -> str:
    """The registry tag key of `field` (digest, at, run, version, reason) for `stack`: `<prefix>_<stack>_<field>`,
    with `deployed` or `aborted` as the prefix."""
    key = f"{prefix}_{stack.replace('-', '_')}_{field}"
    if _TAG_KEY_FORBIDDEN.search(key):
        raise RecordError(f"tag key {key!r}: Unity Catalog tag keys may not contain . , - = / :")
    return key


class RecordError(ValueError):
    """What to record cannot be determined; the message says what is missing."""


class NothingToRecord(Exception):
    """The stack pins no model yet (day zero): nothing runs that a tag could describe; the message says so."""


class RegistryError(RuntimeError):
    """The registry refused or could not be reached; the message is the registry's."""


@dataclass(frozen=True)
class Deployment:
    stack: str
    model: str
    version: int
    digest: str
    at: str
    run_url: str

    def version_tags(self) -> dict[str, str]:
        values = {"digest": self.digest, "at": self.at, "run": self.run_url}
        return {tag_key(self.stack, field): value for field, value in values.items()}

    def model_tags(self) -> dict[str, str]:
        values = {"version": str(self.version), "digest": self.digest, "at": self.at}
        return {tag_key(self.stack, field): value for field, value in values.items()}


@dataclass(frozen=True)
class Abort:
    """A canary release of `model` v`version` on `stack` that its analysis aborted, and why."""

    stack: str
    model: str
    version: int
    reason: str
    at: str
    run_url: str

    def version_tags(self) -> dict[str, str]:
        values = {"at": self.at, "reason": one_line(self.reason, MAX_TAG_VALUE), "run": self.run_url}
        return {tag_key(self.stack, field, ABORT_PREFIX): value for field, value in values.items()}


def one_line(text: str, limit: int) -> str:
    """`text` on one line, control characters out, at most `limit` characters (cut with an ellipsis): safe as a
    registry tag, a step output and a line of a pull request's body."""
    flat = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


@dataclass(frozen=True)
class DeployedImage:
    """What the stack says it serves: the digest, and the model and version when the output names them."""

    digest: str
    model: str | None = None
    version: str | None = None


def image_from_outputs(outputs: Any, key: str | None = "modelImage") -> DeployedImage:
    """The deployed image among a stack's outputs.

    Accepts the whole output map (`pulumi stack output --json`) or one output's value; an output may be an object
    (`modelImage: {model, version, ref, digest}`) or JSON text of one (GitHub step outputs are strings).
    """
    if isinstance(outputs, dict) and key and key in outputs:
        outputs = outputs[key]
    if isinstance(outputs, str) and outputs.lstrip().startswith("{"):
        with contextlib.suppress(json.JSONDecodeError):
            outputs = json.loads(outputs)
    found: list[str] = sorted(set(DIGEST_ANYWHERE.findall(json.dumps(outputs))))
    if not found:
        shown = ", ".join(sorted(outputs)) if isinstance(outputs, dict) else repr(outputs)[:120]
        raise RecordError(f"no image digest (sha256:...) in the stack outputs ({shown}); pass --digest")
    if isinstance(outputs, dict) and isinstance(outputs.get("digest"), str) and DIGEST.match(outputs["digest"]):
        digest = outputs["digest"]
    elif len(found) == 1:
        digest = found[0]
    else:
        raise RecordError(f"several image digests in the stack outputs ({', '.join(found)}); pass --digest")
    model = outputs.get("model") if isinstance(outputs, dict) else None
    version = outputs.get("version") if isinstance(outputs, dict) else None
    return DeployedImage(digest, None if model is None else str(model), None if version is None else str(version))


def run_url(env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """This GitHub Actions run's URL, or "" outside Actions."""
    env = os.environ if env is None else env
    server, repo, run = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not (server and repo and run):
        return ""
    url = f"{server}/{repo}/actions/runs/{run}"
    attempt = env.get("GITHUB_RUN_ATTEMPT")
    return f"{url}/attempts/{attempt}" if attempt else url


def registry_client(
    tracking_uri: str | None = None, registry_uri: str | None = None, catalog: str = "workspace"
) -> Any:
    """An `mlflow.MlflowClient` for the registry; `databricks-uc` for Unity Catalog models on Databricks."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    tracking, registry = registry_uris(tracking_uri, registry_uri, catalog)
    return mlflow.MlflowClient(tracking_uri=tracking, registry_uri=registry)


def registry_uris(
    tracking_uri: str | None = None, registry_uri: str | None = None, catalog: str = "workspace"
) -> tuple[str, str | None]:
    """(tracking URI, registry URI): arguments first, then the environment; Unity Catalog on Databricks."""
    tracking = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking:
        raise RecordError("no tracking URI: set MLFLOW_TRACKING_URI (e.g. databricks) or pass --tracking-uri")
    registry = registry_uri or os.environ.get("MLFLOW_REGISTRY_URI") or None
    if registry is None and catalog == "unity-catalog" and tracking.startswith("databricks"):
        registry = "databricks-uc"
    return tracking, registry


def record(client: Any, deployment: Deployment | Abort, extra: Mapping[str, str] | None = None) -> None:
    """Set the tags (and the non-empty `extra` ones on the version); checks first that the version exists, so a
    wrong pin fails with the registry's own message. An abort tags the version only: the registered model's tags
    still name the version the stack runs."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(deployment.model, str(deployment.version))
        version_tags = {**deployment.version_tags(), **{k: v for k, v in (extra or {}).items() if v}}
        for key, value in version_tags.items():
            client.set_model_version_tag(deployment.model, str(deployment.version), key, value)
        if isinstance(deployment, Deployment):
            for key, value in deployment.model_tags().items():
                client.set_registered_model_tag(deployment.model, key, value)
    except MlflowException as exc:
        raise RegistryError(f"{deployment.model} v{deployment.version}: {exc.message}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m release.record_deployment", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--model", help="default: the model Pulumi.<stack>.yaml pins")
    parser.add_argument("--version", help="default: the version Pulumi.<stack>.yaml pins")
    digest = parser.add_mutually_exclusive_group()
    digest.add_argument("--digest", help="the image digest deployed (sha256:...)")
    digest.add_argument("--outputs-file", type=Path, help="`pulumi stack output --json` of the stack")
    digest.add_argument("--outputs-env", help="name of an env var holding the stack outputs as JSON")
    parser.add_argument("--image-output", default="modelImage", help="the stack output naming the image served")
    parser.add_argument(
        "--aborted", action="store_true", help="record that the canary of the pinned version was aborted (no digest)"
    )
    parser.add_argument("--reason", help="with --aborted: why (the failed check and its value)")
    parser.add_argument("--run-url", help="default: this GitHub Actions run")
    parser.add_argument("--at", help="ISO 8601 time of the deploy (default: now, UTC)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--tracking-uri")
    parser.add_argument("--registry-uri")
    return parser


def _outputs(args: argparse.Namespace) -> Any:
    if args.outputs_file is not None:
        text = args.outputs_file.read_text(encoding="utf-8")
        source = str(args.outputs_file)
    else:
        text = os.environ.get(args.outputs_env, "")
        source = f"${args.outputs_env}"
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise RecordError(f"{source}: not JSON ({exc})") from None


def deployment_from_args(args: argparse.Namespace) -> tuple[Deployment, str]:
    """The deployment to record, and the model's catalog (workspace or unity-catalog).

    The stack's outputs are what was deployed; the stack file is what was meant to be. When both name the model
    and the version, they must agree.
    """
    if not STACK_NAME.match(args.stack):
        raise RecordError(f"--stack: not a stack name: {args.stack!r}")
    settings = load_stack_config(args.project_dir, args.stack).settings()
    if settings.model is None:
        raise NothingToRecord(
            f"Pulumi.{args.stack}.yaml pins no model yet (day zero): no model version to tag; nothing recorded"
        )
    pinned = pinned_model(settings)
    image = None
    if args.digest:
        if not DIGEST.match(args.digest):
            raise RecordError(f"--digest: expected sha256: and 64 hex digits, got {args.digest!r}")
        image = DeployedImage(args.digest)
    elif args.outputs_file is not None or args.outputs_env:
        image = image_from_outputs(_outputs(args), args.image_output)
    elif pinned.image_digest:
        image = DeployedImage(pinned.image_digest)
    else:
        raise RecordError("no digest: pass --digest, --outputs-file or --outputs-env")
    model = args.model or pinned.name
    version = args.version or str(pinned.version)
    for what, deployed, meant in (("model", image.model, model), ("version", image.version, version)):
        if deployed is not None and deployed != meant:
            raise RecordError(f"the stack outputs say {what} {deployed}, but {meant} was expected; not recording")
    try:
        number = parse_model_version(version)
    except ValueError as exc:
        raise RecordError(f"--version: expected {exc}, got {version!r}") from None
    at = _at(args.at)
    deployment = Deployment(args.stack, model, number, image.digest, at, args.run_url or run_url())
    return deployment, pinned.catalog


def abort_from_args(args: argparse.Namespace) -> tuple[Abort, str]:
    """`--aborted`: the release to record, from the command line."""
    if args.digest or args.outputs_file is not None or args.outputs_env:
        raise RecordError("--aborted records no image: leave out --digest, --outputs-file and --outputs-env")
    return pinned_abort(
        args.project_dir, args.stack, args.reason or "", model=args.model, version=args.version, at=args.at,
        run=args.run_url,
    )  # fmt: skip


def pinned_abort(
    project_dir: Path,
    stack: str,
    reason: str,
    *,
    model: str | None = None,
    version: str | None = None,
    at: str | None = None,
    run: str | None = None,
) -> tuple[Abort, str]:
    """The aborted release to record (the version the stack file pins unless `model`/`version`), and the catalog."""
    if not STACK_NAME.match(stack):
        raise RecordError(f"--stack: not a stack name: {stack!r}")
    if not reason.strip():
        raise RecordError("--aborted needs --reason: the failed check and its value, as the analysis reported them")
    settings = load_stack_config(project_dir, stack).settings()
    if settings.model is None:
        raise NothingToRecord(f"Pulumi.{stack}.yaml pins no model yet (day zero): no release to abort")
    pinned = pinned_model(settings)
    wanted = version or str(pinned.version)
    try:
        number = parse_model_version(wanted)
    except ValueError as exc:
        raise RecordError(f"--version: expected {exc}, got {wanted!r}") from None
    abort = Abort(stack, model or pinned.name, number, reason, _at(at), run or run_url())
    return abort, pinned.catalog


def _at(given: str | None) -> str:
    at = given or datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        datetime.fromisoformat(at)
    except ValueError:
        raise RecordError(f"--at: not an ISO 8601 time: {at!r}") from None
    return at


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        deployment: Deployment | Abort
        if args.aborted:
            deployment, catalog = abort_from_args(args)
        else:
            if args.reason:
                raise RecordError("--reason goes with --aborted only")
            deployment, catalog = deployment_from_args(args)
        client = registry_client(args.tracking_uri, args.registry_uri, catalog)
        record(client, deployment)
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
    tags = ", ".join(f"{k}={v}" for k, v in deployment.version_tags().items())
    print(f"{deployment.model} v{deployment.version}: {tags}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
