"""The model's requirements.txt, made safe to install on top of the server's venv (a build step of the image).

MLflow writes `mlflow==<the version it was logged with>` into every model's requirements.txt. Installed as written,
that line brings back the full `mlflow` package (tracking server, UI, Flask, SQLAlchemy, matplotlib, ...) and may
move MLflow away from the version the server's code was tested with. So before the install:

* `rewrite`: every requirement on `mlflow` or `mlflow-skinny` (any version, extras kept) becomes
  `mlflow-skinny==<the server's version>`, said on stderr; every other line is kept as written (the model's library
  versions win, so a pickled model meets the libraries it was trained with). A constraints file pins
  mlflow-skinny too, so no other requirement can move it.
* `verify` (after the install): fails, naming the requirement that did it, when the full `mlflow` package got in
  anyway (a library of the model depends on it).

A model that relied on a library only full `mlflow` brings (and did not name it) fails the image's build-time
`check` with a message naming the library (`missing_library_hint`).

Runs as a plain script with the venv's Python (`python model_requirements.py ...`), standard library only, so the
build stage copies this one file: a change to the rest of the server's code does not reinstall the venv.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from collections.abc import Sequence
from pathlib import Path

SKINNY = "mlflow-skinny"
FULL = "mlflow"
# What full `mlflow` 3.17.2 requires beyond mlflow-skinny and mlflow-tracing (its METADATA's Requires-Dist without
# extras); tests/model_image/test_model_requirements.py holds it to the installed mlflow's metadata.
FULL_ONLY_DISTRIBUTIONS = (
    "aiohttp",
    "alembic",
    "cryptography",
    "docker",
    "flask",
    "flask-cors",
    "graphene",
    "gunicorn",
    "huey",
    "matplotlib",
    "numpy",
    "pandas",
    "pyarrow",
    "scikit-learn",
    "scipy",
    "skops",
    "sqlalchemy",
    "waitress",
)
# Import names that differ from the distribution's name.
_IMPORT_NAMES = {"sklearn": "scikit-learn", "flask_cors": "flask-cors"}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?")


class RequirementsError(RuntimeError):
    """The model's requirements cannot be served with mlflow-skinny; the message says why and what to do."""


def canonical(name: str) -> str:
    """PEP 503 normalized name: `Flask_CORS` -> `flask-cors`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def rewrite(lines: Sequence[str], server_version: str) -> tuple[list[str], list[str]]:
    """(the requirement lines to install, one note per line changed). Options (`-c`, `--index-url`), comments and
    every other requirement are kept as written."""
    kept: list[str] = []
    notes: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        requirement = line.split("#", 1)[0].strip()
        match = _NAME.match(requirement) if requirement and not requirement.startswith("-") else None
        if match is None or canonical(match[1]) not in {FULL, SKINNY}:
            kept.append(line)
            continue
        replacement = f"{SKINNY}{match[2] or ''}=={server_version}"
        kept.append(replacement)
        notes.append(
            f"model requirement {requirement!r} -> {replacement!r}: the image serves with the server's mlflow-skinny "
            "(the same mlflow package without its tracking server and UI)"
        )
    return kept, notes


def full_mlflow_brought_by(installed: Sequence[importlib.metadata.Distribution]) -> list[str]:
    """The installed distributions that require full `mlflow` (empty when it is not installed)."""
    names = {canonical(dist.metadata["Name"]) for dist in installed}
    if FULL not in names:
        return []
    found = []
    for dist in installed:
        for requirement in dist.requires or []:
            match = _NAME.match(requirement)
            if match and canonical(match[1]) == FULL and "extra ==" not in requirement:
                found.append(f"{dist.metadata['Name']} {dist.version} (requires {requirement})")
    return found


def verify(installed: Sequence[importlib.metadata.Distribution]) -> None:
    """Raises RequirementsError when the full `mlflow` package is installed."""
    names = {canonical(dist.metadata["Name"]) for dist in installed}
    if FULL not in names:
        return
    culprits = full_mlflow_brought_by(installed) or ["(no installed package names it: a requirement line did)"]
    raise RequirementsError(
        "the model's requirements install the full `mlflow` package, which this image leaves out (it serves with "
        f"mlflow-skinny): brought in by {'; '.join(culprits)}. Log the model without that dependency, or name the "
        "libraries it needs from full mlflow (e.g. matplotlib, sqlalchemy) in its requirements instead."
    )


def missing_library_hint(module: str | None) -> str:
    """What to say when loading the model failed with `No module named <module>`."""
    if not module:
        return ""
    top = module.split(".", 1)[0]
    distribution = _IMPORT_NAMES.get(top, canonical(top))
    if distribution not in FULL_ONLY_DISTRIBUTIONS:
        return f" The model needs `{top}`: add it to the model's requirements (pip_requirements when logging it)."
    return (
        f" The model needs `{distribution}`, which the full `mlflow` package brings but mlflow-skinny (what this "
        f"image serves with) does not: add `{distribution}` to the model's requirements "
        "(extra_pip_requirements when logging it)."
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model_requirements.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    do_rewrite = commands.add_parser("rewrite", help="write the model's requirements as the image installs them")
    do_rewrite.add_argument("requirements", type=Path, help="the model's requirements.txt")
    do_rewrite.add_argument("--out", type=Path, required=True, help="the requirements to install")
    do_rewrite.add_argument("--constraints", type=Path, required=True, help="a constraints file pinning mlflow-skinny")
    commands.add_parser("verify", help="fail when the full mlflow package is installed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "rewrite":
            server_version = importlib.metadata.version(SKINNY)
            lines, notes = rewrite(args.requirements.read_text().splitlines(), server_version)
            args.out.write_text("\n".join(lines) + "\n")
            args.constraints.write_text(f"{SKINNY}=={server_version}\n")
            for note in notes:
                print(f"model requirements: {note}", file=sys.stderr)
        else:
            verify(list(importlib.metadata.distributions()))
    except RequirementsError as exc:
        print(f"model requirements: {exc}", file=sys.stderr)
        return 1
    except importlib.metadata.PackageNotFoundError:
        print(f"model requirements: {SKINNY} is not installed in this environment", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
