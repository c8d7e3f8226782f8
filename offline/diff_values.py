"""How the offline diff shows one changed value, so that the part that changed is always on the page.

- An identifier a reviewer compares character by character (a digest, an image reference, an Azure resource id,
  a URL, a version) is never cut.
- Any other long one-line string is shortened around the change: the common prefix and suffix are elided (`…`),
  with a little context kept, and the differing middle is always shown whole.
- A multi-line string (a PromQL expression, a script) and a string holding a JSON object or list are shown as a
  line diff (`- old` / `+ new`, two lines of context, `…` between far-apart changes).
- Anything else (numbers, booleans, lists and objects) is shown whole, as JSON.
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from stacks.identifiers import DIGEST_ANYWHERE

NONE = "(none)"
WIDTH = 100  # a one-line value longer than this is shortened around the change (never an identifier)
CONTEXT = 24  # characters kept on each side of the change in a shortened one-line value
LINE_CONTEXT = 2  # unchanged lines kept around each change in a line diff
ELLIPSIS = "…"

_IDENTIFIERS = (
    DIGEST_ANYWHERE,  # a digest, bare or in an image reference
    re.compile(r"^/subscriptions/[^\s]+$", re.IGNORECASE),  # an Azure resource id
    re.compile(r"^[a-z][a-z0-9+.-]*://\S+$", re.IGNORECASE),  # a URL
    re.compile(r"^v?\d+(\.\d+)+([-+][0-9A-Za-z.-]+)?$"),  # a version
    re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}(:\d+)?/\S+$", re.IGNORECASE),  # an image reference (registry/path[:tag])
)


def is_identifier(text: str) -> bool:
    """True when `text` is something a reviewer compares whole, which must never be cut."""
    return any(pattern.search(text) for pattern in _IDENTIFIERS)


def show(value: Any) -> str:
    """One value, whole, on one line: strings as they are, anything else as JSON."""
    if value is None:
        return NONE
    return value if isinstance(value, str) else json.dumps(value, sort_keys=False, default=str)


def _as_lines(value: Any) -> list[str] | None:
    """The lines a value reads as in a line diff: a multi-line string, or a string holding JSON (pretty-printed);
    None for a value that reads best on one line."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
        try:
            parsed = json.loads(stripped)
        except ValueError:
            parsed = None
        if isinstance(parsed, (dict, list)):
            return json.dumps(parsed, indent=2, sort_keys=True).splitlines()
    if "\n" in value:
        return value.splitlines()
    return None


def line_diff(before: Any, after: Any) -> list[str] | None:
    """The change as a line diff (`- `, `+ `, `  ` lines; `…` between hunks), when either side reads as lines."""
    old, new = _as_lines(before), _as_lines(after)
    if old is None and new is None:
        return None
    old = old if old is not None else ([] if before is None else [show(before)])
    new = new if new is not None else ([] if after is None else [show(after)])
    out: list[str] = []
    for group in difflib.SequenceMatcher(None, old, new, autojunk=False).get_grouped_opcodes(LINE_CONTEXT):
        if out:
            out.append(ELLIPSIS)
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out += [f"  {line}" for line in old[i1:i2]]
                continue
            out += [f"- {line}" for line in old[i1:i2]]
            out += [f"+ {line}" for line in new[j1:j2]]
    return out


def shorten_pair(before: str, after: str, width: int = WIDTH) -> tuple[str, str]:
    """Two one-line strings, the common prefix and suffix elided when either is longer than `width`.

    The differing middle of each is kept whole, with `CONTEXT` characters either side, so the two sides never
    read the same. Identifiers are returned untouched.
    """
    if (len(before) <= width and len(after) <= width) or is_identifier(before) or is_identifier(after):
        return before, after
    prefix = 0
    limit = min(len(before), len(after))
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and before[-1 - suffix] == after[-1 - suffix]:
        suffix += 1
    start = max(0, prefix - CONTEXT)
    keep_tail = max(0, suffix - CONTEXT)

    def cut(text: str) -> str:
        end = len(text) - keep_tail
        return (ELLIPSIS if start else "") + text[start:end] + (ELLIPSIS if keep_tail else "")

    return cut(before), cut(after)


def render_pair(before: Any, after: Any) -> tuple[str, str] | list[str]:
    """A change as a (before, after) pair for one line, or as the lines of a line diff."""
    lines = line_diff(before, after)
    if lines is not None:
        return lines
    old, new = show(before), show(after)
    if isinstance(before, str) and isinstance(after, str):
        return shorten_pair(old, new)
    return old, new
