"""Which model versions a stack was rolled back from, kept in the tree: `release/rolled-back/<stack>.json`.

A rollback's commit message carries `Rolled-Back-From: v<n>`, but a merge setting can erase a message (a squash
merge whose message is the pull request's title, or its body, keeps no trailer). A file the rollback commit
changes survives every merge method, so the prod proposal reads this file, not the log.

The file maps each model to the sorted versions the stack was rolled back from: `{"<model>": [3, 5]}`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from release.git import Git

FOLDER = PurePosixPath("release/rolled-back")
TRAILER = "Rolled-Back-From"
_TRAILER_LINE = re.compile(rf"^{TRAILER}: v([0-9]+)\s*$", re.MULTILINE)


def trailer(version: int) -> str:
    """The rollback commit's trailer line naming the version rolled back from."""
    return f"{TRAILER}: v{version}"


def version_in_trailer(message: str) -> int | None:
    """The version a commit message's `Rolled-Back-From:` trailer names, or None when it has none."""
    found = _TRAILER_LINE.search(message)
    return int(found.group(1)) if found else None


class RolledBackError(ValueError):
    """The file is not what this module writes; the message names it and what it expects."""


def path_of(stack: str) -> str:
    """The file's path in the repository, `/`-separated (what git and the deploy plan compare)."""
    return str(FOLDER / f"{stack}.json")


def parse(text: str, where: str) -> dict[str, list[int]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RolledBackError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not all(
        isinstance(model, str) and isinstance(versions, list) and all(type(v) is int and v > 0 for v in versions)
        for model, versions in data.items()
    ):
        raise RolledBackError(f'{where}: expected {{"<model>": [<version>, ...]}} with positive integer versions')
    return {model: sorted(set(versions)) for model, versions in data.items()}


def read_at(git: Git, ref: str, stack: str) -> dict[str, list[int]]:
    """The rolled-back versions recorded at git `ref` (none when the file does not exist there)."""
    text = git.show(ref, path_of(stack))
    return {} if text is None else parse(text, f"{ref}:{path_of(stack)}")


def add(repo_dir: Path, stack: str, model: str, version: int, *, keep: Mapping[str, list[int]] | None = None) -> None:
    """Record in the working tree that `stack` was rolled back from `model` v`version`, and stage the file.
    Entries of `keep` (the list on the base branch) stay, whatever the working tree's file says."""
    path = repo_dir / path_of(stack)
    current = parse(path.read_text(encoding="utf-8"), str(path)) if path.is_file() else {}
    for kept_model, versions in (keep or {}).items():
        current[kept_model] = sorted({*current.get(kept_model, []), *versions})
    current[model] = sorted({*current.get(model, []), version})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    Git(repo_dir).run("add", "--", path_of(stack))
