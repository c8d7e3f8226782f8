"""The exact OIDC subjects this repository's jobs present, and the commands that create the federated credentials.

    gh api repos/OWNER/REPO/actions/oidc/customization/sub | python3 -m release.oidc_subjects --repo OWNER/REPO

Entra federated credentials and Pulumi Cloud's OIDC policies match `sub` exactly. A repository created or renamed on
or after 2026-07-15 presents immutable subjects, `repo:OWNER@<owner id>/REPO@<repo id>:environment:staging`, others
`repo:OWNER/REPO:...` (GitHub changelog 2026-04-23 "Immutable subject claims for GitHub Actions OIDC tokens";
github/docs#45221). The repository's own answer says which: the `sub_claim_prefix` of
`GET /repos/{owner}/{repo}/actions/oidc/customization/sub` (the field azd reads, Azure/azure-dev#9430). With no
prefix in the answer, the name-only prefix applies. A custom template (`use_default: false`) builds the subject from
its claim keys instead; this command refuses it rather than guess. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass

ISSUER = "https://token.actions.githubusercontent.com"
AUDIENCE = "api://AzureADTokenExchange"
_REPO = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
_PREFIX = re.compile(r"^repo:[A-Za-z0-9-]+(@[0-9]+)?/[A-Za-z0-9._-]+(@[0-9]+)?$")


@dataclass(frozen=True)
class Identity:
    """A federated identity: the shell variable holding its app's client id, and the job context it trusts."""

    name: str
    app_variable: str
    context: str


# Who trusts which job: a job naming an environment presents `environment:<name>`; a pull-request job without one
# presents `pull_request` (GitHub docs, "OpenID Connect reference", example subject claims).
IDENTITIES = (
    Identity("github-pull-request", "PREVIEW_APP_ID", "pull_request"),
    Identity("github-env-staging", "STAGING_APP_ID", "environment:staging"),
    Identity("github-env-production", "PROD_APP_ID", "environment:production"),
    Identity("github-env-release", "RELEASE_APP_ID", "environment:release"),
)


class SubjectError(ValueError):
    """The repository's answer cannot give exact subjects; the message says why and what to do."""


def subject_prefix(repo: str, customization: object) -> str:
    """`repo:OWNER[@id]/REPO[@id]`, as the repository's tokens spell it."""
    if not _REPO.match(repo):
        raise SubjectError(f"--repo: expected OWNER/REPO, got {repo!r}")
    if not isinstance(customization, dict) or "use_default" not in customization:
        raise SubjectError("the customization answer: expected a JSON object with `use_default` (gh api output)")
    if customization["use_default"] is not True:
        keys = customization.get("include_claim_keys")
        raise SubjectError(
            f"{repo} uses a custom subject template (include_claim_keys {keys}): its subjects are built from those "
            "claims; read the exact subject from a job's azure/login log instead"
        )
    prefix = customization.get("sub_claim_prefix") or f"repo:{repo}"
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise SubjectError(f"sub_claim_prefix: expected repo:OWNER[@id]/REPO[@id], got {prefix!r}")
    owner, name = repo.split("/")
    spelled = re.sub(r"@[0-9]+", "", prefix.removeprefix("repo:"))
    if spelled.lower() != f"{owner}/{name}".lower():
        raise SubjectError(f"sub_claim_prefix {prefix!r} is not the prefix of {repo}")
    return prefix


def subjects(repo: str, customization: object) -> dict[str, str]:
    prefix = subject_prefix(repo, customization)
    return {identity.name: f"{prefix}:{identity.context}" for identity in IDENTITIES}


def commands(repo: str, customization: object) -> list[str]:
    """One `az ad app federated-credential create` per identity, with its exact subject."""
    lines = []
    for identity in IDENTITIES:
        subject = subjects(repo, customization)[identity.name]
        parameters = json.dumps(
            {"name": identity.name, "issuer": ISSUER, "subject": subject, "audiences": [AUDIENCE]},
            separators=(",", ":"),
        )
        app = f'"${identity.app_variable}"'
        lines.append(f"az ad app federated-credential create --id {app} --parameters {shlex.quote(parameters)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m release.oidc_subjects", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", required=True, help="OWNER/REPO")
    args = parser.parse_args(argv)
    try:
        customization = json.loads(sys.stdin.read())
    except json.JSONDecodeError as exc:
        print(f"error: stdin: not the JSON of gh api .../actions/oidc/customization/sub ({exc})", file=sys.stderr)
        return 2
    try:
        found = subjects(args.repo, customization)
        lines = commands(args.repo, customization)
    except SubjectError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, subject in found.items():
        print(f"# {name}: {subject}")
    print(*lines, sep="\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
