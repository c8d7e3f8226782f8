"""How a stack file's problems are told: one line per problem, naming the file, the key and what it expects.

`stacks.settings.parse_settings` turns pydantic's validation errors into these lines; every tool that reads a stack
file raises or catches `SettingsError`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any


class SettingsError(Exception):
    """A stack's config is invalid. `problems` holds one line per problem: file, key, what is expected."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


def describe(error: Mapping[str, Any]) -> str:
    """One pydantic error as a reader of the stack file needs it: "is required", "expected ...", the rule's words."""
    kind = error["type"]
    msg = str(error["msg"])
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known setting"
    if kind == "literal_error":
        return msg.replace("Input should be", "expected")
    msg = msg.removeprefix("Value error, ")
    if kind == "value_error" and msg.startswith(("a ", "an ")):
        return f"expected {msg}"
    return msg.replace("Input should be", "expected").replace("input should be", "expected")


# A rule spanning several keys names the one it is about at the start of its message: `serving.host: ...`.
NAMED_PROBLEM = re.compile(r"^(?P<key>[a-z][A-Za-z]*(\.[a-z][A-Za-z]*)*): (?P<rest>.+)$", re.DOTALL)


def key_path(project: str, loc: tuple[int | str, ...]) -> str:
    """The stack-file key an error is about, as `<project>:serving.canary.steps[1]`."""
    if not loc:
        return f"{project}:<stack>"
    head, *rest = loc
    path = f"{project}:{head}"
    for part in rest:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path
