"""Whether a pull request gets the real `pulumi preview`, and if not, why: `run=true|false` and a one-line reason.

    python3 -m release.preview_gate      # standard library only: reads the environment the workflow sets

The preview needs an OIDC token (for the read-only Azure identity and the Pulumi team token). GitHub issues none to
a fork's pull request, nor to Dependabot's (its runs are treated as a fork's: GitHub docs, "Troubleshooting
Dependabot on GitHub Actions", "Restrictions when Dependabot triggers events"). The Pulumi token is a team token,
which only the Enterprise and Business Critical editions have (pulumi/docs, OIDC client, "Token types by
edition"): without a previewers team the preview is skipped too. Every skip leaves the offline diff, which needs
no credential, as the pull request's preview; the reason goes to the job summary.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

DEPENDABOT = "dependabot[bot]"


def decide(env: Mapping[str, str]) -> tuple[bool, str]:
    """(run the real preview?, why). Reads HEAD_REPO, REPOSITORY, ACTOR, PREVIEW_CLIENT_ID, PREVIEW_TEAM."""
    if env.get("HEAD_REPO", "") != env.get("REPOSITORY", ""):
        return False, "a fork's pull request gets no OIDC token; the offline diff is this pull request's preview"
    if env.get("ACTOR", "") == DEPENDABOT:
        return False, (
            "Dependabot's pull requests run as a fork's: no OIDC token, no Actions secrets; the offline diff is "
            "this pull request's preview"
        )
    if not env.get("PREVIEW_CLIENT_ID", ""):
        return False, "AZURE_PREVIEW_CLIENT_ID is not set: no preview identity; the offline diff is the preview"
    if not env.get("PREVIEW_TEAM", ""):
        return False, (
            "PULUMI_PREVIEW_TEAM is not set: a read-only Pulumi token is a team token, which only the Enterprise and "
            "Business Critical editions have; the offline diff is the preview (docs/release-workflow.md)"
        )
    return True, "branch of this repository, preview identity and previewers team configured"


def main() -> int:
    run, why = decide(os.environ)
    line = f"real pulumi preview: {'runs' if run else 'skipped'}: {why}"
    print(line)
    for name, text in (("GITHUB_OUTPUT", f"run={'true' if run else 'false'}\n"), ("GITHUB_STEP_SUMMARY", line + "\n")):
        path = os.environ.get(name)
        if path:
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
