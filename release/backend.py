"""The fully qualified stack name for the configured Pulumi backend, checked against prod's StackReference.

    PULUMI_ORG=acme-ml python -m release.backend --stack prod    # prints name=acme-ml/mlops-serving/prod

Pulumi Cloud takes `<org>/<project>/<stack>` with the organisation's name. A self-managed ("DIY") backend
(`azblob://`, `s3://`, `gs://`, `file://`) accepts only the literal organisation `organization`
(pulumi/pulumi pkg/backend/diy/store.go `ParseReference`: "organization name must be 'organization'"). A non-owner
stack's `shared.stack` (prod's StackReference) is resolved by the same backend, so it must use the same
organisation. This command prints `name=...` (also into $GITHUB_OUTPUT) or fails naming the setting to change.

With `--workflow` (how the workflows call it) a self-managed backend is refused before any `pulumi` command runs:
the jobs carry neither what it needs (AZURE_STORAGE_ACCOUNT, a secrets provider) nor a credential for it that
lasts the job (the blob backend would fall back on the az CLI's federated login, which expires within minutes:
Azure/azure-cli#28708), so it would fail half-way through an update instead of at the start.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from stacks.files import load_stack_config
from stacks.settings_errors import SettingsError

DIY_ORGANIZATION = "organization"
DIY_SCHEMES = ("azblob://", "s3://", "gs://", "file://")


class BackendError(ValueError):
    """The stack names cannot work with the configured backend; the message says which setting to change."""


def is_diy(backend_url: str) -> bool:
    return backend_url.strip().lower().startswith(DIY_SCHEMES)


def stack_name(project_dir: Path, stack: str, org: str, backend_url: str) -> str:
    """`<org>/<project>/<stack>`, after checking the organisation against the backend and the stack's reference."""
    diy = is_diy(backend_url)
    if diy and org != DIY_ORGANIZATION:
        raise BackendError(
            f"PULUMI_ORG is {org!r}, but a self-managed backend ({backend_url}) accepts only the organisation "
            f"{DIY_ORGANIZATION!r} in stack names: set the PULUMI_ORG variable to {DIY_ORGANIZATION!r}"
        )
    if not diy and not org:
        raise BackendError("PULUMI_ORG is empty: set it to the Pulumi Cloud organisation that owns the stacks")
    if not diy and backend_url and not backend_url.startswith(("https://", "http://")):
        raise BackendError(
            f"PULUMI_BACKEND_URL {backend_url!r}: expected empty (Pulumi Cloud), https://... or a "
            f"self-managed backend URL ({', '.join(DIY_SCHEMES)})"
        )
    config = load_stack_config(project_dir, stack)
    reference = config.settings().shared.stack
    if reference is not None:
        parts = reference.split("/")
        expected = f"{org}/{config.project}/{parts[-1]}"
        if reference != expected:
            raise BackendError(
                f"Pulumi.{stack}.yaml: mlops-serving:shared.stack is {reference!r}, but with this backend the "
                f"stack is {expected!r}: set shared.stack to {expected!r}"
            )
    return f"{org}/{config.project}/{stack}"


def check_workflow_backend(backend_url: str) -> None:
    """The workflows run against Pulumi Cloud only; the message says what to set."""
    if is_diy(backend_url):
        raise BackendError(
            f"PULUMI_BACKEND_URL is {backend_url!r}, a self-managed backend, which these workflows do not support: "
            "its jobs would need AZURE_STORAGE_ACCOUNT, a secrets provider and an Azure credential lasting the whole "
            "job, none of which they carry; empty PULUMI_BACKEND_URL to use Pulumi Cloud (docs/release-workflow.md)"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m release.backend", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--org", default=None, help="default: $PULUMI_ORG")
    parser.add_argument("--backend-url", default=None, help="default: $PULUMI_BACKEND_URL (empty: Pulumi Cloud)")
    parser.add_argument("--project-dir", type=Path, default=Path.cwd())
    parser.add_argument("--workflow", action="store_true", help="refuse what the workflows cannot run with")
    args = parser.parse_args(argv)
    org = args.org if args.org is not None else os.environ.get("PULUMI_ORG", "")
    url = args.backend_url if args.backend_url is not None else os.environ.get("PULUMI_BACKEND_URL", "")
    try:
        if args.workflow:
            check_workflow_backend(url)
        name = stack_name(args.project_dir, args.stack, org, url)
    except BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(*exc.problems, sep="\n", file=sys.stderr)
        return 2
    print(f"name={name}")
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        with open(outputs, "a", encoding="utf-8") as handle:
            handle.write(f"name={name}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
